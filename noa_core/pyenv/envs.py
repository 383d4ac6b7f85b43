"""Building a project's virtual environment inside the sandbox, from local wheels only.

``uv venv --relocatable`` then ``uv pip install --no-index --find-links WHEELHOUSE``
run isolated (no network, only the build directory writable), so an install step
could not reach out even if it tried. The environment is content-addressed
(:meth:`Resolution.env_key`: the wheels' hashes and the interpreter) and lives in
``<cache>/envs/<key>``; a finished one is reused as it is by every later drop, swarm
shard and stage that resolves to the same set. Building goes to a private directory
that is renamed into place, so a crash never leaves a half environment behind a key.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from noa_core.config import ExecLimits
from noa_core.errors import NoaError
from noa_core.isolation import run_isolated
from noa_core.pyenv.interpreter import Interpreter
from noa_core.pyenv.resolve import Resolution

MARKER = ".noa-env.json"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


class EnvBuildError(NoaError):
    """Installing the resolved wheels failed; the message is the installer's last lines."""


@dataclass(frozen=True)
class PythonEnv:
    """A ready environment."""

    key: str
    path: Path
    packages: tuple[str, ...]   # name==version, sorted
    interpreter: str            # cpython-X.Y.Z
    build_seconds: float        # what building it took (when it was built)
    reused: bool                # True: found ready, nothing built this time

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def bin_dir(self) -> Path:
        return self.path / "bin"

    def has(self, name: str) -> bool:
        prefix = name.lower().replace("_", "-") + "=="
        return any(p.startswith(prefix) for p in self.packages)


def uv_sandbox_env() -> dict[str, str]:
    """What uv needs inside the sandbox: a private cache, no config files, no downloads."""
    return {"UV_CACHE_DIR": "/tmp/uv-cache", "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never",
            "UV_OFFLINE": "1", "UV_LINK_MODE": "copy", "NO_COLOR": "1", "PATH": SANDBOX_PATH}


def _tail(log: Path, lines: int = 6) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " ".join(" ".join(kept[-lines:]).split())[:600]


def _mark_used(path: Path) -> None:
    """Reuse counts as use: ``noa workspace cleanup`` evicts what was not used for days."""
    try:
        os.utime(path)
    except OSError:
        pass


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None


def ensure_env(resolution: Resolution, interpreter: Interpreter, *, uv: Path, wheelhouse: Path,
               envs_dir: Path, limits: ExecLimits, hide_paths: tuple[str, ...] = ()) -> PythonEnv:
    """The environment of ``resolution``: reused when ready, else built isolated; raises EnvBuildError."""
    key = resolution.env_key()
    final = envs_dir / key
    marker = _read_marker(final)
    if marker is not None:
        _mark_used(final)
        return PythonEnv(key, final, tuple(marker.get("packages", ())), interpreter.tag,
                         float(marker.get("build_seconds", 0.0)), True)
    envs_dir.mkdir(parents=True, exist_ok=True)
    build = envs_dir / f".build-{key}-{uuid.uuid4().hex[:8]}"
    build.mkdir()
    venv = build / "venv"
    log = envs_dir / f".build-{key}.log"
    pins = build / "pins.txt"
    pins.write_text("".join(f"{p}\n" for p in resolution.pins))
    readonly = [str(wheelhouse), str(uv.parent), str(interpreter.prefix)]
    env = uv_sandbox_env()
    t0 = time.perf_counter()
    try:
        steps = [
            [str(uv), "venv", "--relocatable", "--quiet", "--python", str(interpreter.executable), str(venv)],
            [str(uv), "pip", "install", "--python", str(venv / "bin" / "python"), "--no-index",
             "--find-links", str(wheelhouse), "--only-binary", ":all:", "--quiet", "-r", str(pins)],
        ]
        for argv in steps:
            if argv[-1] == str(pins) and not resolution.pins:
                continue
            res = run_isolated(argv, build, limits, env=env, readonly_paths=readonly, hide_paths=hide_paths,
                               stdout_path=log, merge_stderr=True)
            if res.timed_out:
                raise EnvBuildError(f"building the environment timed out after {limits.wall_seconds:.0f} s")
            if res.returncode != 0:
                raise EnvBuildError(f"installing the environment failed (exit {res.returncode}): {_tail(log)}")
        seconds = time.perf_counter() - t0
        (venv / MARKER).write_text(json.dumps({
            "key": key, "packages": list(resolution.pins), "interpreter": interpreter.tag,
            "index_url": resolution.index_url, "requirements": list(resolution.requirements),
            "build_seconds": round(seconds, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }, indent=1))
        try:
            os.rename(venv, final)
        except OSError:
            if _read_marker(final) is None:  # not a concurrent builder's finished copy: a real failure
                raise
        return PythonEnv(key, final, resolution.pins, interpreter.tag, seconds, False)
    finally:
        shutil.rmtree(build, ignore_errors=True)
