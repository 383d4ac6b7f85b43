"""The Python project a check runs on, and what it runs under.

Detecting Python code, the name durations and flaky tests are recorded under, the test
command from the project's ``noa.yaml`` (``test.command``, ``test.pythonpath``,
``test.timeout_s``; else ``python -m pytest`` with ``src`` on the path for a src layout),
the project's own environment, and the versions that decide a test result.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path

from noa_core.config import ExecLimits
from noa_core.errors import ManifestError
from noa_core.manifest import MANIFEST_FILENAME, NoaManifest, load_manifest
from noa_core.pyenv.provider import EnvChoice, prepare_python_env
from noa_core.swarm.interface import SwarmContext
from noa_core.validation.runner import is_python_command, suggest_pythonpath

__all__ = [
    "DEFAULT_TEST_COMMAND",
    "environment_fingerprint",
    "has_python",
    "project_env",
    "project_name",
    "pytest_version",
    "suite_command",
    "tests_tool_version",
]

DEFAULT_TEST_COMMAND = ("python", "-m", "pytest")
_SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".tox", "target", "vendor"}
_MAX_DETECT_ENTRIES = 20_000


@functools.lru_cache(maxsize=1)
def environment_fingerprint() -> str:
    """A short hash of every distribution installed next to NOA's interpreter: the tests run
    there, so a changed environment is different work."""
    names = sorted(f"{(d.metadata['Name'] or '').lower()}=={d.version}" for d in importlib.metadata.distributions())
    return hashlib.blake2b("\n".join(names).encode(), digest_size=6).hexdigest()


@functools.lru_cache(maxsize=1)
def pytest_version() -> str | None:
    try:
        return importlib.metadata.version("pytest")
    except importlib.metadata.PackageNotFoundError:
        return None


def project_name(tree: Path) -> str:
    """The name durations and flaky tests are recorded under: noa.yaml, pyproject, or the
    directory name without a version suffix."""
    tree = Path(tree)
    try:
        if (tree / MANIFEST_FILENAME).is_file():
            return load_manifest(tree / MANIFEST_FILENAME).name
    except ManifestError:
        pass
    py = tree / "pyproject.toml"
    try:
        if py.is_file() and not py.is_symlink() and py.stat().st_size < 1_000_000:
            name = tomllib.loads(py.read_text(errors="replace")).get("project", {}).get("name")
            if isinstance(name, str) and name.strip():
                return name.strip()[:200]
    except (OSError, tomllib.TOMLDecodeError):
        pass
    for manifest in ("Cargo.toml",):
        path = tree / manifest
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 1_000_000:
                name = tomllib.loads(path.read_text(errors="replace")).get("package", {}).get("name")
                if isinstance(name, str) and name.strip():
                    return name.strip()[:200]
        except (OSError, tomllib.TOMLDecodeError):
            pass
    return re.sub(r"-v?\d[\w.+-]*$", "", tree.resolve().name)[:200] or "project"


def _manifest(tree: Path) -> NoaManifest | None:
    path = Path(tree) / MANIFEST_FILENAME
    return load_manifest(path) if path.is_file() else None  # a bad noa.yaml is refused (exit 2)


def has_python(tree: Path) -> bool:
    tree = Path(tree)
    if any((tree / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg")):
        return True
    seen = 0
    for _root, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
        seen += len(files) + len(dirs)
        if any(f.endswith(".py") for f in files):
            return True
        if seen > _MAX_DETECT_ENTRIES:
            return False
    return False


def project_env(tree: Path, command: Sequence[str], ctx: SwarmContext, limits: ExecLimits) -> EnvChoice | None:
    """The project's own environment for a Python test command (None for other commands)."""
    if not is_python_command(command):
        return None
    manifest = _manifest(tree)
    home = ctx.home or Path(ctx.work_parent)
    return prepare_python_env(tree, home=home, limits=limits, config=manifest.python_env if manifest else None,
                              hide_paths=tuple(ctx.hide_paths))


def suite_command(tree: Path) -> tuple[list[str], list[str], float | None]:
    """The test command, the pythonpath and the wall limit (None: the default) for ``tree``."""
    manifest = _manifest(tree)
    command = list(manifest.test.command) if manifest and manifest.test.command else list(DEFAULT_TEST_COMMAND)
    pythonpath = list(manifest.test.pythonpath) if manifest and manifest.test.pythonpath else []
    if not pythonpath and (command[0].startswith("python") or os.path.basename(command[0]) == "pytest"):
        pythonpath = suggest_pythonpath(tree)
    timeout = float(manifest.test.timeout_s) if manifest and manifest.test.command else None
    return command, pythonpath, timeout


def tests_tool_version(env: EnvChoice | None = None) -> str:
    """What, besides the tree, decides a test result: the project's environment (or NOA's)."""
    if env is not None and env.env is not None:
        pytest_pin = next((p for p in env.env.packages if p.startswith("pytest==")), "pytest==?")
        return f"{pytest_pin.replace('==', ' ')}; {env.env.interpreter}; project env {env.env.key}"
    return (f"pytest {pytest_version() or '?'}; {platform.python_implementation()} {platform.python_version()}; "
            f"env {environment_fingerprint()}")

