"""What a dropped Python project declares it needs to run its tests; nothing of it is executed.

:func:`read_declared` follows the order of trust of issue 15:

1. a lock file (``uv.lock``, ``poetry.lock``, ``pdm.lock``, ``Pipfile.lock``, or
   ``requirements*.txt`` files that are nothing but exact ``==`` pins) wins and is used
   alone (``pinned=True``), with every group it locks and each package's marker;
2. otherwise, merged and de-duplicated in this order: ``pyproject.toml`` ``[project]``
   dependencies, test-like extras and PEP 735 dependency groups, the uv / PDM / Poetry
   tables; ``setup.cfg``; ``setup.py`` read with :mod:`ast`; test requirement files (and
   ``requirements.txt`` for runtime when nothing else declares it); ``tox.ini``
   ``[testenv] deps``.

noa.yaml's ``python_env`` section overrides it: ``sources`` replaces the discovery,
``extras`` replaces the test/dev name heuristic, ``requirements`` are added on top.
The project's own name is dropped (its extras' requirements are kept). Every
requirement is checked with :class:`packaging.requirements.Requirement`; whatever is
left out is a note, never an exception.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from noa_core.manifest import PythonEnvConfig
from noa_core.pyenv._collector import Collector
from noa_core.pyenv._files import (
    DeclarationError,
    Part,
    Reading,
    exists,
    is_exact_pin,
    parse_requirement,
    short,
)
from noa_core.pyenv.lockfiles import LOCK_FILES, LockRead, read_lock
from noa_core.pyenv.pyproject_meta import (
    DEFAULT_BUILD_REQUIRES,
    PYPROJECT,
    PyProject,
    load_pyproject,
    read_pyproject,
)
from noa_core.pyenv.requirements_txt import (
    RequirementFile,
    left_out_for_python,
    lock_candidate_files,
    read_requirement_file,
    requirement_files_for_tests,
)
from noa_core.pyenv.setup_static import (
    SETUP_CFG,
    SETUP_PY,
    read_setup_cfg,
    read_setup_py,
)
from noa_core.pyenv.tox_ini import TOX_INI, read_tox_ini

_TESTY = frozenset({"test", "tests", "testing", "dev", "devel", "develop", "development"})
_TESTY_PREFIX = re.compile(r"^(test|tests|testing)-")


@dataclass(frozen=True)
class DeclaredRequirements:
    requirements: tuple[str, ...]   # PEP 508 strings for running the tests: runtime + test extras/groups/files
    pinned: bool                    # a complete lock: every entry name==version
    sources: tuple[str, ...]        # human-readable, in the order used
    python_requires: str | None     # requires-python / python_requires, if declared
    build_requires: tuple[str, ...]  # [build-system] requires; setuptools>=40.8.0 + wheel by default (PEP 518)
    build_backend: str | None       # [build-system] build-backend (None = legacy setuptools)
    installable: bool               # the project itself can be built / installed
    project_name: str | None        # normalised distribution name, if declared
    notes: tuple[str, ...]          # what was ignored, and why


def test_like(name: str) -> bool:
    """An extra / group named like the tests' needs: test, tests, testing, dev (and test-*)."""
    n = canonicalize_name(name)
    return n in _TESTY or bool(_TESTY_PREFIX.match(n))


test_like.__test__ = False  # type: ignore[attr-defined]  # a helper, not a pytest test


