"""``pyproject.toml``: PEP 621 metadata, PEP 735 dependency groups, Poetry, PDM and uv tables.

Only static data is used. ``dynamic`` dependencies are read from
``[tool.setuptools.dynamic]`` file references when present, else noted. Poetry's ``^``
and ``~`` constraints become PEP 440 ranges (``^1.2.3`` -> ``>=1.2.3,<2.0.0``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from noa_core.pyenv._files import (
    DeclarationError,
    Part,
    Reading,
    exists,
    read_declaration,
    short,
)
from noa_core.pyenv.requirements_txt import read_requirement_file

PYPROJECT = "pyproject.toml"
DEFAULT_BUILD_REQUIRES = ("setuptools>=40.8.0", "wheel")   # PEP 518
MAX_GROUP_DEPTH = 32

Select = Callable[[str], bool]
#: Hatch environments ``hatch test`` / ``hatch run`` use for the tests.
_HATCH_TEST_ENVS = frozenset({"default", "hatch-test"})


@dataclass
class PyProject:
    data: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def project(self) -> dict[str, Any]:
        return _table(self.data, "project")

    @property
    def tool(self) -> dict[str, Any]:
        return _table(self.data, "tool")

    @property
    def poetry(self) -> dict[str, Any]:
        return _table(self.tool, "poetry")

    @property
    def name(self) -> str | None:
        name = self.project.get("name") or self.poetry.get("name")
        return canonicalize_name(name) if isinstance(name, str) and name.strip() else None

    @property
    def has_build_system(self) -> bool:
        return isinstance(self.data.get("build-system"), dict)

    @property
    def installable(self) -> bool:
        if _table(self.tool, "uv").get("package") is False:   # a uv "virtual" project: nothing to build
            return False
        return self.has_build_system or bool(self.project)

    def build(self) -> tuple[tuple[str, ...], str | None]:
        system = _table(self.data, "build-system")
        if not system:
            return DEFAULT_BUILD_REQUIRES, None
        requires = system.get("requires")
        backend = system.get("build-backend")
        reqs = tuple(r for r in requires if isinstance(r, str)) if isinstance(requires, list) else DEFAULT_BUILD_REQUIRES
        return reqs, backend.strip() if isinstance(backend, str) and backend.strip() else None


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key) if key else data
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _requirements(value: Any, where: str, notes: list[str]) -> list[str]:
    """A TOML list of requirement strings; anything else in it is a note."""
    if not isinstance(value, list):
        notes.append(f"{where}: not a list; ignored")
        return []
    for v in value:
        if not isinstance(v, str):
            notes.append(f"{where}: entry {short(repr(v), 60)} is not a string; ignored")
    return [v for v in value if isinstance(v, str)]


def load_pyproject(tree: Path) -> PyProject | None:
    """The parsed ``pyproject.toml``, None when there is none; :class:`DeclarationError` if unreadable."""
    if not exists(tree, PYPROJECT):
        return None
    text = read_declaration(tree, PYPROJECT)
    try:
        return PyProject(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise DeclarationError(f"{PYPROJECT}: not valid TOML ({short(str(exc), 100)}); ignored") from None


def read_pyproject(tree: Path, pp: PyProject, select: Select) -> Reading:
    """Runtime dependencies, then the selected extras, dependency groups and tool tables, in that order."""
    out = Reading(present=True, name=pp.name)
    project = pp.project
    rp = project.get("requires-python")
    out.python_requires = rp.strip() if isinstance(rp, str) and rp.strip() else None
    dynamic = set(_strings(project.get("dynamic")))
    dyn = _table(_table(pp.tool, "setuptools"), "dynamic")
    extras = {k: _requirements(v, f"{PYPROJECT} [project.optional-dependencies] {k}", out.notes)
              for k, v in _table(project, "optional-dependencies").items()}
    if "dependencies" in project:
        out.runtime_declared = True
        where = f"{PYPROJECT} [project] dependencies"
        out.parts.append(Part(where, tuple(_requirements(project["dependencies"], where, out.notes)), runtime=True))
    elif "dependencies" in dynamic:
        files = _file_refs(dyn.get("dependencies"))
        if files:
            out.runtime_declared = True
            out.parts.extend(_file_parts(tree, files, "[tool.setuptools.dynamic] dependencies", out.notes,
                                         runtime=True))
        else:
            out.notes.append(f"{PYPROJECT}: [project] dependencies are dynamic (computed by the build backend); "
                             "read from setup.cfg / setup.py / requirements.txt instead where static")
    if "optional-dependencies" in dynamic:
        for extra, ref in _table(dyn, "optional-dependencies").items():
            files = _file_refs(ref)
            if files:
                extras[extra] = []
                if select(extra):
                    out.parts.extend(_file_parts(tree, files, f"[tool.setuptools.dynamic] optional-dependencies {extra}",
                                                 out.notes))
    out.extras = extras
    for extra, reqs in extras.items():
        if select(extra) and reqs:
            out.parts.append(Part(f"{PYPROJECT} [project.optional-dependencies] {extra}", tuple(reqs)))
    groups = _table(pp.data, "dependency-groups")
    for group in groups:
        if select(group):
            reqs = expand_group(groups, group, out.notes)
            out.parts.append(Part(f"{PYPROJECT} [dependency-groups] {group}", tuple(reqs)))
    uv_dev = _strings(_table(pp.tool, "uv").get("dev-dependencies"))
    if uv_dev:
        out.parts.append(Part(f"{PYPROJECT} [tool.uv] dev-dependencies", tuple(uv_dev)))
    for group, reqs in _table(_table(pp.tool, "pdm"), "dev-dependencies").items():
        if select(group):
            out.parts.append(Part(f"{PYPROJECT} [tool.pdm.dev-dependencies] {group}", tuple(_strings(reqs))))
    for env, table in _table(_table(pp.tool, "hatch"), "envs").items():
        if isinstance(table, dict) and (env in _HATCH_TEST_ENVS or select(env)):
            reqs = _strings(table.get("dependencies")) + _strings(table.get("extra-dependencies"))
            if pp.name:   # the env's "features" are the project's own extras
                reqs += [f"{pp.name}[{feature}]" for feature in _strings(table.get("features"))]
            out.parts.append(Part(f"{PYPROJECT} [tool.hatch.envs.{env}] dependencies", tuple(reqs)))
    _poetry_parts(pp, select, out)
    return out


def _file_refs(ref: Any) -> list[str]:
    if isinstance(ref, dict):
        files = ref.get("file")
        return [files] if isinstance(files, str) else _strings(files)
    return []


def _file_parts(tree: Path, files: list[str], what: str, notes: list[str], *, runtime: bool = False) -> list[Part]:
    parts: list[Part] = []
    for rel in files:
        try:
            rf = read_requirement_file(tree, rel)
        except DeclarationError as exc:
            notes.append(f"{PYPROJECT} {what}: {exc}")
            continue
        notes.extend(rf.notes)
        parts.append(Part(f"{PYPROJECT} {what} ({rel})", tuple(rf.requirements), runtime=runtime))
    return parts


def expand_group(groups: dict[str, Any], name: str, notes: list[str], _stack: tuple[str, ...] = ()) -> list[str]:
    """PEP 735: a group's requirements, ``{include-group = "..."}`` followed (cycles noted, not followed)."""
    wanted = canonicalize_name(name)
    actual = next((g for g in groups if canonicalize_name(g) == wanted), None)
    if actual is None:
        notes.append(f"{PYPROJECT}: [dependency-groups] includes {name!r}, which does not exist")
        return []
    if wanted in _stack or len(_stack) >= MAX_GROUP_DEPTH:
        notes.append(f"{PYPROJECT}: [dependency-groups] {name!r} includes itself (a cycle); not followed again")
        return []
    out: list[str] = []
    entries = groups[actual] if isinstance(groups[actual], list) else []
    for entry in entries:
        if isinstance(entry, str):
            out.append(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("include-group"), str):
            out.extend(expand_group(groups, entry["include-group"], notes, _stack + (wanted,)))
        else:
            notes.append(f"{PYPROJECT}: [dependency-groups] {actual}: entry {short(repr(entry), 60)} ignored")
    return out


