"""JavaScript dependencies: what package.json asks for, what the lock file installs, and
what the npm registry says about it (latest version, deprecation, licence).

Lock files, read without running anything: ``package-lock.json`` / ``npm-shrinkwrap.json``
(lockfileVersion 2 and 3 ``packages`` map; version 1 ``dependencies`` tree), ``yarn.lock``
(v1, and Berry's YAML form), ``pnpm-lock.yaml`` (``packages`` keys of lockfile 5, 6 and 9).
Only the project's root manifest is read (``node_modules`` is never walked).

Registry metadata comes from :class:`~noa_core.integrations.npm_registry.NpmRegistry`
(cache under ``NOA_HOME/cache/npm``, offline mode). By default the direct dependencies
are looked up; ``transitive=True`` looks up every installed package (up to
``max_lookups``). A package the registry could not be asked about is listed with its
``skipped: ...`` reason and makes the result ``unknown``, never clean.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from noa_core.sourcetree import safe_fs
from noa_core.analysis.interface import AnalyzerResult, Finding
from noa_core.config import NoaSettings
from noa_core.integrations.npm_registry import NpmRegistry, PackageInfo, valid_name, valid_version

LOCK_LIMIT = 64 * 1024 * 1024
MANIFEST_LIMIT = 2 * 1024 * 1024
DEP_SECTIONS = (("dependencies", "main"), ("devDependencies", "dev"), ("optionalDependencies", "optional"),
                ("peerDependencies", "peer"))
_NON_REGISTRY = re.compile(r"^(file:|link:|portal:|workspace:|git\+|git:|github:|gitlab:|bitbucket:|https?:|"
                           r"[\w.-]+/[\w.-]+(#.*)?$)")


class LockError(Exception):
    """A lock file exists but cannot be read."""


@dataclass(frozen=True)
class Installed:
    name: str
    version: str
    dev: bool = False


@dataclass
class Lock:
    kind: str  # "package-lock.json v3", "yarn.lock v1", ...
    packages: list[Installed] = field(default_factory=list)
    top: dict[str, str] = field(default_factory=dict)  # direct dependency -> installed version

    def version_of(self, name: str) -> str | None:
        if name in self.top:
            return self.top[name]
        versions = sorted({p.version for p in self.packages if p.name == name})
        return versions[0] if len(versions) == 1 else None


def _read(tree: Path, rel: str, limit: int) -> str:
    data = safe_fs.read_bytes(tree, rel, limit + 1)
    if len(data) > limit:
        raise LockError(f"{rel}: larger than {limit} bytes")
    return data.decode("utf-8-sig", errors="replace")


def _json(tree: Path, rel: str, limit: int) -> Any:
    try:
        return json.loads(_read(tree, rel, limit))
    except (ValueError, RecursionError) as exc:
        raise LockError(f"{rel}: invalid JSON: {exc}") from None


# -- lock files ------------------------------------------------------------------------

def parse_package_lock(doc: Any, rel: str = "package-lock.json") -> Lock:
    if not isinstance(doc, dict):
        raise LockError(f"{rel}: not a JSON object")
    version = doc.get("lockfileVersion", 1)
    lock = Lock(kind=f"{rel} v{version}")
    packages = doc.get("packages")
    if isinstance(packages, dict) and packages:
        for path, entry in packages.items():
            if not path or not isinstance(entry, dict) or entry.get("link") or "node_modules/" not in path:
                continue
            name = entry.get("name") or path.rsplit("node_modules/", 1)[1]
            ver = entry.get("version")
            if isinstance(name, str) and isinstance(ver, str):
                lock.packages.append(Installed(name, ver, bool(entry.get("dev"))))
                if path.startswith("node_modules/") and path.count("node_modules/") == 1:
                    lock.top[path.removeprefix("node_modules/")] = ver  # the key is the alias, if any
        return lock

    def walk(deps: Any, depth: int) -> None:  # lockfile v1
        if not isinstance(deps, dict) or depth > 64:
            return
        for name, entry in deps.items():
            if isinstance(entry, dict) and isinstance(entry.get("version"), str):
                ver = entry["version"]
                if ver.startswith("npm:") and "@" in ver[5:]:  # alias: "npm:real@1.2.3"
                    ver = ver.rsplit("@", 1)[1]
                lock.packages.append(Installed(name, ver, bool(entry.get("dev"))))
                if depth == 0:
                    lock.top[name] = ver
                walk(entry.get("dependencies"), depth + 1)

    walk(doc.get("dependencies"), 0)
    return lock


def _spec_name(spec: str) -> str:
    """``@scope/name@^1`` -> ``@scope/name``; ``name@npm:^1`` -> ``name``."""
    spec = spec.strip().strip('"')
    at = spec.find("@", 1)
    return spec if at < 0 else spec[:at]


def parse_yarn_lock(text: str) -> Lock:
    berry = "__metadata:" in text
    lock = Lock(kind="yarn.lock berry" if berry else "yarn.lock v1")
    names: list[str] = []
    specs: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            header = line.rstrip().rstrip(":")
            specs = [s.strip().strip('"') for s in header.split(",")]
            names = [] if header.startswith("__metadata") else sorted({_spec_name(s) for s in specs})
            continue
        match = re.match(r'^\s+version:?\s+"?([^"\s]+)"?\s*$', line)
        if match and names and line.startswith("  ") and not line.startswith("    "):
            ver = match.group(1)
            for name in names:
                lock.packages.append(Installed(name, ver))
            for spec in specs:
                lock.top.setdefault(spec, ver)  # spec -> version, resolved against package.json later
            names = []
    return lock


def _pnpm_key(key: str, slash_form: bool) -> tuple[str, str] | None:
    key = key.lstrip("/")
    if slash_form:  # lockfile 5: /name/version(_peer suffix)
        name, _, ver = key.split("_", 1)[0].rpartition("/")
    else:  # lockfile 6 and 9: name@version(peer suffix)
        name, _, ver = re.sub(r"\(.*$", "", key).rpartition("@")
    return (name, ver) if name and ver else None


def parse_pnpm_lock(doc: Any) -> Lock:
    if not isinstance(doc, dict):
        raise LockError("pnpm-lock.yaml: not a mapping")
    lock = Lock(kind=f"pnpm-lock.yaml v{doc.get('lockfileVersion', '?')}")
    packages = doc.get("packages") or {}
    major = re.match(r"\d+", str(doc.get("lockfileVersion", "9")))
    slash_form = major is not None and int(major.group()) < 6
    if isinstance(packages, dict):
        for key, entry in packages.items():
            parsed = _pnpm_key(str(key), slash_form)
            if parsed:
                dev = bool(entry.get("dev")) if isinstance(entry, dict) else False
                lock.packages.append(Installed(parsed[0], parsed[1], dev))
    importers = doc.get("importers") or {".": doc}
    root = importers.get(".") if isinstance(importers, dict) else None
    if isinstance(root, dict):
        for section, _group in DEP_SECTIONS:
            deps = root.get(section)
            if isinstance(deps, dict):
                for name, value in deps.items():
                    ver = value.get("version") if isinstance(value, dict) else value
                    if isinstance(ver, str):
                        lock.top[str(name)] = re.sub(r"\(.*$", "", ver).split("_", 1)[0]
    return lock


def read_lock(tree: Path) -> tuple[Lock | None, list[str]]:
    """The first lock file found (npm, then yarn, then pnpm) and the problems met."""
    problems: list[str] = []
    for rel in ("npm-shrinkwrap.json", "package-lock.json", "yarn.lock", "pnpm-lock.yaml"):
        if not safe_fs.is_regular(tree, rel):
            continue
        try:
            if rel.endswith(".json"):
                return parse_package_lock(_json(tree, rel, LOCK_LIMIT), rel), problems
            if rel == "yarn.lock":
                return parse_yarn_lock(_read(tree, rel, LOCK_LIMIT)), problems
            try:
                doc = yaml.safe_load(_read(tree, rel, LOCK_LIMIT))
            except yaml.YAMLError as exc:
                raise LockError(f"{rel}: invalid YAML: {' '.join(str(exc).split())[:200]}") from None
            return parse_pnpm_lock(doc), problems
        except (LockError, OSError) as exc:
            problems.append(str(exc))
    return None, problems


# -- direct dependencies -----------------------------------------------------------------

@dataclass(frozen=True)
class Direct:
    name: str  # the registry name (an alias "x": "npm:real@^1" is looked up as "real")
    spec: str
    group: str
    alias: str | None = None


def direct_dependencies(pkg: dict[str, Any]) -> list[Direct]:
    out: list[Direct] = []
    for section, group in DEP_SECTIONS:
        deps = pkg.get(section)
        if not isinstance(deps, dict):
            continue
        for name, spec in deps.items():
            spec = str(spec)
            if spec.startswith("npm:"):
                real = _spec_name(spec[4:])
                out.append(Direct(real, spec[4:].partition("@")[2] if spec[4:].count("@") else "", group, name))
            else:
                out.append(Direct(str(name), spec, group))
    return out


def _installed_version(dep: Direct, lock: Lock | None) -> str | None:
    if lock is None:
        exact = dep.spec.lstrip("=v").strip()
        return exact if valid_version(exact) and re.fullmatch(r"\d+\.\d+\.\d+[\w.+-]*", exact) else None
    key = dep.alias or dep.name
    if lock.kind.startswith("yarn"):
        for spec in (f"{key}@{dep.spec}", f"{key}@npm:{dep.spec}"):
            if spec in lock.top:
                return lock.top[spec]
        return lock.version_of(dep.name)
    return lock.top.get(key) or lock.version_of(dep.name)


def _major(version: str | None) -> int | None:
    match = re.match(r"^(\d+)\.", version or "")
    return int(match.group(1)) if match else None


# -- the analyzer ------------------------------------------------------------------------

class NpmAnalyzer:
    """JavaScript dependency analysis with npm registry metadata."""

    name = "npm"
    version = "1"

    def __init__(self, settings: NoaSettings | None = None, *, registry: NpmRegistry | None = None,
                 transitive: bool = False, max_lookups: int = 500, workers: int = 8) -> None:
        self._settings = settings
        self._registry = registry
        self.transitive = transitive
        self.max_lookups = max_lookups
        self.workers = workers

    def _open_registry(self) -> NpmRegistry:
        settings = self._settings or NoaSettings()
        return NpmRegistry(cache_dir=settings.home.resolve() / "cache" / "npm")

    def analyze(self, tree: Path) -> AnalyzerResult:
        t0 = time.perf_counter()
        if not safe_fs.is_regular(tree, "package.json"):
            return AnalyzerResult(self.name, "skipped", "skipped: no package.json")
        try:
            pkg = json.loads(_read(tree, "package.json", MANIFEST_LIMIT))
        except (ValueError, RecursionError, LockError, OSError) as exc:
            return AnalyzerResult(self.name, "unknown", f"package.json unreadable: {' '.join(str(exc).split())[:200]}")
        if not isinstance(pkg, dict):
            return AnalyzerResult(self.name, "unknown", "package.json: not a JSON object")
        lock, problems = read_lock(tree)
        direct = direct_dependencies(pkg)
        rows: list[dict[str, Any]] = []
        lookups: list[tuple[str, str | None]] = []
        for dep in direct:
            row: dict[str, Any] = {"name": dep.alias or dep.name, "spec": dep.spec, "group": dep.group,
                                   "installed": None, "direct": True}
            if dep.alias:
                row["registry_name"] = dep.name
            if _NON_REGISTRY.match(dep.spec) or not valid_name(dep.name):
                row.update(status="skipped", reason=f"skipped: not from the registry ({dep.spec[:80]})")
            else:
                row["installed"] = _installed_version(dep, lock)
                lookups.append((dep.name, row["installed"]))
            rows.append(row)
        if self.transitive and lock is not None:
            seen = set(lookups)
            for p in lock.packages:
                if (p.name, p.version) not in seen and valid_name(p.name):
                    seen.add((p.name, p.version))
                    lookups.append((p.name, p.version))
                    rows.append({"name": p.name, "spec": "", "group": "dev" if p.dev else "main",
                                 "installed": p.version, "direct": False})
        truncated = max(0, len(lookups) - self.max_lookups)
        lookups = lookups[: self.max_lookups]
        registry = self._registry or self._open_registry()
        try:
            with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
                infos = dict(zip(lookups, pool.map(lambda nv: registry.package(*nv), lookups)))
        finally:
            if self._registry is None:
                registry.close()
        findings: list[Finding] = []
        for row in rows:
            if row.get("status") == "skipped":
                continue
            info: PackageInfo | None = infos.get((row.get("registry_name", row["name"]), row["installed"]))
            if info is None:
                row.update(status="skipped", reason=f"skipped: over the limit of {self.max_lookups} lookups")
                continue
            row.update(status=info.status, reason=info.reason, latest=info.latest, deprecated=info.deprecated,
                       licence=info.licence, source=info.source)
            findings += self._findings(row, info)
        not_checked = [r for r in rows if r.get("status") != "ok"
                       and not str(r.get("reason", "")).startswith("skipped: not from the registry")]
        offline_skips = sum(1 for r in not_checked if "not cached" in str(r.get("reason")))
        data = {"lockfile": lock.kind if lock else None, "installed_count": len(lock.packages) if lock else 0,
                "registry": registry.base_url, "offline": registry.offline, "requests": registry.requests,
                "packages": rows, "problems": problems}
        if lock is None and direct:
            problems.append("no lock file: installed versions unknown except exact pins")
        if not direct:
            status, reason = "ok", "package.json declares no dependencies"
        elif not_checked:
            status = "unknown"
            reason = (f"{len(not_checked)} of {len(rows)} packages not fully checked"
                      + (f" ({offline_skips} skipped: offline or registry unreachable, not cached)" if offline_skips else "")
                      + (f"; {truncated} over the lookup limit" if truncated else ""))
        else:
            status, reason = "ok", ""
        return AnalyzerResult(self.name, status, reason, data=data, findings=tuple(findings),
                              seconds=time.perf_counter() - t0)

    def _findings(self, row: dict[str, Any], info: PackageInfo) -> list[Finding]:
        out: list[Finding] = []
        label = f"{row['name']}@{info.version}" if info.version else row["name"]
        if info.deprecated:
            out.append(Finding(self.name, "npm-deprecated", "medium", f"{label} is deprecated: {info.deprecated}",
                               path="package.json"))
        installed, latest = _major(info.version), _major(info.latest)
        if installed is not None and latest is not None and latest > installed:
            out.append(Finding(self.name, "npm-outdated-major", "low",
                               f"{label}: latest is {info.latest} ({latest - installed} major behind)",
                               path="package.json"))
        if info.status == "ok" and not info.licence:
            out.append(Finding(self.name, "npm-no-licence", "low", f"{label} declares no licence",
                               path="package.json"))
        return out
