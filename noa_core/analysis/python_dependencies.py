"""Declared Python dependencies, read from manifests without running anything.

pyproject.toml (``[project]`` dependencies and optional-dependencies, PEP 735
``[dependency-groups]``, Poetry, PDM and uv tables, setuptools ``dynamic`` files),
setup.cfg, ``requirements*.txt`` / ``requirements/*.txt``, Pipfile, a literal
``install_requires`` in setup.py (read with :mod:`ast`), and the ``Requires-Dist`` of
an sdist's PKG-INFO when setup.py computes its list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from noa_core.analysis import _manifests as m
from noa_core.analysis.dependency_types import Collected, Dep
from noa_core.sourcetree import safe_fs

REQUIREMENTS_DIRS = ("requirements", "reqs", "requirements.d")
_REQ_FILE = re.compile(r"^[\w.-]*requirements[\w.-]*\.(txt|in)$", re.IGNORECASE)


def pinned_version(dep: Dep) -> str | None:
    """The exact version a Python dependency is pinned to, or None if it is not pinned.

    ``==1.2.3`` and ``===1.2.3`` pin; ``==1.*``, ranges, URLs and bare names do not.
    A Poetry constraint written as a bare version (``"1.2.3"``) is exact in Poetry.
    """
    if dep.get("direct_url"):
        return None
    spec = str(dep.get("spec") or "").strip()
    if dep.get("style") == "poetry" and re.fullmatch(r"\d[\w.+!-]*", spec):
        return spec
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if len(parts) != 1:
        return None
    match = re.fullmatch(r"(===?)\s*([\w.+!-]+)", parts[0])
    if not match or "*" in match.group(2):
        return None
    return match.group(2)


def _python_dep(text: str, group: str, source: str) -> Dep | None:
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return None
    dep: Dep = {"name": req.name, "spec": str(req.specifier), "group": group, "source": source}
    if req.extras:
        dep["extras"] = sorted(req.extras)
    if req.marker:
        dep["marker"] = str(req.marker)
    if req.url:
        dep["spec"] = req.url
        dep["direct_url"] = True
    return dep


def _add_pep508(out: Collected, items: Any, group: str, source: str) -> None:
    if not isinstance(items, list):
        out.problems.append(f"{source}: {group} is not a list")
        return
    for item in items:
        if not isinstance(item, str):
            continue
        dep = _python_dep(item, group, source)
        if dep is None:
            out.problems.append(f"{source}: cannot parse requirement {item[:80]!r}")
        else:
            out.deps.append(dep)


# -- Python ------------------------------------------------------------------------

def collect_python(tree: Path, listing: safe_fs.Listing | None = None) -> Collected:
    listing = listing or safe_fs.walk(tree)
    out = Collected()
    static_project = False
    dynamic_deps = False
    if m.exists(tree, "pyproject.toml"):
        try:
            doc = m.load_toml(tree, "pyproject.toml")
        except m.ManifestError as exc:
            out.problems.append(str(exc))
            doc = {}
        else:
            out.manifests.append("pyproject.toml")
        static_project, dynamic_deps = _pyproject(tree, doc, out)
    # A static [project] table is what installers use; setup.cfg / setup.py then only
    # configure the build, so their dependency lists are not read.
    setup_unknown = False
    if m.exists(tree, "setup.cfg") and not static_project:
        _setup_cfg(tree, out)
    if m.exists(tree, "setup.py") and not static_project:
        setup_unknown = not _setup_py(tree, out)
    for rel in _requirement_files(listing):
        _requirements_file(tree, rel, out)
    if m.exists(tree, "Pipfile"):
        _pipfile(tree, out)
    main_found = any(d["group"] == "main" for d in out.deps)
    need_metadata = setup_unknown or (dynamic_deps and not main_found)
    if need_metadata and m.exists(tree, "PKG-INFO") and _pkg_info(tree, out):
        out.problems = [p for p in out.problems if not p.startswith("setup.py:")]
        return out
    if dynamic_deps and not main_found and not {"setup.py", "setup.cfg"} & set(out.manifests):
        out.problems.append("pyproject.toml: dependencies are dynamic and no readable source "
                            "declares them")
    return out


def _pyproject(tree: Path, doc: dict[str, Any], out: Collected) -> tuple[bool, bool]:
    src = "pyproject.toml"
    project = m.table(doc, "project")
    dynamic = m.as_list(project.get("dynamic"))
    static = bool(project) and "dependencies" not in dynamic
    if "dependencies" in project:
        _add_pep508(out, project["dependencies"], "main", src)
    for extra, items in m.table(project, "optional-dependencies").items():
        _add_pep508(out, items, extra, src)
    for group, items in m.table(doc, "dependency-groups").items():
        _add_pep508(out, [i for i in items if isinstance(i, str)] if isinstance(items, list)
                    else items, group, src)
    setuptools_dynamic = m.table(doc, "tool", "setuptools", "dynamic")
    _dynamic_files(tree, m.table(setuptools_dynamic, "dependencies").get("file"), "main", out)
    for extra, spec in m.table(setuptools_dynamic, "optional-dependencies").items():
        if isinstance(spec, dict):
            _dynamic_files(tree, spec.get("file"), extra, out)
    poetry = m.table(doc, "tool", "poetry")
    if poetry:
        _poetry_table(m.table(poetry, "dependencies"), "main", out)
        _poetry_table(m.table(poetry, "dev-dependencies"), "dev", out)
        for group, body in m.table(poetry, "group").items():
            _poetry_table(m.table(body, "dependencies"), group, out)
    for group, items in m.table(doc, "tool", "pdm", "dev-dependencies").items():
        _add_pep508(out, items, group, src)
    uv_dev = m.table(doc, "tool", "uv").get("dev-dependencies")
    if uv_dev is not None:
        _add_pep508(out, uv_dev, "dev", src)
    return static, "dependencies" in dynamic


def _dynamic_files(tree: Path, files: Any, group: str, out: Collected) -> None:
    for rel in [files] if isinstance(files, str) else files if isinstance(files, list) else []:
        if isinstance(rel, str):
            parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".")]
            _requirements_file(tree, "/".join(parts), out, group=group)


def _poetry_table(deps: dict[str, Any], group: str, out: Collected) -> None:
    for name, value in deps.items():
        if name.lower() == "python":
            continue
        values = value if isinstance(value, list) else [value]
        specs: list[str] = []
        direct = False
        for v in values:
            if isinstance(v, str):
                specs.append(v)
            elif isinstance(v, dict):
                if isinstance(v.get("version"), str):
                    specs.append(v["version"])
                for key in ("git", "path", "url"):
                    if isinstance(v.get(key), str):
                        specs.append(f"{key}+{v[key]}")
                        direct = True
        dep: Dep = {"name": name, "spec": " || ".join(specs) if len(specs) > 1 else
                    (specs[0] if specs else "*"), "group": group,
                    "source": "pyproject.toml [tool.poetry]", "style": "poetry"}
        if direct:
            dep["direct_url"] = True
        out.deps.append(dep)


def _setup_cfg(tree: Path, out: Collected) -> None:
    try:
        cfg = m.load_ini(tree, "setup.cfg")
    except m.ManifestError as exc:
        out.problems.append(str(exc))
        return
    out.manifests.append("setup.cfg")
    if cfg.has_option("options", "install_requires"):
        _add_pep508(out, m.ini_list(cfg.get("options", "install_requires")), "main", "setup.cfg")
    if cfg.has_section("options.extras_require"):
        for extra, value in cfg.items("options.extras_require"):
            _add_pep508(out, m.ini_list(value), extra, "setup.cfg")


def _setup_py(tree: Path, out: Collected) -> bool:
    """Read setup.py; False when its dependencies are not literal (so unknown)."""
    try:
        call = m.parse_setup_py(tree)
    except m.ManifestError as exc:
        out.problems.append(str(exc))
        return False
    out.manifests.append("setup.py")
    if not call.found:
        out.notes.append("setup.py: no setup() call found")
        return True
    ok = True
    for key in ("install_requires", "extras_require"):
        value = call.get(key)
        if value is m.NOT_LITERAL:
            out.problems.append(f"setup.py: {key} is computed, not a literal (not executed)")
            ok = False
    install = call.get("install_requires")
    if isinstance(install, str):
        install = install.splitlines()
    if isinstance(install, (list, tuple)):
        _add_pep508(out, [i for i in install if isinstance(i, str) and i.strip()], "main",
                    "setup.py")
    extras = call.get("extras_require")
    if isinstance(extras, dict):
        for extra, items in extras.items():
            if isinstance(items, str):
                items = items.splitlines()
            if isinstance(items, (list, tuple)):
                _add_pep508(out, [i for i in items if isinstance(i, str) and i.strip()],
                            str(extra), "setup.py")
    return ok


def _pkg_info(tree: Path, out: Collected) -> bool:
    try:
        meta = m.load_pkg_info(tree)
    except m.ManifestError as exc:
        out.problems.append(str(exc))
        return False
    if "requires-dist" in [d.lower() for d in meta.get_all("Dynamic") or []]:
        return False
    out.manifests.append("PKG-INFO")
    out.notes.append("dependencies taken from PKG-INFO Requires-Dist (setup.py not literal)")
    for text in meta.get_all("Requires-Dist") or []:
        dep = _python_dep(text, "main", "PKG-INFO")
        if dep is None:
            out.problems.append(f"PKG-INFO: cannot parse Requires-Dist {text[:80]!r}")
            continue
        extra = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", dep.get("marker", ""))
        if extra:
            dep["group"] = extra.group(1)
        out.deps.append(dep)
    return True


def _requirement_files(listing: safe_fs.Listing) -> list[str]:
    def is_requirements(f: safe_fs.FileEntry) -> bool:
        if len(f.parts) == 1:
            return bool(_REQ_FILE.match(f.name))
        return len(f.parts) == 2 and f.parts[0] in REQUIREMENTS_DIRS and f.suffix in (".txt", ".in")

    return sorted(f.rel for f in listing.files if is_requirements(f))


def _requirements_file(tree: Path, rel: str, out: Collected, group: str | None = None) -> None:
    if rel in out.manifests:
        return
    try:
        text = m.read(tree, rel)
    except (m.ManifestError, OSError) as exc:
        out.problems.append(f"{rel}: {exc}")
        return
    out.manifests.append(rel)
    for lineno, line in _logical_lines(text):
        if line.startswith("-"):
            editable = re.match(r"^(-e|--editable)\s*(\S+)", line)
            if editable:
                out.deps.append(_url_dep(editable.group(2), group or rel, rel))
            continue
        line = re.split(r"\s--?\w", line, maxsplit=1)[0].strip()  # per-line options (--hash)
        if not line:
            continue
        dep = _python_dep(line, group or rel, rel)
        if dep is None:
            if re.match(r"^(\.{0,2}/|[a-z+]+://|git\+|hg\+|svn\+|bzr\+)", line) or \
                    line.endswith((".whl", ".tar.gz", ".zip")):
                out.deps.append(_url_dep(line, group or rel, rel))
            else:
                out.problems.append(f"{rel}:{lineno}: cannot parse requirement {line[:80]!r}")
            continue
        out.deps.append(dep)


def _url_dep(target: str, group: str, source: str) -> Dep:
    egg = re.search(r"#egg=([\w.-]+)", target)
    name = egg.group(1) if egg else target.rstrip("/").rsplit("/", 1)[-1]
    return {"name": name, "spec": target, "group": group, "source": source, "direct_url": True}


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    buffer = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        full = (buffer + line).strip()
        buffer = ""
        if full:
            yield start, full
    if buffer.strip():
        yield start, buffer.strip()


def _pipfile(tree: Path, out: Collected) -> None:
    try:
        doc = m.load_toml(tree, "Pipfile")
    except m.ManifestError as exc:
        out.problems.append(str(exc))
        return
    out.manifests.append("Pipfile")
    for section, group in (("packages", "main"), ("dev-packages", "dev")):
        for name, value in m.table(doc, section).items():
            spec = value if isinstance(value, str) else \
                value.get("version", "*") if isinstance(value, dict) else "*"
            dep: Dep = {"name": name, "spec": "" if spec == "*" else str(spec), "group": group,
                        "source": "Pipfile"}
            if isinstance(value, dict) and any(k in value for k in ("git", "path", "file")):
                dep["direct_url"] = True
            out.deps.append(dep)