# ---------------------------------------------------------------- Poetry

def _poetry_parts(pp: PyProject, select: Select, out: Reading) -> None:
    poetry = pp.poetry
    if not poetry:
        return
    deps = _table(poetry, "dependencies")
    where = f"{PYPROJECT} [tool.poetry.dependencies]"
    python = deps.get("python")
    if isinstance(python, str) and out.python_requires is None and python.strip() != "*":
        out.python_requires = poetry_constraint(python, out.notes, f"{where} python")
    optional_wanted: set[str] = set()
    for extra, names in _table(poetry, "extras").items():
        if select(extra):
            optional_wanted.update(canonicalize_name(n) for n in _strings(names))
    if deps:
        out.runtime_declared = True
        reqs: list[str] = []
        for name, spec in deps.items():
            if canonicalize_name(name) == "python":
                continue
            if _optional(spec) and canonicalize_name(name) not in optional_wanted:
                continue
            reqs.extend(poetry_dependency(name, spec, out.notes, where))
        out.parts.append(Part(where, tuple(reqs), runtime=True))
    for group, table in _table(poetry, "group").items():
        if select(group) and isinstance(table, dict):
            gwhere = f"{PYPROJECT} [tool.poetry.group.{group}.dependencies]"
            reqs = [r for name, spec in _table(table, "dependencies").items()
                    for r in poetry_dependency(name, spec, out.notes, gwhere)]
            out.parts.append(Part(gwhere, tuple(reqs)))
    dev = _table(poetry, "dev-dependencies")
    if dev:
        dwhere = f"{PYPROJECT} [tool.poetry.dev-dependencies]"
        reqs = [r for name, spec in dev.items() for r in poetry_dependency(name, spec, out.notes, dwhere)]
        out.parts.append(Part(dwhere, tuple(reqs)))


