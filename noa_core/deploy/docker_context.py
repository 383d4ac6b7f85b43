"""What goes into a release's image build: the build context and its offline dependencies.

* :func:`context_tar` - the release tree as a tar stream for ``POST /build``: no VCS or
  cache directories, no symlinks leaving the tree, and no secret-bearing files
  (:func:`is_secret_name`: ``.env*``, private keys, ``.netrc``, ``.pypirc``, ``.npmrc``,
  ``.ssh``/``.aws``/``.docker`` directories, ...), plus generated files.
* :func:`requirements_of` - the service's third-party requirements: ``requirements.txt``
  lines, else ``[project].dependencies`` of ``pyproject.toml``; empty for a stdlib service.
* :func:`fetch_wheels` - those requirements as wheels, downloaded *outside* the image
  (``pip download --only-binary=:all:`` for the image's Python), cached under
  ``<cache_dir>/wheels/<hash of the requirements>/``; the image installs them with
  ``pip install --no-index`` and the build itself runs with no network. A requirement
  that cannot be fetched is a :class:`DependencyError` carrying pip's last lines.

Prefect-free.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from noa_core.deploy.interface import DeployError

__all__ = [
    "SKIP_DIRS",
    "WHEELS_DIR",
    "DependencyError",
    "context_tar",
    "fetch_wheels",
    "is_secret_name",
    "requirements_of",
]

SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv",
                       "venv", "node_modules", ".tox", ".nox", ".ssh", ".aws", ".docker", ".gnupg", ".kube"})
_SECRET_GLOBS = (".env", ".env.*", "*.pem", "*.key", "*.p12", "*.pfx", "id_rsa*", "id_dsa*", "id_ecdsa*",
                 "id_ed25519*", ".netrc", ".pypirc", ".npmrc", ".git-credentials", "credentials.json",
                 "secrets.*", "*.secret", "*.secrets")
#: where the fetched wheels sit in the build context (and in the image, under /app)
WHEELS_DIR = ".noa-wheels"

Log = Callable[[str], None]


class DependencyError(DeployError):
    """The service's requirements could not be fetched as wheels."""


def is_secret_name(name: str) -> bool:
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, g) for g in _SECRET_GLOBS) and low != ".env.example"


def context_tar(tree: Path, extra_text: Mapping[str, str] | None = None,
                extra_files: Mapping[str, Path] | None = None) -> tuple[io.BytesIO, list[str]]:
    """The build context and the tree paths left out as secrets."""
    buf = io.BytesIO()
    left_out: list[str] = []
    tree = Path(tree)
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for root, dirs, files in os.walk(tree):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and d != WHEELS_DIR
                             and not os.path.islink(os.path.join(root, d)))
            for name in sorted(files):
                path = Path(root) / name
                rel = str(path.relative_to(tree))
                if is_secret_name(name):
                    left_out.append(rel)
                    continue
                if path.is_symlink() or not path.is_file():
                    continue
                tar.add(str(path), arcname=rel, recursive=False)
        for arcname, src in (extra_files or {}).items():
            tar.add(str(src), arcname=arcname, recursive=False)
        for name, text in (extra_text or {}).items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf, left_out


def requirements_of(tree: Path) -> list[str]:
    """Third-party requirements: ``requirements.txt`` (comments and blank lines dropped), else
    ``[project].dependencies``; options lines (``-r``, ``--index-url``, ...) are refused."""
    tree = Path(tree)
    req = tree / "requirements.txt"
    if req.is_file():
        out = []
        for raw in req.read_text(errors="replace").splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("-"):
                raise DependencyError(f"requirements.txt: option lines are not supported in a Docker build: {line!r}")
            out.append(line)
        return out
    pp = tree / "pyproject.toml"
    if pp.is_file():
        try:
            doc = tomllib.loads(pp.read_text(errors="replace"))
        except tomllib.TOMLDecodeError as exc:
            raise DependencyError(f"pyproject.toml: {exc}") from None
        return [str(d) for d in (doc.get("project") or {}).get("dependencies") or []]
    return []


def _tail(text: str, n: int = 6) -> list[str]:
    """pip's last lines, its ERROR lines when it wrote some (not its index and warning chatter)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines)[-n:]


def fetch_wheels(requirements: Sequence[str], cache_dir: Path, *, python_version: str = "3.11",
                 log: Log | None = None, timeout_s: float = 600.0) -> Path:
    """Download wheels for ``requirements`` (and their dependencies) once; returns their directory."""
    say: Log = log or (lambda _m: None)
    key = hashlib.sha256("\n".join(sorted(requirements) + [python_version]).encode()).hexdigest()[:16]
    final = Path(cache_dir) / "wheels" / key
    if (final / ".complete").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    try:
        argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
                "--only-binary=:all:", "--python-version", python_version, "--dest", str(work), *requirements]
        say(f"fetching wheels for {len(requirements)} requirement(s)")
        try:
            p = subprocess.run(argv, check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise DependencyError(f"pip download timed out after {timeout_s:g}s") from None
        if p.returncode != 0:
            raise DependencyError("dependencies could not be fetched as wheels: "
                                  + " | ".join(_tail(p.stdout + "\n" + p.stderr)))
        (work / ".complete").write_text("\n".join(requirements) + "\n")
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
