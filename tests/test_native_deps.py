"""Rust, npm and Go projects tested with their OWN dependencies, fetched outside the sandbox by
NOA (noa_core.deps), never with network inside it; toolchains found and exposed by
noa_core.toolchains. Real cargo, npm, go and bubblewrap; real crates (Debian's crate
registry: crates.io is not reachable on these machines), a real npm package from the
registry, and a Go module proxy served from files (GOPROXY=file://, a real Go feature).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from noa_core.config import ExecLimits
from noa_core.deps.cargo import DEBIAN_REGISTRY
from noa_core.deps.layout import DepsLayout
from noa_core.deps.native import cargo_argv, prepare_native_run
from noa_core.isolation import run_isolated
from noa_core.swarm.go import GoToolchain
from noa_core.swarm.interface import SwarmContext
from noa_core.swarm.rust import RustToolchain
from noa_core.toolchains import find_go, find_node, find_rust, toolchain_of
from noa_core.validation.counts import NoSummaryLine
from noa_core.validation.node_counts import parse_node_test
from noa_core.validation.runner import run_test_suite

LIMITS = ExecLimits(wall_seconds=300)

ITOA_CRATE = {
    "Cargo.toml": '[package]\nname = "noa-itoa-user"\nversion = "0.1.0"\nedition = "2021"\n\n'
                  '[dependencies]\nitoa = "1"\n',
    "src/lib.rs": (
        "pub fn show(n: u64) -> String {\n    let mut buf = itoa::Buffer::new();\n    buf.format(n).to_string()\n}\n\n"
        "#[cfg(test)]\nmod tests {\n    #[test]\n    fn small() { assert_eq!(super::show(42), \"42\"); }\n"
        "    #[test]\n    fn large() { assert_eq!(super::show(u64::MAX), \"18446744073709551615\"); }\n}\n"),
}

NPM_PROJECT = {
    "package.json": json.dumps({"name": "noa-is-number-user", "version": "1.0.0", "private": True,
                                "scripts": {"test": "node --test"},
                                "devDependencies": {"is-number": "7.0.0"}}),
    "test/num.test.js": (
        "const test = require('node:test');\nconst assert = require('node:assert');\n"
        "const isNumber = require('is-number');\n"
        "test('numbers', () => { assert.ok(isNumber(5)); assert.ok(isNumber('5')); });\n"
        "test('not numbers', () => { assert.ok(!isNumber('five')); });\n"
        "test('three', () => { assert.ok(isNumber(3.5)); });\n"),
}

GO_MODULE = {
    "go.mod": "module example.com/hello\n\ngo 1.19\n\nrequire example.com/greet v1.0.0\n",
    "hello.go": 'package hello\n\nimport "example.com/greet"\n\nfunc Hello() string { return greet.Greet("noa") }\n',
    "hello_test.go": ('package hello\n\nimport "testing"\n\n'
                      'func TestHello(t *testing.T) {\n\tif Hello() != "hello, noa" {\n\t\tt.Fatal(Hello())\n\t}\n}\n\n'
                      'func TestLength(t *testing.T) {\n\tif len(Hello()) != 10 {\n\t\tt.Fatal(len(Hello()))\n\t}\n}\n'),
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def need_rust_with_itoa() -> None:
    if find_rust() is None:
        pytest.skip("cargo is not installed here")
    if not any(DEBIAN_REGISTRY.glob("itoa-*")):
        pytest.skip("Debian's librust-itoa-dev is not installed (crates.io is not reachable here): "
                    "scripts/bootstrap.sh --test installs it")


def file_goproxy(root: Path) -> Path:
    """A module proxy in files (https://go.dev/ref/mod#goproxy-protocol) serving example.com/greet v1.0.0."""
    d = root / "example.com" / "greet" / "@v"
    d.mkdir(parents=True)
    mod = "module example.com/greet\n\ngo 1.19\n"
    (d / "list").write_text("v1.0.0\n")
    (d / "v1.0.0.info").write_text('{"Version":"v1.0.0","Time":"2024-01-01T00:00:00Z"}')
    (d / "v1.0.0.mod").write_text(mod)
    with zipfile.ZipFile(d / "v1.0.0.zip", "w") as z:
        z.writestr("example.com/greet@v1.0.0/go.mod", mod)
        z.writestr("example.com/greet@v1.0.0/greet.go",
                   'package greet\n\nfunc Greet(n string) string { return "hello, " + n }\n')
    return root


# --------------------------------------------------------------------------- toolchains


def test_commands_map_to_toolchains() -> None:
    assert toolchain_of(["cargo", "test"]) == "rust"
    assert toolchain_of(["/usr/bin/go", "test", "./..."]) == "go"
    assert toolchain_of(["npm", "test"]) == toolchain_of(["node", "--test"]) == "node"
    assert toolchain_of(["python", "-m", "pytest"]) is None
    assert cargo_argv(["cargo", "test", "--", "--nocapture"], ["--config", "/c.toml"]) == [
        "cargo", "test", "--config", "/c.toml", "--offline", "--frozen", "--", "--nocapture"]


def test_rustup_cargo_runs_in_the_sandbox_only_with_the_exposed_paths(tmp_path: Path) -> None:
    rust = find_rust()
    if rust is None:
        pytest.skip("cargo is not installed here")
    work = tmp_path / "w"
    work.mkdir()
    env = {**rust.sandbox_env(), "CARGO_HOME": "/tmp/home/.cargo"}
    res = run_isolated([rust.tool("cargo"), "--version"], work, LIMITS, env=env,
                       readonly_paths=rust.readonly_paths)
    assert res.returncode == 0 and res.stdout.startswith("cargo "), res.stdout + res.stderr
    if rust.readonly_paths:  # rustup's, under a home directory the sandbox hides: hidden without them
        env_only = {**rust.sandbox_env(), "CARGO_HOME": "/tmp/home/.cargo"}
        hidden = run_isolated([rust.tool("cargo"), "--version"], work, LIMITS, env=env_only,
                              readonly_paths=(), hide_paths=())
        assert hidden.returncode != 0


def test_node_counts_from_tap_and_spec() -> None:
    tap = "TAP version 13\nok 1 - a\nnot ok 2 - b\n1..2\n# tests 3\n# suites 0\n# pass 1\n# fail 1\n" \
          "# cancelled 0\n# skipped 1\n# todo 0\n# duration_ms 12.5\n"
    c = parse_node_test(tap)
    assert (c.passed, c.failed, c.skipped, c.errors) == (1, 1, 1, 0) and not c.ok
    spec = "\u2714 a (1ms)\n\u2139 tests 2\n\u2139 suites 0\n\u2139 pass 2\n\u2139 fail 0\n\u2139 cancelled 0\n" \
           "\u2139 skipped 0\n\u2139 todo 0\n\u2139 duration_ms 40\n"
    assert parse_node_test(spec).passed == 2
    with pytest.raises(NoSummaryLine):
        parse_node_test("  3 passing (4ms)\n")


# --------------------------------------------------------------------------- Rust


def test_cargo_test_uses_the_crates_own_dependency_vendored_outside(tmp_path: Path) -> None:
    need_rust_with_itoa()
    crate = write_tree(tmp_path / "crate", ITOA_CRATE)
    run = run_test_suite(crate, ["cargo", "test"], work_parent=tmp_path / "wp", limits=LIMITS,
                         deps_home=tmp_path / "home")
    assert run.outcome == "passed", (run.one_line, run.notes, run.log_path.read_text()[-2000:])
    assert run.counts is not None and (run.counts.passed, run.counts.failed) == (2, 0)
    assert "--offline" in run.command and "--frozen" in run.command
    assert any("Cargo.lock generated by NOA" in n for n in run.notes), run.notes
    assert any("vendored" in n for n in run.notes), run.notes
    assert "Compiling itoa" in run.log_path.read_text()
    assert not (crate / "Cargo.lock").exists()  # written into the work copy, never into the drop
    # a second run reuses the vendored set
    again = run_test_suite(crate, ["cargo", "test"], work_parent=tmp_path / "wp", limits=LIMITS,
                           deps_home=tmp_path / "home")
    assert again.outcome == "passed" and any("reused" in n for n in again.notes), again.notes


def test_unknown_crate_is_unknown_with_cargos_message_and_the_sandbox_has_no_network(tmp_path: Path) -> None:
    rust = find_rust()
    if rust is None:
        pytest.skip("cargo is not installed here")
    files = dict(ITOA_CRATE)
    files["Cargo.toml"] += 'noa-no-such-crate-zz = "1"\n'
    crate = write_tree(tmp_path / "crate", files)
    run = run_test_suite(crate, ["cargo", "test"], work_parent=tmp_path / "wp", limits=LIMITS,
                         deps_home=tmp_path / "home")
    assert run.outcome == "unknown" and run.counts is None
    assert "noa-no-such-crate-zz" in run.notes[0] and "could not be fetched" in run.notes[0], run.notes
    # inside the sandbox, cargo itself cannot reach any registry: fetching there fails
    work = tmp_path / "inside"
    shutil.copytree(crate, work)
    env = {**rust.sandbox_env(), "CARGO_HOME": "/tmp/home/.cargo", "CARGO_NET_RETRY": "0"}
    res = run_isolated([rust.tool("cargo"), "fetch"], work, LIMITS, env=env, readonly_paths=rust.readonly_paths,
                       merge_stderr=True)
    assert res.returncode != 0
    assert "index.crates.io" in res.stdout or "resolve" in res.stdout.lower(), res.stdout[-1000:]


def test_rust_swarm_vendors_then_checks_and_tests_offline(tmp_path: Path) -> None:
    need_rust_with_itoa()
    crate = write_tree(tmp_path / "crate", ITOA_CRATE)
    report = RustToolchain().run(crate, SwarmContext(work_parent=tmp_path / "work", limits=LIMITS,
                                                     home=tmp_path / "home"))
    by = {r.check: r for r in report.results}
    assert by["check"].status == "ok", by["check"].one_line
    assert by["test"].status == "ok" and by["test"].counts is not None, by["test"].one_line
    assert by["test"].counts.passed == 2
    assert "--frozen" in by["test"].command
    assert any("vendored" in n for n in by["test"].data["dependencies"])
    assert report.status == "ok"


# --------------------------------------------------------------------------- npm


def test_npm_test_runs_with_its_dev_dependency_installed_outside(tmp_path: Path) -> None:
    node = find_node()
    if node is None or "npm" not in node.tools:
        pytest.skip("node/npm are not installed here")
    project = write_tree(tmp_path / "js", NPM_PROJECT)
    run = run_test_suite(project, ["npm", "test"], work_parent=tmp_path / "wp", limits=LIMITS,
                         deps_home=tmp_path / "home")
    assert run.outcome == "passed", (run.one_line, run.notes, run.log_path.read_text()[-2000:])
    assert run.counts is not None and (run.counts.passed, run.counts.failed) == (3, 0)
    assert run.tool == "npm"
    assert any("npm install --ignore-scripts" in n for n in run.notes), run.notes
    assert not (project / "node_modules").exists()


def test_a_second_run_of_the_same_npm_project_reuses_the_install_and_cannot_alter_it(tmp_path: Path) -> None:
    """Drop validation, merge validation, the swarm and the build each install the project's
    dependencies: the second time they come from NOA's cache, and what a test writes into its
    node_modules (here: it overwrites a dependency) reaches neither the cache nor the next run."""
    node = find_node()
    if node is None or "npm" not in node.tools:
        pytest.skip("node/npm are not installed here")
    files = dict(NPM_PROJECT)
    doc = json.loads(files["package.json"])
    doc["scripts"]["test"] = ("node -e \"require('fs').writeFileSync('node_modules/is-number/index.js', "
                              "'module.exports = () => false')\" && node --test")
    files["package.json"] = json.dumps(doc)
    project = write_tree(tmp_path / "js", files)
    first = run_test_suite(project, ["npm", "test"], work_parent=tmp_path / "wp1", limits=LIMITS,
                           deps_home=tmp_path / "home")
    assert first.counts is not None and (first.counts.passed, first.counts.failed) == (1, 2), first.one_line
    assert not any("reused" in n for n in first.notes), first.notes
    stored = list((tmp_path / "home" / "deps" / "npm" / "modules").iterdir())
    assert len(stored) == 1
    assert "module.exports = () => false" not in (stored[0] / "is-number" / "index.js").read_text()
    second = run_test_suite(project, ["npm", "test"], work_parent=tmp_path / "wp2", limits=LIMITS,
                            deps_home=tmp_path / "home")
    assert any("reused from an earlier install" in n for n in second.notes), second.notes
    assert second.counts is not None and (second.counts.passed, second.counts.failed) == (1, 2)
    assert "module.exports = () => false" not in (stored[0] / "is-number" / "index.js").read_text()


def test_npm_test_runs_the_pretest_hook_but_not_a_posttest_that_needs_the_network(tmp_path: Path) -> None:
    """As many npm packages do: `pretest` prepares what the tests read, `posttest` audits
    online (`npx npm audit`). Inside the offline sandbox the first must run and the second
    must not turn 3 passing tests into an error."""
    node = find_node()
    if node is None or "npm" not in node.tools:
        pytest.skip("node/npm are not installed here")
    files = dict(NPM_PROJECT)
    doc = json.loads(files["package.json"])
    doc["scripts"] = {"pretest": "node -e \"require('fs').writeFileSync('prepared.txt', 'yes')\"",
                      "test": "npm run tests-only", "tests-only": "node --test",
                      "posttest": "node -e \"process.exit(3)\""}
    files["package.json"] = json.dumps(doc)
    files["test/prepared.test.js"] = ("const test = require('node:test');\nconst assert = require('node:assert');\n"
                                      "test('pretest ran', () => { assert.ok(require('fs').existsSync('prepared.txt')); });\n")
    project = write_tree(tmp_path / "js", files)
    run = run_test_suite(project, ["npm", "test"], work_parent=tmp_path / "wp", limits=LIMITS,
                         deps_home=tmp_path / "home")
    assert run.outcome == "passed", (run.one_line, run.log_path.read_text()[-1500:])
    assert run.counts is not None and (run.counts.passed, run.counts.failed) == (4, 0)
    assert "posttest" not in run.log_path.read_text()


def test_npm_test_without_the_dependency_fails_and_the_sandbox_cannot_install(tmp_path: Path) -> None:
    node = find_node()
    if node is None or "npm" not in node.tools:
        pytest.skip("node/npm are not installed here")
    files = dict(NPM_PROJECT)
    files["package.json"] = json.dumps({"name": "x", "version": "1.0.0", "scripts": {"test": "node --test"}})
    project = write_tree(tmp_path / "js", files)
    run = run_test_suite(project, ["npm", "test"], work_parent=tmp_path / "wp", limits=LIMITS,
                         deps_home=tmp_path / "home")
    assert run.outcome == "failed" and run.counts is not None and run.counts.failed == 1, run.one_line
    assert "Cannot find module 'is-number'" in run.log_path.read_text()
    # npm inside the sandbox cannot reach the registry that NOA's host step reached above
    work = tmp_path / "inside"
    shutil.copytree(project, work)
    env = {**node.sandbox_env(), "npm_config_fetch_retries": "0", "npm_config_cache": "/tmp/home/.npm"}
    res = run_isolated([node.tool("npm"), "install", "--no-audit", "--no-fund", "is-number@7.0.0"], work,
                       LIMITS.model_copy(update={"wall_seconds": 120}), env=env, readonly_paths=node.readonly_paths,
                       merge_stderr=True)
    assert res.returncode != 0 and not (work / "node_modules" / "is-number").exists(), res.stdout[-500:]


# --------------------------------------------------------------------------- Go


def _need_go() -> None:
    if find_go() is None:
        pytest.skip("go is not installed here")


def test_go_module_cache_filled_outside_from_goproxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _need_go()
    proxy = file_goproxy(tmp_path / "proxy")
    monkeypatch.setenv("GOPROXY", proxy.as_uri())
    monkeypatch.setenv("GOSUMDB", "off")  # a private module: no checksum database knows it
    module = write_tree(tmp_path / "mod", GO_MODULE)
    run = run_test_suite(module, ["go", "test", "-v", "./..."], work_parent=tmp_path / "wp", limits=LIMITS,
                         deps_home=tmp_path / "home")
    assert run.outcome == "passed", (run.one_line, run.notes, run.log_path.read_text()[-2000:])
    assert run.counts is not None and run.counts.passed == 2
    assert any("go mod download" in n for n in run.notes), run.notes
    # the Go swarm takes the same route
    report = GoToolchain().run(module, SwarmContext(work_parent=tmp_path / "work", limits=LIMITS,
                                                    home=tmp_path / "home"))
    test = next(r for r in report.results if r.check == "test")
    assert test.status == "ok" and test.counts is not None and test.counts.passed == 2, test.one_line


def test_go_module_without_a_reachable_proxy_is_unknown_vendored_passes(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _need_go()
    go = find_go()
    assert go is not None
    module = write_tree(tmp_path / "mod", GO_MODULE)
    # example.com/greet exists on no public proxy (nor can proxy.golang.org be reached here)
    monkeypatch.delenv("GOPROXY", raising=False)
    run = run_test_suite(module, ["go", "test", "-v", "./..."], work_parent=tmp_path / "wp", limits=LIMITS,
                         deps_home=tmp_path / "home")
    assert run.outcome == "unknown" and run.counts is None
    assert "go mod download exited" in run.notes[0] and "example.com/greet" in run.notes[0], run.notes
    # the same module with its dependencies vendored (go mod tidy + vendor, by hand, from a proxy) passes offline
    proxy = file_goproxy(tmp_path / "proxy")
    vend_env = {"PATH": "/usr/bin:/bin", "GOPROXY": proxy.as_uri(), "GOSUMDB": "off", "GOFLAGS": "-mod=mod",
                "GOPATH": str(tmp_path / "gopath"), "GOCACHE": str(tmp_path / "gocache"), "HOME": str(tmp_path)}
    for step in (["mod", "tidy"], ["mod", "vendor"]):
        subprocess.run([go.tool("go"), *step], cwd=module, env=vend_env, check=True, capture_output=True)
    assert (module / "vendor" / "modules.txt").is_file()
    vendored = run_test_suite(module, ["go", "test", "-v", "./..."], work_parent=tmp_path / "wp", limits=LIMITS,
                              deps_home=tmp_path / "home2")
    assert vendored.outcome == "passed", (vendored.one_line, vendored.notes)
    assert vendored.counts is not None and vendored.counts.passed == 2
    assert any("vendored modules" in n for n in vendored.notes)


def test_missing_toolchain_is_unknown_not_passed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOA_CARGO", str(tmp_path / "no-cargo-here"))
    monkeypatch.setenv("NOA_GO", str(tmp_path / "no-go-here"))
    crate = write_tree(tmp_path / "crate", ITOA_CRATE)
    run = run_test_suite(crate, ["cargo", "test"], work_parent=tmp_path / "wp", limits=LIMITS,
                         deps_home=tmp_path / "home")
    assert run.outcome == "unknown" and "cargo is not installed" in run.notes[0]
    native = prepare_native_run(["go", "test", "./..."], crate, layout=DepsLayout(tmp_path / "d"),
                                log=tmp_path / "log")
    assert native.status == "unknown" and "go is not installed" in native.reason


# --------------------------------------------------------------------------- the JavaScript swarm


def test_javascript_swarm_runs_npm_test_with_its_dependencies(tmp_path: Path) -> None:
    from noa_core.swarm.javascript import JavaScriptToolchain

    node = find_node()
    if node is None or "npm" not in node.tools:
        report = JavaScriptToolchain().run(write_tree(tmp_path / "js", NPM_PROJECT), SwarmContext(tmp_path / "w"))
        assert report.status == "skipped" and report.results[0].reason == "npm not installed"
        return
    ctx = SwarmContext(work_parent=tmp_path / "work", limits=LIMITS, home=tmp_path / "home")
    report = JavaScriptToolchain().run(write_tree(tmp_path / "js", NPM_PROJECT), ctx)
    test = report.results[0]
    assert test.status == "ok" and test.counts is not None, test.one_line
    assert (test.counts.passed, test.counts.failed) == (3, 0)
    assert any("npm install --ignore-scripts" in n for n in test.data["dependencies"])
    # the same tests without the dependency declared: they fail, counted
    files = dict(NPM_PROJECT)
    files["package.json"] = json.dumps({"name": "x", "version": "1.0.0", "scripts": {"test": "node --test"}})
    failing = JavaScriptToolchain().run(write_tree(tmp_path / "js2", files), ctx).results[0]
    assert failing.status == "failed" and failing.counts is not None and failing.counts.failed == 1, failing.one_line
    # npm's placeholder test script: nothing to run
    files["package.json"] = json.dumps({"name": "y", "version": "1.0.0",
                                        "scripts": {"test": 'echo "Error: no test specified" && exit 1'}})
    none = JavaScriptToolchain().run(write_tree(tmp_path / "js3", files), ctx)
    assert none.status == "skipped" and none.results[0].reason == "package.json has no test script"