def _optional(spec: Any) -> bool:
    return isinstance(spec, dict) and spec.get("optional") is True


def poetry_dependency(name: str, spec: Any, notes: list[str], where: str) -> list[str]:
    """One Poetry dependency entry as PEP 508 strings (a list of tables gives several)."""
    if canonicalize_name(name) == "python":
        return []
    if isinstance(spec, list):
        return [r for s in spec for r in poetry_dependency(name, s, notes, where)]
    if isinstance(spec, str):
        spec = {"version": spec}
    if not isinstance(spec, dict):
        notes.append(f"{where}: {name}: unreadable entry; ignored")
        return []
    for foreign in ("git", "path", "url", "file"):
        if foreign in spec:
            notes.append(f"{where}: {name} comes from a {foreign} source, not an index; ignored")
            return []
    version = spec.get("version", "*")
    specifier = poetry_constraint(version, notes, f"{where} {name}") if isinstance(version, str) else None
    extras = _strings(spec.get("extras"))
    req = name + (f"[{','.join(extras)}]" if extras else "") + (specifier or "")
    markers: list[str] = []
    if isinstance(spec.get("markers"), str):
        markers.append(spec["markers"])
    if isinstance(spec.get("python"), str) and spec["python"].strip() != "*":
        py = poetry_constraint(spec["python"], notes, f"{where} {name} python")
        if py:
            markers.append(" and ".join(f'python_version {s}' for s in _marker_specs(py)))
    if isinstance(spec.get("platform"), str):
        markers.append(f'sys_platform == "{spec["platform"]}"')
    markers = [m for m in markers if m]
    if markers:
        req += "; " + " and ".join(f"({m})" if len(markers) > 1 else m for m in markers)
    return [req]


def _marker_specs(specifier: str) -> list[str]:
    out = []
    for part in specifier.split(","):
        m = re.match(r"^\s*(===|==|!=|~=|>=|<=|>|<)\s*(\S+)\s*$", part)
        if m:
            out.append(f'{m.group(1)} "{m.group(2)}"')
    return out


_OP = re.compile(r"^(\^|~=|~|===|==|!=|>=|<=|>|<|=)?\s*(\S+)$")


def poetry_constraint(constraint: str, notes: list[str], where: str) -> str | None:
    """A Poetry version constraint as a PEP 440 specifier ("" = any version), None when not expressible."""
    text = constraint.strip()
    if text in ("", "*"):
        return ""
    if "||" in text or "|" in text:
        notes.append(f"{where}: {short(text, 60)!r} is a union PEP 440 cannot express; any version accepted")
        return ""
    pieces = [p for chunk in text.split(",") for p in re.findall(r"(?:\^|~=|~|===|==|!=|>=|<=|>|<|=)?\s*[^\s,<>=!~^]+",
                                                               chunk)]
    specs: list[str] = []
    for piece in pieces:
        m = _OP.match(piece.strip())
        if not m:
            notes.append(f"{where}: {short(text, 60)!r} not understood; any version accepted")
            return ""
        op, version = m.group(1) or "", m.group(2)
        converted = _convert(op, version)
        if converted is None:
            notes.append(f"{where}: {short(text, 60)!r} not understood; any version accepted")
            return ""
        specs.extend(converted)
    return ",".join(specs)


def _convert(op: str, version: str) -> list[str] | None:
    if version == "*":
        return []
    numbers = version.split(".")
    if op in ("^", "~") and not all(n.isdigit() for n in numbers[:3] if n):
        base = re.match(r"^(\d+(?:\.\d+)*)", version)
        if not base:
            return None
        numbers = base.group(1).split(".")
    if op == "^":
        ints = [int(n) for n in numbers]
        first = next((i for i, n in enumerate(ints) if n != 0), len(ints) - 1)
        upper = ints[: first + 1]
        upper[-1] += 1
        upper += [0] * (len(ints) - len(upper))
        return [f">={version}", f"<{'.'.join(map(str, upper))}"]
    if op == "~":
        ints = [int(n) for n in numbers]
        keep = 1 if len(ints) == 1 else 2
        upper = ints[:keep]
        upper[-1] += 1
        upper += [0] * (len(ints) - len(upper))
        return [f">={version}", f"<{'.'.join(map(str, upper))}"]
    if op in ("", "="):
        return [f"=={version}"]
    return [f"{op}{version}"]
