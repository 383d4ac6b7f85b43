"""One call that gives a dropped Python project its own environment, or says why it cannot.

:func:`prepare_python_env` reads what the project declares (:mod:`noa_core.pyenv.declared`,
never executing it), resolves that to wheels (:mod:`.resolve`, uv), downloads them
outside the sandbox (:mod:`.fetch`), builds or reuses the content-addressed venv inside
the sandbox (:mod:`.envs`) and builds the project itself into a site directory
(:mod:`.project_layer`). Every step's failure becomes an :class:`EnvChoice` with status
``unknown`` and the tool's own message: a suite is then never run with NOA's packages.

The cache root is ``$NOA_PYENV_CACHE`` when set, else ``NOA_HOME/pyenv``:
``resolutions/``, ``wheels/``, ``envs/``, ``sites/``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from noa_core.config import ExecLimits
from noa_core.errors import HostileInput
from noa_core.pyenv.declared import DeclaredRequirements, read_declared
from noa_core.pyenv.envs import EnvBuildError, PythonEnv, ensure_env
from noa_core.pyenv.fetch import FetchError, fetch_wheels
from noa_core.pyenv.interpreter import (
    Interpreter,
    InterpreterError,
    base_interpreter,
    find_uv,
)
from noa_core.pyenv.project_layer import ProjectBuildError, ensure_project_site
from noa_core.pyenv.resolve import Resolution, ResolutionError, index_url, resolve
from noa_core.pyenv.sdists import (
    SdistBuildError,
    build_wheel_from_sdist,
    wheelless_package,
)
from noa_core.storage.hashing import digest_tree

CACHE_ENV = "NOA_PYENV_CACHE"
Status = Literal["ready", "unknown", "disabled"]
_SETUPTOOLS_BACKENDS = (None, "setuptools.build_meta", "setuptools.build_meta:__legacy__")


@dataclass(frozen=True)
class PyenvLayout:
    root: Path

    @classmethod
    def for_home(cls, home: Path) -> "PyenvLayout":
        shared = os.environ.get(CACHE_ENV, "").strip()
        return cls(Path(shared).resolve() if shared else Path(home).resolve() / "pyenv")

    @property
    def resolutions(self) -> Path:
        return self.root / "resolutions"

    @property
    def wheels(self) -> Path:
        return self.root / "wheels"

    @property
    def envs(self) -> Path:
        return self.root / "envs"

    @property
    def sites(self) -> Path:
        return self.root / "sites"

    @property
    def built(self) -> Path:
        """Wheels NOA built itself (in the sandbox) from dependencies published only as sdists."""
        return self.root / "built"


@dataclass(frozen=True)
class EnvChoice:
    """What a Python test run gets: a ready environment, or the reason there is none."""

    status: Status
    reason: str = ""
    env: PythonEnv | None = None
    site: Path | None = None
    sources: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    wheelhouse: Path | None = None  # where its wheels (and the project's build requirements) are

    @property
    def ready(self) -> bool:
        return self.status == "ready" and self.env is not None

    @property
    def readonly_paths(self) -> tuple[str, ...]:
        """What a run in this environment must see (read-only) inside the sandbox."""
        if self.env is None:
            return ()
        paths = [str(self.env.path)]
        if self.site is not None:
            paths.append(str(self.site))
        return tuple(paths)

    def summary(self) -> dict[str, Any]:
        """For reports: the environment's hash, size, sources and the time it took."""
        out: dict[str, Any] = {"status": self.status, "reason": self.reason, "sources": list(self.sources),
                               "seconds": {k: round(v, 3) for k, v in self.timings.items()}}
        if self.env is not None:
            out.update({"hash": self.env.key, "path": str(self.env.path), "packages": len(self.env.packages),
                        "interpreter": self.env.interpreter, "reused": self.env.reused,
                        "project_installed": self.site is not None})
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    def as_dict(self) -> dict[str, Any]:
        """Serialisable (swarm jobs travel to work pools as JSON)."""
        doc = self.summary()
        if self.env is not None:
            doc["env"] = {"key": self.env.key, "path": str(self.env.path), "packages": list(self.env.packages),
                          "interpreter": self.env.interpreter, "build_seconds": self.env.build_seconds,
                          "reused": self.env.reused}
        doc["site"] = str(self.site) if self.site else None
        doc["wheelhouse"] = str(self.wheelhouse) if self.wheelhouse else None
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "EnvChoice":
        env_doc = doc.get("env")
        env = None
        if env_doc:
            env = PythonEnv(env_doc["key"], Path(env_doc["path"]), tuple(env_doc["packages"]),
                            env_doc["interpreter"], float(env_doc["build_seconds"]), bool(env_doc["reused"]))
        return cls(status=doc["status"], reason=doc.get("reason", ""), env=env,
                   site=Path(doc["site"]) if doc.get("site") else None, sources=tuple(doc.get("sources", ())),
                   timings=dict(doc.get("seconds", {})), notes=tuple(doc.get("notes", ())),
                   wheelhouse=Path(doc["wheelhouse"]) if doc.get("wheelhouse") else None)


def _unknown(reason: str, declared: DeclaredRequirements | None, timings: dict[str, float],
             notes: tuple[str, ...] = ()) -> EnvChoice:
    return EnvChoice("unknown", reason, sources=declared.sources if declared else (), timings=timings,
                     notes=notes)


def _names(requirements: tuple[str, ...]) -> set[str]:
    out = set()
    for r in requirements:
        try:
            out.add(canonicalize_name(Requirement(r).name))
        except InvalidRequirement:
            continue
    return out