def read_declared(tree: Path, config: PythonEnvConfig | None = None,
                  python: tuple[int, int] | None = None) -> DeclaredRequirements:
    """What ``tree`` declares (see the module docstring) for an environment on ``python`` (major,
    minor; default NOA's own), which picks among requirement files kept per Python version.
    Raises only :class:`NotADirectoryError`."""
    tree = Path(tree)
    python = python or (sys.version_info[0], sys.version_info[1])
    if not tree.is_dir():
        raise NotADirectoryError(f"not a directory: {tree}")
    config = config or PythonEnvConfig()
    select: Callable[[str], bool]
    if config.extras:
        chosen = {canonicalize_name(e) for e in config.extras}
        select = lambda name: canonicalize_name(name) in chosen
    else:
        select = test_like

    early_notes: list[str] = []
    pp: PyProject | None = None
    try:
        pp = load_pyproject(tree)
    except DeclarationError as exc:
        early_notes.append(str(exc))
    py = read_pyproject(tree, pp, select) if pp else Reading()
    cfg = read_setup_cfg(tree, select)
    spy = read_setup_py(tree, select)
    name = py.name or cfg.name or spy.name
    extras = {**spy.extras, **cfg.extras, **py.extras}
    c = Collector(project_name=name, extras=extras)
    c.notes_from(early_notes)
    python_requires = py.python_requires or cfg.python_requires or spy.python_requires

    lock: LockRead | None = None
    pinned = False
    if not config.sources:
        for rel, (major, minor) in left_out_for_python(tree, python):
            c.note(f"{rel}: kept for Python {major}.{minor} (this environment: {python[0]}.{python[1]}); not read")
    if config.sources:
        pinned = _configured(tree, config.sources, c, select, py, cfg, spy)
    else:
        lock = _first_lock(tree, c)
        if lock is not None:
            c.add(lock.source, lock.requirements)
            c.notes_from(lock.notes)
            python_requires = python_requires or lock.python_requires
            pinned = True
        elif not _pinned_requirement_files(tree, c, python):
            _merge(tree, c, py, cfg, spy, python)
        else:
            pinned = True
            _cover_runtime(c, _runtime_parts(py, cfg, spy))
    if config.extras:
        declared = {canonicalize_name(e) for e in extras} | _group_names(pp)
        for extra in config.extras:
            if canonicalize_name(extra) not in declared:
                c.note(f"noa.yaml python_env.extras: {extra!r} is not an extra or group the project declares")
    if config.requirements:
        c.add("noa.yaml python_env.requirements", config.requirements)

    build_requires, build_backend = pp.build() if pp else (DEFAULT_BUILD_REQUIRES, None)
    valid_build: list[str] = []
    for raw in build_requires:
        req = parse_requirement(raw)
        if isinstance(req, str):
            c.note(f"{PYPROJECT} [build-system] requires: {short(raw)!r} is not a valid requirement ({req}); ignored")
        else:
            valid_build.append(str(req))
    installable = bool((pp and pp.installable) or spy.present or cfg.defines_package)
    if pp and not pp.installable and (pp.has_build_system or pp.project):
        c.note(f"{PYPROJECT}: [tool.uv] package = false: the project itself is not built")
    pinned = pinned and bool(c.requirements) and all(
        is_exact_pin(r) for r in (parse_requirement(x) for x in c.requirements) if not isinstance(r, str))
    return DeclaredRequirements(
        requirements=tuple(c.requirements), pinned=pinned, sources=tuple(c.sources),
        python_requires=python_requires, build_requires=tuple(valid_build), build_backend=build_backend,
        installable=installable, project_name=name, notes=tuple(c.notes))


def _group_names(pp: PyProject | None) -> set[str]:
    if pp is None:
        return set()
    names: set[str] = set()
    for table in (pp.data.get("dependency-groups"), (pp.tool.get("pdm") or {}).get("dev-dependencies"),
                  pp.poetry.get("group"), pp.poetry.get("extras")):
        if isinstance(table, dict):
            names.update(canonicalize_name(k) for k in table)
    return names


def _first_lock(tree: Path, c: Collector) -> LockRead | None:
    for rel in LOCK_FILES:
        if not exists(tree, rel):
            continue
        try:
            return read_lock(tree, rel)
        except DeclarationError as exc:
            c.note(str(exc))
    return None


def _pinned_requirement_files(tree: Path, c: Collector, python: tuple[int, int]) -> bool:
    """``requirements*.txt`` files that are all exact pins make a lock: used alone."""
    candidates = lock_candidate_files(tree, python)
    files: list[RequirementFile] = []
    for rel in candidates:
        try:
            rf = read_requirement_file(tree, rel, project_name=c.project_name)
        except DeclarationError:
            return False
        if not rf.all_pinned:
            return False
        files.append(rf)
    if not files:
        return False
    for rf in files:
        _add_requirement_file(c, rf)
    return True


def _runtime_parts(py: Reading, cfg: Reading, spy: Reading) -> list[Part]:
    """The project's own install requirements, from where setuptools / the backend would take them."""
    readings = (py,) if py.runtime_declared else (py, cfg, spy)
    return [part for reading in readings for part in reading.parts if part.runtime]


