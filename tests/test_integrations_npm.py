"""JavaScript dependency analysis against a local npm registry serving recorded documents
(tests/data/npm_registry, recorded from registry.npmjs.org); one ``network`` test asks the
real registry about is-number."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest

from noa_core.analysis.npm import NpmAnalyzer, parse_package_lock, parse_pnpm_lock, parse_yarn_lock, read_lock
from noa_core.config import NoaSettings
from noa_core.integrations.npm_registry import NpmRegistry, licence_of
from tests.integrations_helpers import Call, Reply, recording_server

RECORDED = Path(__file__).parent / "data" / "npm_registry"


def registry_handler(call: Call) -> Reply:
    path = unquote(call.path.lstrip("/"))  # "@types/node/20.0.0" or "is-number/latest"
    name, _, version = path.rpartition("/")
    doc = RECORDED / f"{name.replace('/', '__')}@{version}.json"
    if call.method == "GET" and doc.is_file():
        return Reply(200, doc.read_bytes())
    return Reply(404, {"error": "Not found"})


def write_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text(json.dumps({
        "name": "shop-web", "version": "1.0.0",
        "dependencies": {"is-number": "^6.0.0", "left-pad": "1.3.0", "request": "^2.88.0",
                         "local-lib": "file:../local-lib", "ui": "github:acme/ui#v2"},
        "devDependencies": {"@types/node": "^20.0.0"},
    }))
    (root / "package-lock.json").write_text(json.dumps({
        "name": "shop-web", "lockfileVersion": 3, "requires": True,
        "packages": {
            "": {"name": "shop-web", "dependencies": {"is-number": "^6.0.0"}},
            "node_modules/is-number": {"version": "6.0.0", "license": "MIT"},
            "node_modules/left-pad": {"version": "1.3.0"},
            "node_modules/request": {"version": "2.88.2"},
            "node_modules/@types/node": {"version": "20.0.0", "dev": True},
            "node_modules/request/node_modules/is-number": {"version": "7.0.0"},
            "node_modules/local-lib": {"resolved": "../local-lib", "link": True},
        },
    }))
    return root


def analyzer(home: Path, url: str, **kw) -> tuple[NpmAnalyzer, NpmRegistry]:
    registry = NpmRegistry(cache_dir=home / "cache" / "npm", base_url=url, **kw)
    return NpmAnalyzer(NoaSettings(home=home), registry=registry), registry


def test_lockfile_v3_project_gets_latest_deprecation_and_licence(tmp_path: Path) -> None:
    tree = write_project(tmp_path / "src")
    with recording_server(registry_handler) as reg:
        a, registry = analyzer(tmp_path / "home", reg.url)
        result = a.analyze(tree)
        registry.close()
    assert result.status == "ok", result.reason
    rows = {r["name"]: r for r in result.data["packages"]}
    assert result.data["lockfile"] == "package-lock.json v3"
    assert rows["is-number"]["installed"] == "6.0.0" and rows["is-number"]["latest"] == "7.0.0"
    assert rows["left-pad"]["licence"] == "WTFPL"
    assert rows["@types/node"]["installed"] == "20.0.0" and rows["@types/node"]["group"] == "dev"
    assert rows["request"]["deprecated"].startswith("request has been deprecated")
    assert rows["local-lib"]["status"] == "skipped" and "not from the registry" in rows["local-lib"]["reason"]
    assert rows["ui"]["status"] == "skipped"
    rules = sorted((f.rule, f.message.split(":")[0]) for f in result.findings)
    assert rules == [("npm-deprecated", "request@2.88.2 is deprecated"),
                     ("npm-outdated-major", "@types/node@20.0.0"), ("npm-outdated-major", "is-number@6.0.0")]
    assert all(c.headers["accept"] == "application/json" for c in reg.calls)
    assert "/@types%2Fnode/20.0.0" in [c.path for c in reg.calls]  # scoped names escaped as npm does


def test_second_run_is_served_from_the_cache_and_offline_without_it_says_so(tmp_path: Path) -> None:
    tree = write_project(tmp_path / "src")
    home = tmp_path / "home"
    with recording_server(registry_handler) as reg:
        first, _ = analyzer(home, reg.url)
        first.analyze(tree)
        fetched = len(reg.calls)
        again, r2 = analyzer(home, reg.url)
        cached = again.analyze(tree)
        offline, _ = analyzer(home, reg.url, offline=True)
        off = offline.analyze(tree)
        empty, _ = analyzer(tmp_path / "other-home", reg.url, offline=True)
        nothing = empty.analyze(tree)
        assert len(reg.calls) == fetched  # neither the cached nor the offline runs asked the registry
    assert fetched == 8 and cached.status == "ok" and r2.requests == 0
    assert {r.get("source") for r in cached.data["packages"] if r["status"] == "ok"} == {"cache"}
    assert off.status == "ok" and off.data["offline"] is True
    assert nothing.status == "unknown"
    assert "4 skipped: offline or registry unreachable, not cached" in nothing.reason
    registry_rows = [r for r in nothing.data["packages"] if "not from the registry" not in r["reason"]]
    assert len(registry_rows) == 4
    assert {(r["status"], r["reason"]) for r in registry_rows} == {("skipped", "skipped: offline, not cached")}
    assert nothing.findings == ()


def test_unreachable_registry_falls_back_to_a_stale_cache(tmp_path: Path) -> None:
    tree = write_project(tmp_path / "src")
    home = tmp_path / "home"
    with recording_server(registry_handler) as reg:
        warm, _ = analyzer(home, reg.url)
        warm.analyze(tree)
    dead = reg.url  # the same registry, now stopped: nobody listens on its port
    stale, registry = analyzer(home, dead, ttl_s=0)
    result = stale.analyze(tree)
    assert result.status == "ok", result.reason
    assert registry.requests < 8  # the first refused connections switch the run to cache-only
    assert {r.get("source") for r in result.data["packages"] if r["status"] == "ok"} == {"stale cache"}
    cold, _ = analyzer(tmp_path / "cold", dead)
    none = cold.analyze(tree)
    assert none.status == "unknown"
    assert {r["reason"] for r in none.data["packages"] if r["name"] == "left-pad"} == {
        "skipped: registry unreachable (ConnectError), not cached"}


def test_unknown_private_package_and_hostile_names(tmp_path: Path) -> None:
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "package.json").write_text(json.dumps({"dependencies": {
        "@acme/private-thing": "1.0.0", "../../etc/passwd": "1.0.0", "is-number": "6.0.0/../../x"}}))
    with recording_server(registry_handler) as reg:
        a, _ = analyzer(tmp_path / "home", reg.url)
        result = a.analyze(tree)
    rows = {r["name"]: r for r in result.data["packages"]}
    assert result.status == "unknown"
    assert rows["@acme/private-thing"]["reason"].startswith("not in the registry")
    assert rows["../../etc/passwd"]["status"] == "skipped"
    assert rows["is-number"]["installed"] is None  # not an exact pin: looked up without a version
    assert "no lock file" in result.data["problems"][0]
    assert all(".." not in c.path for c in reg.calls)


def test_no_package_json_is_skipped(tmp_path: Path) -> None:
    result = NpmAnalyzer(NoaSettings(home=tmp_path)).analyze(tmp_path)
    assert result.status == "skipped" and result.reason == "skipped: no package.json"


def test_lockfile_formats() -> None:
    v1 = parse_package_lock({"lockfileVersion": 1, "dependencies": {
        "a": {"version": "1.0.0", "dependencies": {"b": {"version": "2.0.0", "dev": True}}},
        "c": {"version": "npm:real-c@3.1.0"}}})
    assert v1.top == {"a": "1.0.0", "c": "3.1.0"} and len(v1.packages) == 3
    yarn = parse_yarn_lock('# yarn lockfile v1\n\n"@babel/core@^7.0.0", "@babel/core@^7.1.0":\n'
                           '  version "7.1.2"\n  resolved "https://registry.yarnpkg.com/x"\n  dependencies:\n'
                           '    debug "^4.1.0"\n\ndebug@^4.1.0:\n  version "4.3.4"\n')
    assert yarn.kind == "yarn.lock v1"
    assert yarn.top["@babel/core@^7.1.0"] == "7.1.2" and yarn.version_of("debug") == "4.3.4"
    berry = parse_yarn_lock('__metadata:\n  version: 6\n\n"lodash@npm:^4.17.0":\n  version: 4.17.21\n')
    assert berry.kind == "yarn.lock berry" and berry.version_of("lodash") == "4.17.21"
    v6 = parse_pnpm_lock({"lockfileVersion": "6.0", "dependencies": {"react": {"specifier": "^18", "version": "18.2.0"}},
                          "packages": {"/react@18.2.0": {"dev": False}, "/@types/node@20.0.0": {"dev": True},
                                       "/react-dom@18.2.0(react@18.2.0)": {}}})
    assert v6.top == {"react": "18.2.0"}
    assert {(p.name, p.version) for p in v6.packages} == {("react", "18.2.0"), ("@types/node", "20.0.0"),
                                                          ("react-dom", "18.2.0")}
    v5 = parse_pnpm_lock({"lockfileVersion": 5.4, "packages": {"/is-number/7.0.0": {}, "/@scope/x/1.0.0_react@18": {}}})
    assert {(p.name, p.version) for p in v5.packages} == {("is-number", "7.0.0"), ("@scope/x", "1.0.0")}
    v9 = parse_pnpm_lock({"lockfileVersion": "9.0", "importers": {".": {"devDependencies": {
        "vitest": {"specifier": "^1", "version": "1.6.0(@types/node@20.0.0)"}}}}, "packages": {"vitest@1.6.0": {}}})
    assert v9.top == {"vitest": "1.6.0"} and v9.packages[0].name == "vitest"
    assert licence_of({"licenses": [{"type": "MIT"}, {"type": "Apache-2.0"}]}) == "MIT OR Apache-2.0"
    assert licence_of({"license": {"type": "ISC"}}) == "ISC"


def test_broken_lock_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "package-lock.json").write_text("{not json")
    (tmp_path / "yarn.lock").write_text('left-pad@^1.3.0:\n  version "1.3.0"\n')
    lock, problems = read_lock(tmp_path)
    assert lock is not None and lock.kind == "yarn.lock v1"
    assert problems and problems[0].startswith("package-lock.json: invalid JSON")


@pytest.mark.network
def test_real_registry_is_number(tmp_path: Path) -> None:
    with NpmRegistry(cache_dir=tmp_path / "npm", base_url="https://registry.npmjs.org/") as registry:
        info = registry.package("is-number", "7.0.0")
    if info.status == "skipped" and "unreachable" in info.reason:
        pytest.skip(info.reason)
    assert info.status == "ok", info.reason
    assert info.licence == "MIT" and info.latest and info.latest.startswith("7.")
