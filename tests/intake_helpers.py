"""Helpers for the intake tests: building hostile inputs and checking refusals.

Every hostile input is built inside the test that uses it (tarfile, zipfile, git).
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from noa_core.config import IngestLimits
from noa_core.errors import NoaError
from noa_core.intake import FetchedSource, SourceSpec, fetch_source

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.invalid",
    "GIT_TERMINAL_PROMPT": "0",
}


def limits(**overrides: Any) -> IngestLimits:
    """Default ingestion limits with ``overrides`` (small ones keep tests fast)."""
    return IngestLimits(**overrides)


# ------------------------------------------------------------------ filesystem state
def snapshot(root: Path) -> set[str]:
    """Every path under ``root`` (files, dirs, links), relative, without following links."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), root))
    return found


def refused(spec: SourceSpec, dest: Path, lim: IngestLimits, error: type[NoaError], culprit: str,
            watch: Path, **kwargs: Any) -> NoaError:
    """Fetch ``spec`` expecting exactly ``error``; check message, dest and ``watch``.

    * the error's type is exactly ``error`` (not a subclass or base);
    * the message is one line and contains ``culprit``;
    * ``dest`` does not exist afterwards;
    * nothing under ``watch`` (normally tmp_path) appeared, vanished or is left over
      (no marker files, no staging directory).
    """
    before = snapshot(watch)
    with pytest.raises(NoaError) as excinfo:
        fetch_source(spec, dest, lim, **kwargs)
    err = excinfo.value
    assert type(err) is error, f"expected {error.__name__}, got {type(err).__name__}: {err}"
    message = str(err)
    assert "\n" not in message and "\r" not in message, message
    assert message == err.one_line()
    assert culprit in message, f"{culprit!r} not named in {message!r}"
    assert not os.path.lexists(dest), f"{dest} left behind"
    after = snapshot(watch)
    assert after == before, f"appeared: {sorted(after - before)}; vanished: {sorted(before - after)}"
    return err


def fetched_ok(spec: SourceSpec, dest: Path, lim: IngestLimits, watch: Path, **kwargs: Any) -> FetchedSource:
    """Fetch ``spec``; check that nothing but ``dest`` (and ``cache_dir``) changed under ``watch``."""
    before = snapshot(watch)
    result = fetch_source(spec, dest, lim, **kwargs)
    after = snapshot(watch)
    allowed = [os.path.relpath(dest, watch)]
    if kwargs.get("cache_dir") is not None:
        allowed.append(os.path.relpath(kwargs["cache_dir"], watch))
    ancestors = {str(parent) for a in allowed for parent in Path(a).parents}  # parents of dest may be created
    stray = {p for p in after - before
             if p not in ancestors and not any(p == a or p.startswith(a + os.sep) for a in allowed)}
    assert not stray, f"written outside dest: {sorted(stray)}"
    assert result.tree == dest
    assert not any(part == ".git" for p in snapshot(dest) for part in Path(p).parts)
    return result


def tree_files(root: Path) -> dict[str, bytes]:
    """``{relative path: content}`` of the regular files under ``root``."""
    out = {}
    for rel in snapshot(root):
        p = root / rel
        if p.is_file() and not p.is_symlink():
            out[rel] = p.read_bytes()
    return out


# ----------------------------------------------------------------------- archives
def tar_member(name: str, data: bytes = b"", *, type: bytes = tarfile.REGTYPE, linkname: str = "",
               mode: int = 0o644, **attrs: Any) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = type
    info.mode = mode
    info.linkname = linkname
    if type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, (data if info.isreg() else None)


def write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w:gz",
              **kwargs: Any) -> Path:
    with tarfile.open(path, mode, **kwargs) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def write_zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]],
              compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


# ---------------------------------------------------------------------------- git
def git(*args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True,
        input: str | None = None) -> str:
    """Run git for building a test fixture (hermetic config)."""
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    proc = subprocess.run(["git", *args], cwd=cwd, env=full_env, capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def make_repo(path: Path, files: dict[str, bytes | str], message: str = "initial") -> str:
    """``git init`` ``path``, commit ``files``; returns the commit id."""
    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "-b", "main", cwd=path)
    commit_files(path, files, message)
    return git("rev-parse", "HEAD", cwd=path)


def commit_files(path: Path, files: dict[str, bytes | str], message: str) -> str:
    for rel, content in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        target.write_bytes(content)
    git("add", "-A", cwd=path)
    git("commit", "-q", "--allow-empty", "-m", message, cwd=path)
    return git("rev-parse", "HEAD", cwd=path)