def _cover_runtime(c: Collector, runtime: list[Part]) -> None:
    """Pinned requirement files (pip-compile output) may leave out the project's own dependencies
    (the project is installed without its dependencies): those not pinned there are added as declared."""
    pinned_names = {canonicalize_name(r.name) for r in map(parse_requirement, c.requirements)
                    if not isinstance(r, str)}
    for part in runtime:
        missing = [raw for raw in part.requirements
                   if not isinstance(req := parse_requirement(raw), str) and canonicalize_name(req.name) not in
                   pinned_names and canonicalize_name(req.name) != c.project_name]
        if missing:
            c.note(f"the pinned requirement files leave out {len(missing)} of the project's own dependencies; "
                   f"added from {part.source}")
            c.add(part.source, missing)


def _add_requirement_file(c: Collector, rf: RequirementFile) -> None:
    if rf.rel in c.files_read:
        return   # already read, through another file's -r
    c.add(rf.rel, rf.requirements)
    c.files_read.add(rf.rel)
    for inc in rf.included:
        if inc not in c.files_read:
            c.sources.append(f"{inc} (-r from {rf.rel})")
            c.files_read.add(inc)
    c.notes_from(rf.notes)


def _add_reading(c: Collector, reading: Reading) -> None:
    for part in reading.parts:
        c.add(part.source, part.requirements)
    c.notes_from(reading.notes)


def _merge(tree: Path, c: Collector, py: Reading, cfg: Reading, spy: Reading, python: tuple[int, int]) -> None:
    """No lock: every declaration, in the order of trust."""
    _add_reading(c, py)
    # setuptools reads setup.cfg / setup.py requirements only when pyproject does not state them
    if not py.runtime_declared:
        _add_reading(c, cfg)
        _add_reading(c, spy)
    else:
        for reading in (cfg, spy):
            for part in reading.parts:
                if not part.runtime:
                    c.add(part.source, part.requirements)
            c.notes_from(reading.notes)
    runtime_declared = py.runtime_declared or cfg.runtime_declared or spy.runtime_declared
    if not runtime_declared and exists(tree, "requirements.txt"):
        _requirement_file(tree, c, "requirements.txt")
    for rel in requirement_files_for_tests(tree, python):
        _requirement_file(tree, c, rel)
    _add_reading(c, read_tox_ini(tree))


def _requirement_file(tree: Path, c: Collector, rel: str) -> bool:
    try:
        rf = read_requirement_file(tree, rel, project_name=c.project_name)
    except DeclarationError as exc:
        c.note(str(exc))
        return False
    _add_requirement_file(c, rf)
    return rf.all_pinned


def _configured(tree: Path, sources: list[str], c: Collector, select: Callable[[str], bool],
                py: Reading, cfg: Reading, spy: Reading) -> bool:
    """noa.yaml ``python_env.sources``: exactly these files, in order. True when all are locks / pins."""
    pinned = True
    for rel in sources:
        base = rel.rsplit("/", 1)[-1]
        where = f"noa.yaml python_env.sources: {rel}"
        if not exists(tree, rel):
            c.note(f"{where}: not found (or not a regular file inside the project); ignored")
            pinned = False
            continue
        if base in LOCK_FILES:
            try:
                lock = read_lock(tree, rel)
            except DeclarationError as exc:
                c.note(f"{where}: {exc}")
                pinned = False
                continue
            c.add(lock.source, lock.requirements)
            c.notes_from(lock.notes)
        elif rel == PYPROJECT:
            _add_reading(c, py)
            pinned = False
        elif rel == SETUP_CFG:
            _add_reading(c, cfg)
            pinned = False
        elif rel == SETUP_PY:
            _add_reading(c, spy)
            pinned = False
        elif rel == TOX_INI:
            _add_reading(c, read_tox_ini(tree))
            pinned = False
        else:
            pinned = _requirement_file(tree, c, rel) and pinned
    return pinned


def describe(declared: DeclaredRequirements) -> str:
    """A few lines for logs and reports (no secrets: requirement strings and file names only)."""
    head = (f"{len(declared.requirements)} requirement(s){' (pinned lock)' if declared.pinned else ''} from "
            f"{', '.join(declared.sources) or 'nothing declared'}")
    lines = [head]
    if declared.python_requires:
        lines.append(f"requires-python {declared.python_requires}")
    lines.extend(f"note: {n}" for n in declared.notes)
    return "\n".join(lines)


__all__ = ["DeclaredRequirements", "describe", "read_declared", "test_like"]
