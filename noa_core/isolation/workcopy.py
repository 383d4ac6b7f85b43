"""A sandbox's private writable copy of a tree: regular files and symlinks only, never followed."""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from pathlib import Path

from noa_core.isolation.result import IsolationError


def _copy_regular_only(src: str, dst: str) -> str:
    """copytree's copy function: regular files only; devices, fifos and sockets are skipped
    (reading a device node from a drop would read the host's device)."""
    st = os.lstat(src)
    if stat.S_ISREG(st.st_mode):
        shutil.copy2(src, dst, follow_symlinks=False)
    return dst


def make_work_copy(src: Path, dest_parent: Path) -> Path:
    """Copy ``src`` into a new directory under ``dest_parent`` and return it.

    Symlinks are copied as symlinks (never followed), special files are left out, modes
    and times are kept. Each call makes a fresh directory.
    """
    src = Path(src)
    if src.is_symlink() or not src.is_dir():
        raise IsolationError(f"cannot copy {src}: not a directory")
    dest_parent = Path(dest_parent)
    dest_parent.mkdir(parents=True, exist_ok=True)
    dest = dest_parent / f"{src.name or 'tree'}-{uuid.uuid4().hex[:10]}"
    shutil.copytree(src, dest, symlinks=True, copy_function=_copy_regular_only)
    return dest
