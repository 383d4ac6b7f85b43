"""Adaptation: name the dropped project and turn what the analyzers found into a ``noa.yaml``
(a source's own wins)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from noa_core.analysis.interface import AnalyzerResult, analyzer_data as _data
from noa_core.manifest import MANIFEST_FILENAME, NoaManifest, dump_manifest, load_manifest
from noa_core.pyenv._files import DeclarationError
from noa_core.pyenv.pyproject_meta import load_pyproject

_LANGUAGES = {"python": "python", "rust": "rust", "go": "go", "javascript": "javascript", "typescript": "javascript"}


def project_slug(name: str) -> str:
    """A project name that is safe as a directory and a manifest name."""
    slug = re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-._+")
    return (slug or "project")[:100]


def source_manifest(tree: Path) -> NoaManifest | None:
    """The drop's own ``noa.yaml``, validated (a bad one raises ManifestError: exit 2)."""
    path = tree / MANIFEST_FILENAME
    if path.is_symlink():
        from noa_core.errors import ManifestError

        raise ManifestError(f"{MANIFEST_FILENAME}: must be a regular file, not a symlink")
    return load_manifest(path) if path.is_file() else None


def pyproject_name_version(tree: Path) -> tuple[str | None, str | None]:
    """``[project] name`` and ``version`` of the tree's ``pyproject.toml`` (read with the hostile-tree
    guards); None for what is missing, not a string, or unreadable."""
    try:
        pyproject = load_pyproject(tree)
    except DeclarationError:
        return None, None
    project = pyproject.project if pyproject is not None else {}
    name, version = project.get("name"), project.get("version")
    return (name if isinstance(name, str) else None), (version if isinstance(version, str) else None)


def project_identity(tree: Path, name_hint: str, version_hint: str | None) -> tuple[str, str | None]:
    """The project's (name, version): its ``noa.yaml`` first, then ``pyproject.toml``, then what the
    source says (a bad ``noa.yaml`` raises ManifestError: exit 2)."""
    manifest = source_manifest(tree)
    py_name, py_version = pyproject_name_version(tree)
    name = project_slug((manifest.name if manifest else None) or py_name or name_hint)
    version = (manifest.version if manifest else None) or py_version or version_hint
    return name, version


def generate_manifest(project: str, results: Mapping[str, AnalyzerResult], version: str | None = None) -> NoaManifest:
    languages = _data(results, "languages")
    primary = str(languages.get("primary") or "").lower()
    language = _LANGUAGES.get(primary, "other")
    tests = _data(results, "tests")
    command = tests.get("command")
    pythonpath: list[str] = []
    for suite in tests.get("suites", []):
        pp = suite.get("pythonpath")
        if isinstance(pp, str) and pp not in pythonpath:
            pythonpath.append(pp)
        elif isinstance(pp, list):
            pythonpath += [p for p in pp if p not in pythonpath]
    build = _data(results, "build_system")
    build_cmd = build.get("build_command")
    if build_cmd == ["python", "-m", "build"]:
        # NOA builds Python projects itself (PEP 517, in the project's own environment):
        # `build` is a tool neither NOA nor the project's environment necessarily has.
        build_cmd = None
    elif isinstance(build_cmd, list) and build_cmd[:2] in (["cargo", "build"], ["go", "build"]):
        # NOA's own cargo / go builders do the same and collect the binaries and libraries
        build_cmd = None
    artifacts = ["*.tgz"] if isinstance(build_cmd, list) and build_cmd[1:2] == ["pack"] else []
    doc: dict[str, Any] = {"name": project_slug(project), "language": language,
                           "test": {"command": list(command) if command else None, "pythonpath": pythonpath},
                           "build": {"command": list(build_cmd) if isinstance(build_cmd, list) and build_cmd else None,
                                     "artifacts": artifacts}}
    if version:
        doc["version"] = str(version)[:100]
    return NoaManifest.model_validate(doc)


def adapt(tree: Path, project: str, results: Mapping[str, AnalyzerResult],
          version: str | None = None) -> tuple[NoaManifest, str]:
    """Return (manifest, origin) and make sure ``tree/noa.yaml`` holds it."""
    existing = source_manifest(tree)
    if existing is not None:
        return existing, "source"
    manifest = generate_manifest(project, results, version)
    if manifest.language == "python":
        from noa_core.pyenv.declared import read_declared

        sources = list(read_declared(tree).sources)[:64]
        manifest = manifest.model_copy(update={"python_env": manifest.python_env.model_copy(
            update={"resolved_from": sources})})
    (tree / MANIFEST_FILENAME).write_text("# written by NOA ARK OS from its analysis; edit freely\n" + dump_manifest(manifest))
    return manifest, "generated"
