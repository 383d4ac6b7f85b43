"""Resolving a project's declared requirements into exact wheels, without running its code.

``uv pip compile --only-binary :all: --format pylock.toml`` resolves against the package
index for one interpreter: only wheel metadata is read, nothing is built, so nothing of
the dropped project (or of its dependencies) runs. The PEP 751 lock it writes names every
package's version and its wheel files (URL and sha256); :func:`choose_wheel` picks the
one file per package that the interpreter installs (the best-ranked compatible tag).

Resolutions are cached by (requirements, interpreter, index) under the cache directory,
so a second drop of the same project resolves without the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.tags import Tag, compatible_tags, cpython_tags, sys_tags
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)

from noa_core.errors import NoaError
from noa_core.pyenv.interpreter import Interpreter

DEFAULT_INDEX_URL = "https://pypi.org/simple"
INDEX_ENV = "NOA_PYPI_INDEX_URL"
_RESOLVE_TIMEOUT_S = 300.0
_FORMAT = "noa-pyenv-resolution-v1"


class ResolutionError(NoaError):
    """The requirements do not resolve to wheels for this interpreter; the message is uv's."""


@dataclass(frozen=True)
class WheelFile:
    name: str        # distribution name, canonical
    version: str
    filename: str
    url: str
    sha256: str
    size: int | None


@dataclass(frozen=True)
class Resolution:
    """The exact set an environment is made of: one wheel per package."""

    key: str
    requirements: tuple[str, ...]
    wheels: tuple[WheelFile, ...]
    index_url: str
    interpreter: str   # Interpreter.tag
    seconds: float
    cached: bool

    @property
    def pins(self) -> tuple[str, ...]:
        return tuple(f"{w.name}=={w.version}" for w in self.wheels)

    def env_key(self) -> str:
        """Content address of the environment: the wheels' hashes and the interpreter."""
        h = hashlib.sha256(f"{_FORMAT}\n{self.interpreter}\n".encode())
        for w in sorted(self.wheels, key=lambda w: w.name):
            h.update(f"{w.name}=={w.version} {w.sha256}\n".encode())
        return h.hexdigest()[:24]


def index_url(explicit: str | None = None) -> str:
    """The index: noa.yaml's ``python_env.index_url``, else ``$NOA_PYPI_INDEX_URL``, else PyPI."""
    return (explicit or os.environ.get(INDEX_ENV) or DEFAULT_INDEX_URL).rstrip("/")


def resolution_key(requirements: Sequence[str], interpreter: Interpreter, index: str,
                   local_wheels: Sequence[str] = ()) -> str:
    doc = json.dumps({"f": _FORMAT, "req": sorted(set(requirements)), "py": interpreter.tag, "index": index,
                      "local": sorted(local_wheels)}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:24]


def interpreter_tags(interpreter: Interpreter) -> list[Tag]:
    """Compatible wheel tags, best first, for ``interpreter`` (same platform as NOA's)."""
    ours = f"{sys.version_info[0]}.{sys.version_info[1]}"
    major, minor = (int(x) for x in interpreter.version.split(".")[:2])
    if interpreter.version.startswith(ours + ".") and sys.implementation.name == "cpython":
        return list(sys_tags())
    platforms = list(dict.fromkeys(t.platform for t in sys_tags()))
    return [*cpython_tags((major, minor), platforms=platforms),
            *compatible_tags((major, minor), platforms=platforms)]


def choose_wheel(candidates: Sequence[WheelFile], tags: Sequence[Tag]) -> WheelFile | None:
    """The candidate whose best tag ranks highest in ``tags`` (None: none is compatible)."""
    rank = {t: i for i, t in enumerate(tags)}
    best: tuple[int, WheelFile] | None = None
    for cand in candidates:
        try:
            _, _, _, file_tags = parse_wheel_filename(cand.filename)
        except InvalidWheelFilename:
            continue
        score = min((rank[t] for t in file_tags if t in rank), default=None)
        if score is not None and (best is None or score < best[0]):
            best = (score, cand)
    return best[1] if best else None


