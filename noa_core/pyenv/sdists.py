"""Dependencies that exist only as source distributions: built into wheels inside the sandbox.

uv resolves wheels only (building an sdist to read its metadata would run its code on the
host). When it answers that a package "has no usable wheels", NOA downloads that package's
sdist from the index (sha256 checked), reads its ``[build-system] requires`` from the
archive (reading a file runs nothing), resolves and downloads those build requirements as
wheels, and builds the sdist with ``uv build --wheel --no-index --offline`` inside
bubblewrap with no network. The wheel lands in the cache's ``built/`` folder, which later
resolutions see through ``--find-links``, so it is built once.
"""

from __future__ import annotations

import io
import re
import shutil
import tarfile
import tomllib
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

from noa_core.config import ExecLimits, IngestLimits
from noa_core.errors import NoaError
from noa_core.intake.pypi import resolve_sdist
from noa_core.isolation import run_isolated
from noa_core.pyenv.envs import _tail, uv_sandbox_env
from noa_core.pyenv.fetch import fetch_file, fetch_wheels
from noa_core.pyenv.interpreter import Interpreter
from noa_core.pyenv.pyproject_meta import DEFAULT_BUILD_REQUIRES as _DEFAULT_BUILD_REQUIRES
from noa_core.pyenv.resolve import resolve

_NO_WHEELS = re.compile(r"(?:all versions of|only|[Bb]ecause) ([A-Za-z0-9][A-Za-z0-9._-]*)(?:==([A-Za-z0-9.+!_-]+))?"
                        r" (?:has|have) no usable wheels")
_MAX_PYPROJECT = 1024 * 1024


class SdistBuildError(NoaError):
    """A dependency's sdist could not be fetched or built; the message says which and why."""


@dataclass(frozen=True)
class Wheelless:
    name: str
    version: str | None


def wheelless_package(uv_message: str) -> Wheelless | None:
    """The package uv could not find a wheel for, from its resolver message (None: another failure)."""
    match = _NO_WHEELS.search(uv_message)
    if match is None:
        return None
    return Wheelless(match.group(1), match.group(2))


def _pyproject_of(sdist: Path) -> bytes | None:
    """The sdist's top-level pyproject.toml, read from the archive without extracting anything."""
    name = sdist.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(sdist) as tar:
            for member in tar:
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == "pyproject.toml" and member.isfile() \
                        and member.size <= _MAX_PYPROJECT:
                    fh = tar.extractfile(member)
                    return fh.read() if fh else None
        return None
    if name.endswith(".zip"):
        with zipfile.ZipFile(sdist) as zf:
            for info in zf.infolist():
                parts = info.filename.split("/")
                if len(parts) == 2 and parts[1] == "pyproject.toml" and info.file_size <= _MAX_PYPROJECT:
                    return zf.read(info)
    return None


def build_requires_of(sdist: Path) -> tuple[str, ...]:
    raw = _pyproject_of(sdist)
    if raw is None:
        return _DEFAULT_BUILD_REQUIRES
    try:
        reqs = tomllib.load(io.BytesIO(raw)).get("build-system", {}).get("requires")
    except tomllib.TOMLDecodeError:
        return _DEFAULT_BUILD_REQUIRES
    if not isinstance(reqs, list) or not all(isinstance(r, str) for r in reqs):
        return _DEFAULT_BUILD_REQUIRES
    return tuple(reqs) + (() if any(r.split("[")[0].strip().lower() == "wheel" for r in reqs) else ("wheel",))


def build_wheel_from_sdist(package: Wheelless, interpreter: Interpreter, *, uv: Path, wheelhouse: Path,
                           built_dir: Path, resolutions: Path, index: str, limits: ExecLimits,
                           hide_paths: tuple[str, ...] = ()) -> Path:
    """Fetch ``package``'s sdist and build its wheel isolated, offline; the wheel's path in ``built_dir``."""
    try:
        choice = resolve_sdist(package.name, package.version, IngestLimits(), index_url=index + "/")
    except NoaError as exc:
        raise SdistBuildError(f"{package.name} has no wheel and its sdist cannot be had: {exc}") from None
    sdists = wheelhouse.parent / "sdists"
    sdist = fetch_file(choice.url, choice.filename, choice.sha256, sdists)
    build_reqs = build_requires_of(sdist)
    from noa_core.pyenv.resolve import ResolutionError

    try:
        reqs = resolve(build_reqs, interpreter, uv=uv, cache_dir=resolutions, index=index)
    except ResolutionError as exc:
        raise SdistBuildError(f"the build requirements of {choice.filename} do not resolve: {exc}") from None
    fetch_wheels(reqs.wheels, wheelhouse)
    built_dir.mkdir(parents=True, exist_ok=True)
    work = built_dir.parent / f".sdist-build-{uuid.uuid4().hex[:10]}"
    work.mkdir(parents=True)
    log = built_dir.parent / f".sdist-build-{choice.filename}.log"
    try:
        local = work / choice.filename
        shutil.copyfile(sdist, local)
        out = work / "out"
        argv = [str(uv), "build", "--wheel", "--out-dir", str(out), "--python", str(interpreter.executable),
                "--no-index", "--find-links", str(wheelhouse), "--offline", "--quiet", str(local)]
        env = {**uv_sandbox_env(), "SOURCE_DATE_EPOCH": "315532800"}
        res = run_isolated(argv, work, limits, env=env, hide_paths=hide_paths, stdout_path=log, merge_stderr=True,
                           readonly_paths=[str(wheelhouse), str(uv.parent), str(interpreter.prefix)])
        wheels = sorted(out.glob("*.whl"))
        if res.returncode != 0 or not wheels:
            raise SdistBuildError(f"building {choice.filename} (no wheel on the index) failed inside the sandbox "
                                  f"(exit {res.returncode}): {_tail(log)}")
        target = built_dir / wheels[0].name
        shutil.move(str(wheels[0]), target)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)
