"""Known vulnerabilities of the declared Python dependencies, with pip-audit.

Only an exact version can be looked up, so the audit set is every dependency pinned
with ``==`` / ``===`` (or a Poetry exact version) plus every package of a lock file
(poetry.lock, uv.lock, pdm.lock, Pipfile.lock, pylock.toml). An unpinned dependency
counts as checked when the tree pins the same package elsewhere (a lock or a compiled
requirements file), at that version; otherwise it is listed as not checked.

pip-audit never sees a file of the tree: it gets a requirements file written by us
(``name==version`` lines only) with ``--disable-pip --no-deps``, so no package is
downloaded or built and no option of a hostile requirements file (index URLs,
includes, editable paths) is honoured. pip-audit says "No known vulnerabilities
found" and exits 0 when it skipped everything, so each dependency's ``skip_reason``
in the JSON report is read: the result is ``ok`` only when every dependency was
really checked by a vulnerability service; anything else is ``unknown`` with the list
of what was not checked and why. Services are tried in order (PyPI JSON API, then
OSV) for whatever the previous one could not check.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from noa_core.analysis import _proc
from noa_core.sourcetree import safe_fs
from noa_core.analysis import _manifests as m
from noa_core.analysis.python_dependencies import collect_python, pinned_version
from noa_core.analysis.interface import AnalyzerResult, Finding

LOCK_FILES = ("poetry.lock", "uv.lock", "pdm.lock", "pylock.toml", "Pipfile.lock")
DEFAULT_SERVICES = ("pypi", "osv")


def _pip_audit_available() -> bool:
    return importlib.util.find_spec("pip_audit") is not None


def read_locks(tree: Path) -> tuple[list[dict[str, str]], list[str]]:
    """(name, version, source) of every locked package, and problems reading locks."""
    pins: list[dict[str, str]] = []
    problems: list[str] = []
    for rel in LOCK_FILES:
        if not m.exists(tree, rel):
            continue
        try:
            if rel == "Pipfile.lock":
                doc = m.load_json(tree, rel)
                for section in ("default", "develop"):
                    for name, body in (doc.get(section) or {}).items():
                        version = body.get("version", "") if isinstance(body, dict) else ""
                        if isinstance(version, str) and version.startswith("=="):
                            pins.append({"name": name, "version": version[2:], "source": rel})
                continue
            doc = m.load_toml(tree, rel)
        except (m.ManifestError, AttributeError) as exc:
            problems.append(f"{rel}: {exc}")
            continue
        key = "packages" if rel == "pylock.toml" else "package"
        for pkg in m.as_list(doc.get(key)):
            if not isinstance(pkg, dict):
                continue
            source = m.as_dict(pkg.get("source"))
            if {"editable", "virtual", "path", "directory"} & set(source):
                continue  # the project itself or a local path, not a published release
            if isinstance(pkg.get("name"), str) and isinstance(pkg.get("version"), str):
                pins.append({"name": pkg["name"], "version": pkg["version"], "source": rel})
    return pins, problems


class VulnerabilitiesAnalyzer:
    name = "vulnerabilities"
    version = "1"

    def __init__(self, *, timeout: float = 60.0, services: tuple[str, ...] = DEFAULT_SERVICES,
                 request_timeout: int = 15) -> None:
        self.timeout = timeout
        self.services = services
        self.request_timeout = request_timeout

    def analyze(self, tree: Path) -> AnalyzerResult:
        collected = collect_python(tree, safe_fs.walk(tree))
        locked, lock_problems = read_locks(tree)
        problems = collected.problems + lock_problems
        if not collected.deps and not locked:
            if problems:
                return AnalyzerResult(self.name, "unknown",
                                      reason="Python manifests could not be read: " + "; ".join(problems[:3]),
                                      data={"problems": problems})
            return AnalyzerResult(self.name, "skipped", reason="no Python dependencies declared")

        # What to audit: name -> {version: source}; and what cannot be.
        audit: dict[str, dict[str, str]] = {}
        for pin in locked:
            audit.setdefault(canonicalize_name(pin["name"]), {}).setdefault(pin["version"], pin["source"])
        unpinned: list[dict[str, Any]] = []
        for dep in collected.deps:
            version = pinned_version(dep)
            name = canonicalize_name(dep["name"]) if not dep.get("direct_url") else dep["name"]
            if version is not None and _valid(version):
                audit.setdefault(name, {}).setdefault(version, dep["source"])
            else:
                unpinned.append(dep)
        not_checked: list[dict[str, Any]] = []
        for dep in unpinned:
            name = canonicalize_name(dep["name"]) if not dep.get("direct_url") else dep["name"]
            if name in audit:
                continue  # the tree pins it elsewhere; that version is audited
            why = "direct URL / path dependency" if dep.get("direct_url") else "not pinned to one version"
            not_checked.append({"name": dep["name"], "spec": dep.get("spec", ""),
                                "source": dep["source"], "why": why})

        data: dict[str, Any] = {"services": {}, "checked": [], "not_checked": not_checked,
                                "vulnerable": [], "problems": problems}
        if not _pip_audit_available():
            return AnalyzerResult(self.name, "skipped", reason="pip-audit is not installed", data=data)

        pending = {(name, version): source for name, versions in audit.items()
                   for version, source in versions.items()}
        deadline = time.monotonic() + self.timeout
        reasons: dict[tuple[str, str], list[str]] = {key: [] for key in pending}
        findings: list[Finding] = []
        for service in self.services:
            if not pending:
                break
            if time.monotonic() >= deadline:
                data["services"][service] = "not tried: time limit reached"
                continue
            asked = len(pending)
            outcome, results = self._audit(sorted(pending), service, deadline)
            for key in list(pending):
                result = results.get(key)
                if result is None:
                    reasons[key].append(f"{service}: {outcome}")
                elif "skip_reason" in result:
                    reasons[key].append(f"{service}: {result['skip_reason']}")
                else:
                    findings.extend(self._record(data, key, pending.pop(key), service, result))
            data["services"][service] = f"{outcome}; checked {asked - len(pending)} of {asked}"
        for key, source in sorted(pending.items()):
            not_checked.append({"name": key[0], "spec": f"=={key[1]}", "source": source,
                                "why": "; ".join(reasons[key]) or "not checked"})

        total = len(data["checked"]) + len(not_checked)
        data["total"] = total
        if not_checked or problems:
            pieces = []
            if not_checked:
                unpinned_n = sum(1 for d in not_checked if d["why"] in
                                 ("not pinned to one version", "direct URL / path dependency"))
                pieces.append(f"{len(not_checked)} of {total} dependencies not checked "
                              f"({unpinned_n} unpinned, {len(not_checked) - unpinned_n} "
                              f"not answered by a vulnerability service)")
            if problems:
                pieces.append("some manifests could not be read: " + "; ".join(problems[:2]))
            return AnalyzerResult(self.name, "unknown", reason="; ".join(pieces), data=data,
                                  findings=tuple(findings))
        return AnalyzerResult(self.name, "ok", data=data, findings=tuple(findings))

    def _record(self, data: dict[str, Any], key: tuple[str, str], source: str, service: str,
                result: dict[str, Any]) -> list[Finding]:
        vulns = [v for v in result.get("vulns", []) if isinstance(v, dict)]
        data["checked"].append({"name": key[0], "version": key[1], "source": source,
                                "service": service, "vulns": len(vulns)})
        findings = []
        for v in vulns:
            vuln_id = str(v.get("id"))
            aliases = [str(a) for a in m.as_list(v.get("aliases"))]
            fixes = [str(f) for f in m.as_list(v.get("fix_versions"))]
            data["vulnerable"].append({"name": key[0], "version": key[1], "id": vuln_id,
                                       "aliases": aliases, "fix_versions": fixes})
            also = f" ({', '.join(aliases)})" if aliases else ""
            fixed = ", ".join(fixes) or "no fixed version known"
            findings.append(Finding(
                analyzer=self.name, rule=vuln_id, severity="high",
                message=f"{key[0]} {key[1]}: known vulnerability {vuln_id}{also}; fixed in {fixed}",
                path=source))
        return findings

    def _audit(self, pins: list[tuple[str, str]], service: str, deadline: float
               ) -> tuple[str, dict[tuple[str, str], dict[str, Any]]]:
        """Audit pins with one service. Returns (outcome, results keyed by (name, version))."""
        # pip-audit reports skipped dependencies by name only: one name per run layer.
        layers: list[list[tuple[str, str]]] = []
        for name, version in pins:
            for layer in layers:
                if all(n != name for n, _ in layer):
                    layer.append((name, version))
                    break
            else:
                layers.append([(name, version)])
        results: dict[tuple[str, str], dict[str, Any]] = {}
        outcome = "answered"  # per-dependency skip reasons are read by the caller
        with tempfile.TemporaryDirectory(prefix="noa-pip-audit-") as tmp:
            scratch = Path(tmp)
            for i, layer in enumerate(layers):
                reqs = scratch / f"requirements-{i}.txt"
                reqs.write_text("".join(f"{n}=={v}\n" for n, v in layer), encoding="utf-8")
                report = scratch / f"report-{i}.json"
                argv = _proc.python_argv(
                    "-m", "pip_audit", "--requirement", str(reqs), "--disable-pip", "--no-deps",
                    "--vulnerability-service", service, "--format", "json", "--output", str(report),
                    "--progress-spinner", "off", "--desc", "off", "--aliases", "on",
                    "--timeout", str(self.request_timeout))
                done = _proc.finish(_proc.start(argv, scratch, tag=f"a{i}"), deadline)
                if done.timed_out:
                    return f"timed out after {done.seconds:.0f} s", results
                try:
                    doc = json.loads(report.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError):
                    return _failure(done), results
                versions = dict(layer)
                for dep in doc.get("dependencies", []):
                    name = canonicalize_name(str(dep.get("name", "")))
                    if name in versions:
                        results[(name, versions[name])] = dep
        return outcome, results


def _failure(done: _proc.Completed) -> str:
    """One short line saying why a pip-audit run produced no report."""
    err = done.stderr
    if "NameResolutionError" in err or "Failed to resolve" in err:
        return "service unreachable (host name does not resolve)"
    if "ConnectTimeout" in err or "ReadTimeout" in err:
        return "service unreachable (timed out)"
    if "ConnectionError" in err:
        return "service unreachable (connection failed)"
    return f"pip-audit failed (exit {done.returncode}): {done.stderr_tail(1)[:160]}"


def _valid(version: str) -> bool:
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True
