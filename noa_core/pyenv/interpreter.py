"""Which interpreter and which installer a dropped project's environment is made with.

The environment's Python is the base installation NOA itself runs on (never NOA's
virtual environment, so none of NOA's packages are importable from it), or the one named
by ``NOA_PYENV_PYTHON``. The installer is ``uv`` from NOA's own environment (the PyPI
wheel), else ``uv`` on ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from noa_core.errors import NoaError

PYTHON_ENV = "NOA_PYENV_PYTHON"


class InterpreterError(NoaError):
    """No usable interpreter or installer for a project environment."""


@dataclass(frozen=True)
class Interpreter:
    """A base Python: its executable, its ``X.Y.Z`` version and its installation prefix."""

    executable: Path
    version: str
    prefix: Path

    @property
    def major_minor(self) -> tuple[int, int]:
        """(3, 11) for 3.11.7."""
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)

    @property
    def tag(self) -> str:
        """``cpython-3.11.7``: part of every environment's key."""
        return f"cpython-{self.version}"


def _probe(executable: Path) -> Interpreter:
    code = "import sys,platform;print(platform.python_version());print(sys.base_prefix)"
    try:
        out = subprocess.run([str(executable), "-I", "-S", "-c", code], capture_output=True, text=True,
                             timeout=30, stdin=subprocess.DEVNULL, check=True).stdout.split("\n")
    except (OSError, subprocess.SubprocessError) as exc:
        raise InterpreterError(f"cannot run the interpreter {executable}: {exc}") from None
    return Interpreter(executable=executable, version=out[0].strip(), prefix=Path(out[1].strip()))


def base_interpreter(environ: dict[str, str] | None = None) -> Interpreter:
    """The interpreter project environments are built on (see the module docstring)."""
    env = os.environ if environ is None else environ
    named = env.get(PYTHON_ENV, "").strip()
    if named:
        path = Path(named)
        if not path.is_file():
            raise InterpreterError(f"{PYTHON_ENV}={named}: no such file")
        return _probe(path)
    major, minor = sys.version_info[:2]
    for name in (f"python{major}.{minor}", f"python{major}", "python"):
        candidate = Path(sys.base_prefix) / "bin" / name
        if candidate.is_file():
            return _probe(candidate)
    raise InterpreterError(f"no python executable under {sys.base_prefix}/bin")


def find_uv() -> Path:
    """``uv`` next to NOA's interpreter (the venv), else on PATH."""
    here = Path(sys.executable).parent / "uv"
    if here.is_file() and os.access(here, os.X_OK):
        return here
    found = shutil.which("uv")
    if found:
        return Path(found)
    raise InterpreterError("uv is not installed (it comes with NOA: pip install uv)")
