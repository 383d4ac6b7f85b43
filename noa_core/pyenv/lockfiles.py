"""Lock files: ``uv.lock``, ``poetry.lock``, ``pdm.lock``, ``Pipfile.lock``, read as data.

A lock names every package's exact version; NOA installs all of them (every group: the
tests need the dev/test groups) as ``name==version``, keeping each package's environment
marker when the lock gives one, so an installer skips a win32-only package on Linux.
The project's own entries (uv: ``editable``/``virtual``/``directory`` sources) are left
out; packages from git, URLs or local paths are not index packages: each is a note.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import InvalidMarker, Marker
from packaging.utils import canonicalize_name

from noa_core.pyenv._files import (
    MAX_LOCK_BYTES,
    DeclarationError,
    read_declaration,
    short,
)
from noa_core.pyenv.pyproject_meta import poetry_constraint

LOCK_FILES = ("uv.lock", "poetry.lock", "pdm.lock", "Pipfile.lock")
#: Beyond this many alternative conditions a package's marker is dropped (installed everywhere).
MAX_MARKER_ALTERNATIVES = 8
MAX_MARKER_CHARS = 2000


@dataclass
class LockRead:
    source: str
    requirements: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    python_requires: str | None = None
    own_names: list[str] = field(default_factory=list)


def read_lock(tree: Path, rel: str) -> LockRead:
    """Parse the lock file ``rel`` (its kind from its file name); :class:`DeclarationError` if unusable."""
    name = rel.rsplit("/", 1)[-1]
    readers: dict[str, Callable[[str, str], LockRead]] = {
        "uv.lock": _uv, "poetry.lock": _poetry, "pdm.lock": _pdm, "Pipfile.lock": _pipfile,
    }
    reader = readers.get(name)
    if reader is None:
        raise DeclarationError(f"{rel}: not a lock file NOA reads ({', '.join(LOCK_FILES)})")
    text = read_declaration(tree, rel, cap=MAX_LOCK_BYTES)
    try:
        read = reader(rel, text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise DeclarationError(f"{rel}: not valid {'JSON' if name.endswith('Pipfile.lock') else 'TOML'} "
                               f"({short(str(exc), 100)}); ignored") from None
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        raise DeclarationError(f"{rel}: unexpected structure ({short(str(exc), 100)}); ignored") from None
    if not read.requirements and not read.own_names:
        raise DeclarationError(f"{rel}: locks no package; ignored")
    return read


def _pin(name: str, version: str, marker: str | None, notes: list[str], source: str,
         extras: Iterable[str] = ()) -> str:
    extra = f"[{','.join(sorted(extras))}]" if extras else ""
    req = f"{name}{extra}=={version}"
    if marker:
        try:
            Marker(marker)
        except InvalidMarker:
            notes.append(f"{source}: marker of {name} ({short(marker, 80)!r}) is not valid; installed everywhere")
            return req
        req += f"; {marker}"
    return req


def _or(markers: Iterable[str]) -> str | None:
    alts = sorted(set(markers))
    if not alts:
        return None
    return alts[0] if len(alts) == 1 else " or ".join(f"({m})" for m in alts)


# ---------------------------------------------------------------- uv.lock

_UV_OWN = ("editable", "virtual", "directory")
_UV_FOREIGN = ("git", "url", "path")


def _uv(rel: str, text: str) -> LockRead:
    data = tomllib.loads(text)
    out = LockRead(source=rel, python_requires=_str(data.get("requires-python")))
    packages = [p for p in data.get("package", []) if isinstance(p, dict) and isinstance(p.get("name"), str)]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for p in packages:
        by_name.setdefault(canonicalize_name(p["name"]), []).append(p)
    roots = [p for p in packages if any(k in (p.get("source") or {}) for k in _UV_OWN)]
    conditions = _uv_conditions(packages, by_name, roots)
    for p in packages:
        name, version = p["name"], _str(p.get("version"))
        src = p.get("source") or {}
        if any(k in src for k in _UV_OWN):
            out.own_names.append(canonicalize_name(name))
            continue
        if any(k in src for k in _UV_FOREIGN) or version is None:
            kind = next((k for k in _UV_FOREIGN if k in src), "no version")
            out.notes.append(f"{rel}: {name} comes from a {kind} source, not an index; not installed")
            continue
        cond = conditions.get(id(p))
        out.requirements.append(_pin(name, version, _or(cond) if cond else None, out.notes, rel))
    return out


def _uv_edges(p: dict[str, Any]) -> Iterable[dict[str, Any]]:
    yield from (d for d in p.get("dependencies", []) or [] if isinstance(d, dict))
    for table in ("optional-dependencies", "dev-dependencies"):
        for deps in (p.get(table) or {}).values():
            yield from (d for d in deps or [] if isinstance(d, dict))


_UNREACHED = object()


def _uv_conditions(packages: list[dict[str, Any]], by_name: dict[str, list[dict[str, Any]]],
                   roots: list[dict[str, Any]]) -> dict[int, frozenset[str] | None]:
    """Per package (by id), the markers under which it is needed: None = always; propagated
    from the project's own packages along the lock's dependency edges."""
    cond: dict[int, Any] = {id(p): None for p in (roots or packages)}
    work = list(roots or packages)
    while work:
        parent = work.pop()
        pc = cond.get(id(parent))
        for edge in _uv_edges(parent):
            ename = edge.get("name")
            if not isinstance(ename, str):
                continue
            targets = by_name.get(canonicalize_name(ename), [])
            if len(targets) > 1 and isinstance(edge.get("version"), str):
                targets = [t for t in targets if t.get("version") == edge["version"]]
            m = edge.get("marker") if isinstance(edge.get("marker"), str) else None
            new: frozenset[str] | None
            if m is None:
                new = pc
            elif pc is None:
                new = frozenset({m})
            else:
                new = frozenset(f"({a}) and ({m})" for a in pc)
            for child in targets:
                key = id(child)
                old = cond.get(key, _UNREACHED)
                if old is None:
                    continue   # already needed everywhere
                merged = None if new is None else (old if isinstance(old, frozenset) else frozenset()) | new
                if merged is not None and (len(merged) > MAX_MARKER_ALTERNATIVES
                                           or any(len(x) > MAX_MARKER_CHARS for x in merged)):
                    merged = None
                if old is _UNREACHED or merged != old:
                    cond[key] = merged
                    work.append(child)
    return cond


# ---------------------------------------------------------------- poetry.lock

_POETRY_FOREIGN = ("git", "directory", "file", "url")


def _poetry(rel: str, text: str) -> LockRead:
    data = tomllib.loads(text)
    meta = data.get("metadata") or {}
    out = LockRead(source=rel)
    pyver = _str(meta.get("python-versions"))
    if pyver and pyver != "*":
        out.python_requires = poetry_constraint(pyver, out.notes, f"{rel} python-versions")
    packages = [p for p in data.get("package", []) if isinstance(p, dict) and isinstance(p.get("name"), str)]
    edge_markers = _poetry_edge_markers(packages)
    for p in packages:
        name, version = p["name"], _str(p.get("version"))
        kind = _str((p.get("source") or {}).get("type"))
        if kind in _POETRY_FOREIGN or version is None:
            out.notes.append(f"{rel}: {name} comes from a {kind or 'versionless'} source, not an index; not installed")
            continue
        marker = _poetry_marker(p, edge_markers.get(canonicalize_name(name)))
        out.requirements.append(_pin(name, version, marker, out.notes, rel))
    return out


def _poetry_marker(p: dict[str, Any], from_edges: list[str | None] | None) -> str | None:
    markers = p.get("markers")
    if isinstance(markers, str):
        return markers
    if isinstance(markers, dict):
        groups = [g for g in p.get("groups", []) if isinstance(g, str)]
        if any(g not in markers for g in groups) or not markers:
            return None
        return _or(str(v) for v in markers.values())
    if not from_edges or any(m is None for m in from_edges):
        return None   # a root, or needed unconditionally by something
    return _or(m for m in from_edges if m)


def _poetry_edge_markers(packages: list[dict[str, Any]]) -> dict[str, list[str | None]]:
    """Older locks (no per-package ``markers``): the markers on the edges pointing at each package."""
    edges: dict[str, list[str | None]] = {}
    for p in packages:
        for dep, spec in (p.get("dependencies") or {}).items():
            specs = spec if isinstance(spec, list) else [spec]
            for s in specs:
                m = s.get("markers") if isinstance(s, dict) and isinstance(s.get("markers"), str) else None
                edges.setdefault(canonicalize_name(dep), []).append(m)
    return edges


# ---------------------------------------------------------------- pdm.lock

def _pdm(rel: str, text: str) -> LockRead:
    data = tomllib.loads(text)
    out = LockRead(source=rel)
    targets = (data.get("metadata") or {}).get("targets") or []
    if targets and isinstance(targets[0], dict):
        out.python_requires = _str(targets[0].get("requires_python"))
    for p in data.get("package", []):
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            continue
        name, version = p["name"], _str(p.get("version"))
        if p.get("editable") or "path" in p or "git" in p or "url" in p or version is None:
            where = "git" if "git" in p else "URL" if "url" in p else "local path"
            out.notes.append(f"{rel}: {name} comes from a {where} source, not an index; not installed")
            continue
        out.requirements.append(_pin(name, version, _str(p.get("marker")), out.notes, rel))
    return out


# ---------------------------------------------------------------- Pipfile.lock

def _pipfile(rel: str, text: str) -> LockRead:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise TypeError("the document is not an object")
    out = LockRead(source=rel)
    for section in ("default", "develop"):
        for name, entry in (data.get(section) or {}).items():
            if not isinstance(entry, dict):
                continue
            version = _str(entry.get("version"))
            if not version or not version.startswith("==") or any(k in entry for k in ("git", "path", "file")):
                out.notes.append(f"{rel}: {name} ({section}) is not an exact index pin; not installed")
                continue
            extras = [e for e in entry.get("extras", []) if isinstance(e, str)]
            out.requirements.append(_pin(name, version[2:], _str(entry.get("markers")), out.notes, rel, extras))
    return out


def _str(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