def python_supported(python_requires: str | None, interpreter: Interpreter) -> str | None:
    """None when ``interpreter`` satisfies ``requires-python``, else the reason."""
    if not python_requires:
        return None
    try:
        spec = SpecifierSet(python_requires)
    except InvalidSpecifier:
        return None
    if spec.contains(interpreter.version, prereleases=True):
        return None
    return f"the project requires Python {python_requires}; NOA has {interpreter.version} only"


def build_requirements(declared: DeclaredRequirements) -> tuple[str, ...]:
    reqs = list(declared.build_requires)
    if declared.build_backend in _SETUPTOOLS_BACKENDS and "wheel" not in _names(tuple(reqs)):
        reqs.append("wheel")  # older setuptools asks for it through get_requires_for_build_wheel
    return tuple(reqs)


_MAX_SDIST_BUILDS = 5


def _resolve_building_sdists(requirements: tuple[str, ...], interpreter: Interpreter, uv: Path, layout: PyenvLayout,
                             index: str, limits: ExecLimits, hide_paths: tuple[str, ...]
                             ) -> tuple[Resolution, list[str]]:
    """Resolve to wheels; a dependency with no wheel on the index is built from its sdist in the
    sandbox (at most a few per resolution) and the resolution tried again."""
    built: list[str] = []
    while True:
        try:
            return resolve(requirements, interpreter, uv=uv, cache_dir=layout.resolutions, index=index,
                           find_links=layout.built), built
        except ResolutionError as exc:
            missing = wheelless_package(str(exc))
            if missing is None or missing.name in built or len(built) >= _MAX_SDIST_BUILDS:
                raise
            build_wheel_from_sdist(missing, interpreter, uv=uv, wheelhouse=layout.wheels, built_dir=layout.built,
                                   resolutions=layout.resolutions, index=index, limits=limits, hide_paths=hide_paths)
            built.append(missing.name)


def prepare_python_env(tree: Path, *, home: Path, limits: ExecLimits, config: Any = None,
                       test_runner: str | None = "pytest", hide_paths: tuple[str, ...] = ()) -> EnvChoice:
    """The project's environment (built or reused), or ``unknown`` with the reason; never raises for
    anything the project declares. ``config`` is noa.yaml's ``python_env`` section (or None).
    ``test_runner`` is added when the project does not declare it (a plain venv by hand needs it too)."""
    timings: dict[str, float] = {}
    if config is not None and not getattr(config, "enabled", True):
        return EnvChoice("disabled", "python_env.enabled is false in noa.yaml: no environment, no Python test run")
    layout = PyenvLayout.for_home(home)
    t0 = time.perf_counter()
    try:
        interpreter = base_interpreter()
        uv = find_uv()
    except InterpreterError as exc:
        return _unknown(str(exc), None, timings)
    try:
        declared = read_declared(Path(tree), config, python=interpreter.major_minor)
    except (OSError, ValueError) as exc:
        return _unknown(f"cannot read the project's requirements: {exc}", None, timings)
    timings["read"] = time.perf_counter() - t0
    notes = tuple(declared.notes)
    unsupported = python_supported(declared.python_requires, interpreter)
    if unsupported:
        return _unknown(unsupported, declared, timings, notes)
    requirements = tuple(declared.requirements)
    if test_runner and canonicalize_name(test_runner) not in _names(requirements):
        requirements += (test_runner,)
        notes += (f"{test_runner} added: the project does not declare it",)
    index = index_url(getattr(config, "index_url", None) if config is not None else None)
    try:
        t = time.perf_counter()
        resolution, built = _resolve_building_sdists(requirements, interpreter, uv, layout, index, limits, hide_paths)
        timings["resolve"] = time.perf_counter() - t
        if built:
            notes += tuple(f"built {name} from its sdist in the sandbox (no wheel on the index)" for name in built)
        t = time.perf_counter()
        fetched = fetch_wheels(resolution.wheels, layout.wheels)
        timings["fetch"] = time.perf_counter() - t
        env = ensure_env(resolution, interpreter, uv=uv, wheelhouse=layout.wheels, envs_dir=layout.envs,
                         limits=limits, hide_paths=hide_paths)
        timings["install"] = 0.0 if env.reused else env.build_seconds
        site = None
        if declared.installable:
            t = time.perf_counter()
            build_res, _ = _resolve_building_sdists(build_requirements(declared), interpreter, uv, layout, index,
                                                    limits, hide_paths)
            fetch_wheels(build_res.wheels, layout.wheels)
            tree_hash = digest_tree(Path(tree)).tree_hash
            site = ensure_project_site(Path(tree), tree_hash, env, uv=uv, wheelhouse=layout.wheels,
                                       sites_dir=layout.sites, limits=limits, hide_paths=hide_paths).path
            timings["project"] = time.perf_counter() - t
    except ResolutionError as exc:
        return _unknown(f"the dependencies do not resolve: {exc}", declared, timings, notes)
    except SdistBuildError as exc:
        return _unknown(str(exc), declared, timings, notes)
    except (FetchError, HostileInput) as exc:
        return _unknown(f"downloading the dependencies failed: {exc}", declared, timings, notes)
    except EnvBuildError as exc:
        return _unknown(str(exc), declared, timings, notes)
    except ProjectBuildError as exc:
        return _unknown(str(exc), declared, timings, notes)
    timings["total"] = time.perf_counter() - t0
    if fetched.downloaded:
        notes += (f"downloaded {fetched.downloaded} wheel(s), {fetched.bytes_downloaded / 1e6:.1f} MB",)
    return EnvChoice("ready", env=env, site=site, sources=tuple(declared.sources), timings=timings, notes=notes,
                     wheelhouse=layout.wheels)