def _parse_pylock(text: str, tags: Sequence[Tag]) -> tuple[WheelFile, ...]:
    doc = tomllib.loads(text)
    chosen: list[WheelFile] = []
    for pkg in doc.get("packages", []):
        name = canonicalize_name(str(pkg.get("name", "")))
        version = str(pkg.get("version", ""))
        candidates = []
        for w in pkg.get("wheels", []) or []:
            url = str(w.get("url", ""))
            filename = str(w.get("name") or url.rsplit("/", 1)[-1].split("#", 1)[0])
            sha = str((w.get("hashes") or {}).get("sha256", ""))
            if url and sha:
                candidates.append(WheelFile(name, version, filename, url, sha, w.get("size")))
        wheel = choose_wheel(candidates, tags)
        if wheel is None:
            raise ResolutionError(f"{name}=={version}: no wheel for {'/'.join(str(t) for t in tags[:1])} "
                                  "(NOA installs dropped projects' dependencies from wheels only)")
        chosen.append(wheel)
    return tuple(sorted(chosen, key=lambda w: w.name))


def _uv_message(stderr: str) -> str:
    lines = [ln.rstrip() for ln in stderr.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Resolved ", "warning: "))] or lines
    return " ".join(" ".join(useful[-6:]).split())[:600] or "uv pip compile failed"


def resolve(requirements: Sequence[str], interpreter: Interpreter, *, uv: Path, cache_dir: Path,
            index: str | None = None, timeout_s: float = _RESOLVE_TIMEOUT_S,
            find_links: Path | None = None) -> Resolution:
    """Resolve ``requirements`` to wheels for ``interpreter`` (cached); raises :class:`ResolutionError`.

    ``find_links`` holds wheels NOA built itself from sdists (see :mod:`noa_core.pyenv.sdists`)."""
    index = index_url(index)
    reqs = tuple(dict.fromkeys(requirements))
    local = sorted(p.name for p in find_links.glob("*.whl")) if find_links is not None and find_links.is_dir() else []
    key = resolution_key(reqs, interpreter, index, local)
    cached = cache_dir / f"pylock.{key}.toml"
    tags = interpreter_tags(interpreter)
    t0 = time.perf_counter()
    if cached.is_file():
        try:
            wheels = _parse_pylock(cached.read_text(encoding="utf-8"), tags)
            os.utime(cached)  # used: kept by `noa workspace cleanup`
            return Resolution(key, reqs, wheels, index, interpreter.tag, time.perf_counter() - t0, True)
        except (OSError, tomllib.TOMLDecodeError, ResolutionError):
            cached.unlink(missing_ok=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # unique per call: threads of one process (merge validation, shards) may resolve the same set at once
    tmp = cache_dir / f"pylock.tmp{os.getpid()}x{uuid.uuid4().hex}.toml"
    argv = [str(uv), "pip", "compile", "-", "--format", "pylock.toml", "--only-binary", ":all:",
            "--python", str(interpreter.executable), "--index-url", index, "--no-header", "--quiet",
            "--output-file", str(tmp)]
    if local:
        argv += ["--find-links", str(find_links)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "VIRTUAL_ENV"))}
    env.update({"UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"})
    try:
        proc = subprocess.run(argv, input="\n".join(reqs) + "\n", capture_output=True, text=True,
                              timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired:
        tmp.unlink(missing_ok=True)
        raise ResolutionError(f"resolving {len(reqs)} requirement(s) timed out after {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise ResolutionError(_uv_message(proc.stderr))
    text = tmp.read_text(encoding="utf-8")
    wheels = _parse_pylock(text, tags)
    os.replace(tmp, cached)
    return Resolution(key, reqs, wheels, index, interpreter.tag, time.perf_counter() - t0, False)
