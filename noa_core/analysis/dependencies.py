"""Declared dependencies, read from manifests without running anything.

Python: pyproject.toml (``[project]`` dependencies and optional-dependencies, PEP 735
``[dependency-groups]``, Poetry, PDM and uv tables, setuptools ``dynamic`` files),
setup.cfg, ``requirements*.txt`` / ``requirements/*.txt``, Pipfile, a literal
``install_requires`` in setup.py (read with :mod:`ast`), and the ``Requires-Dist`` of
an sdist's PKG-INFO when setup.py computes its list. JavaScript: package.json.
Rust: Cargo.toml. Go: go.mod.

The Python readers are :mod:`noa_core.analysis.python_dependencies`; the JavaScript, Rust
and Go ones and the analyzer live here. A manifest that exists but cannot be read makes the result ``unknown``, with the
manifest and the problem listed; what could be read is still reported.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from noa_core.analysis import _manifests as m
from noa_core.analysis.dependency_types import Collected, Dep
from noa_core.analysis.interface import AnalyzerResult
from noa_core.analysis.python_dependencies import collect_python
from noa_core.sourcetree import safe_fs

# -- JavaScript, Rust, Go (Python: noa_core.analysis.python_dependencies) ----------------

def collect_javascript(tree: Path) -> Collected:
    out = Collected()
    if not m.exists(tree, "package.json"):
        return out
    try:
        pkg = m.load_json(tree, "package.json")
    except m.ManifestError as exc:
        out.problems.append(str(exc))
        return out
    if not isinstance(pkg, dict):
        out.problems.append("package.json: not a JSON object")
        return out
    out.manifests.append("package.json")
    for key, group in (("dependencies", "main"), ("devDependencies", "dev"),
                       ("optionalDependencies", "optional"), ("peerDependencies", "peer")):
        section = pkg.get(key)
        if isinstance(section, dict):
            for name, spec in section.items():
                out.deps.append({"name": name, "spec": str(spec), "group": group,
                                 "source": "package.json"})
    return out


def collect_rust(tree: Path) -> Collected:
    out = Collected()
    if not m.exists(tree, "Cargo.toml"):
        return out
    try:
        doc = m.load_toml(tree, "Cargo.toml")
    except m.ManifestError as exc:
        out.problems.append(str(exc))
        return out
    out.manifests.append("Cargo.toml")
    sections: list[tuple[str, dict[str, Any]]] = [
        ("main", m.table(doc, "dependencies")), ("dev", m.table(doc, "dev-dependencies")),
        ("build", m.table(doc, "build-dependencies")),
        ("workspace", m.table(doc, "workspace", "dependencies"))]
    for target, body in m.table(doc, "target").items():
        for key, group in (("dependencies", "main"), ("dev-dependencies", "dev"),
                           ("build-dependencies", "build")):
            sections.append((f"{group} ({target})", m.table(body, key)))
    for group, deps in sections:
        for name, value in deps.items():
            dep: Dep = {"name": name, "spec": "", "group": group, "source": "Cargo.toml"}
            if isinstance(value, str):
                dep["spec"] = value
            elif isinstance(value, dict):
                if isinstance(value.get("package"), str):
                    dep["name"] = value["package"]
                if value.get("workspace") is True:
                    dep["spec"] = "workspace"
                elif isinstance(value.get("version"), str):
                    dep["spec"] = value["version"]
                for key in ("git", "path"):
                    if isinstance(value.get(key), str):
                        dep[key] = value[key]
                if value.get("optional") is True:
                    dep["optional"] = True
            out.deps.append(dep)
    return out


_GO_REQUIRE = re.compile(r"^([^\s]+)\s+([^\s]+)")


def collect_go(tree: Path) -> Collected:
    out = Collected()
    if not m.exists(tree, "go.mod"):
        return out
    try:
        text = m.read(tree, "go.mod")
    except (m.ManifestError, OSError) as exc:
        out.problems.append(f"go.mod: {exc}")
        return out
    out.manifests.append("go.mod")
    in_block = False
    for number, raw in enumerate(text.splitlines(), start=1):
        indirect = "// indirect" in raw
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if in_block:
            if line == ")":
                in_block = False
                continue
            body = line
        elif line.startswith("require"):
            rest = line[len("require"):].strip()
            if rest == "(":
                in_block = True
                continue
            body = rest
        else:
            continue
        match = _GO_REQUIRE.match(body)
        if not match:
            out.problems.append(f"go.mod:{number}: cannot parse require {body[:80]!r}")
            continue
        out.deps.append({"name": match.group(1), "spec": match.group(2),
                         "group": "indirect" if indirect else "main", "source": "go.mod"})
    return out


class DependenciesAnalyzer:
    name = "dependencies"
    version = "1"

    def analyze(self, tree: Path) -> AnalyzerResult:
        listing = safe_fs.walk(tree)
        collected = {
            "python": collect_python(tree, listing),
            "javascript": collect_javascript(tree),
            "rust": collect_rust(tree),
            "go": collect_go(tree),
        }
        data: dict[str, Any] = {eco: c.deps for eco, c in collected.items()}
        data["counts"] = {eco: len(c.deps) for eco, c in collected.items()}
        data["manifests"] = [p for c in collected.values() for p in c.manifests]
        problems = [p for c in collected.values() for p in c.problems]
        data["problems"] = problems
        data["notes"] = [n for c in collected.values() for n in c.notes]
        if problems:
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            return AnalyzerResult(self.name, "unknown",
                                  reason="could not read every declaration: "
                                         + "; ".join(problems[:3]) + more, data=data)
        if not data["manifests"]:
            return AnalyzerResult(self.name, "skipped", reason="no dependency manifest found",
                                  data=data)
        return AnalyzerResult(self.name, "ok", data=data)
