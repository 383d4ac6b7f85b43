"""Copying a local directory (one without ``.git``) into a drop.

Rules:

* Symlinks are never followed while walking.  A symlink whose text is absolute, or
  that resolves outside the source tree, is refused (:class:`HostileInput`).  A
  relative symlink that stays inside the tree and resolves to a regular file is copied
  **as a regular file** holding the target's bytes (``meta["symlinks_copied"]`` lists
  them); one that resolves to a directory, dangles or loops is refused.
* Entries named ``.noa`` or ``__pycache__`` (at any depth) are skipped
  (``meta["skipped"]`` lists them); nothing else is skipped.  A nested ``.git`` (a submodule or vendored
  repository) is refused, FIFOs, sockets and devices are refused.
* A source directory that contains the destination, the cache directory or NOA_HOME
  (``$NOA_HOME``, default ``./.noa``) is refused, unless the path from the source to
  it passes through a skipped directory (the default ``./.noa`` case), which is never
  copied anyway.
* ``max_files``, ``max_file_bytes``, ``max_total_bytes`` and ``max_path_depth``
  apply as for archives.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

from noa_core.config import IngestLimits
from noa_core.errors import BadInput, HostileInput
from noa_core.intake.guards import SKIPPED_NAMES, SafeTree, quote

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_not_recursive(root: Path, others: dict[str, Path | None]) -> None:
    """Refuse ``root`` if it contains one of ``others`` (outside a skipped directory)."""
    for label, other in others.items():
        if other is None:
            continue
        other = Path(os.path.abspath(other))
        try:
            resolved = other.parent.resolve() / other.name if other.name else other.resolve()
        except OSError:
            resolved = other
        if not _inside(resolved, root):
            continue
        rel = resolved.relative_to(root).parts
        if any(part in SKIPPED_NAMES for part in rel):
            continue
        raise BadInput(f"refused directory {quote(root)}: it contains the {label} {quote(resolved)} "
                       "(copying would recurse)")


def copy_dir(root: Path, tree: SafeTree, limits: IngestLimits) -> dict[str, Any]:
    """Copy ``root`` into ``tree``; returns meta (``skipped``, ``symlinks_copied``)."""
    skipped: list[str] = []
    links: list[str] = []
    try:
        root_fd = os.open(root, _O_DIR)
    except OSError as exc:
        raise BadInput(f"cannot open directory {quote(root)}: {exc.strerror}") from None
    try:
        _walk(root, root_fd, (), tree, limits, skipped, links)
    finally:
        os.close(root_fd)
    return {"source_path": str(root), "skipped": skipped, "symlinks_copied": links}


def _walk(root: Path, dir_fd: int, prefix: tuple[str, ...], tree: SafeTree, limits: IngestLimits,
          skipped: list[str], links: list[str]) -> None:
    with os.scandir(dir_fd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        rel = "/".join(prefix + (entry.name,))
        if entry.name in SKIPPED_NAMES:
            skipped.append(rel)
            continue
        parts = tree.clean(rel)
        st = entry.stat(follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            _copy_symlink(root, dir_fd, entry.name, rel, parts, tree)
            links.append(rel)
        elif stat.S_ISDIR(mode):
            try:
                sub_fd = os.open(entry.name, _O_DIR, dir_fd=dir_fd)
            except OSError as exc:
                raise tree.refuse(BadInput, rel, f"cannot open directory ({exc.strerror})") from None
            try:
                tree.make_dir(parts, rel)
                _walk(root, sub_fd, parts, tree, limits, skipped, links)
            finally:
                os.close(sub_fd)
        elif stat.S_ISREG(mode):
            try:
                fd = os.open(entry.name, _O_FILE, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise tree.refuse(HostileInput, rel, "was replaced by a symlink while copying") from None
                raise tree.refuse(BadInput, rel, f"cannot read ({exc.strerror})") from None
            _copy_fd(fd, rel, parts, tree)
        else:
            raise tree.refuse(HostileInput, rel, "special file (FIFO, socket or device) is not accepted")


def _copy_fd(fd: int, rel: str, parts: tuple[str, ...], tree: SafeTree) -> None:
    with os.fdopen(fd, "rb", buffering=0) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise tree.refuse(HostileInput, rel, "special file (FIFO, socket or device) is not accepted")
        tree.write_file(parts, rel, f.read, executable=bool(st.st_mode & 0o111), declared_size=st.st_size)


def _copy_symlink(root: Path, dir_fd: int, name: str, rel: str, parts: tuple[str, ...],
                  tree: SafeTree) -> None:
    target = os.readlink(name, dir_fd=dir_fd)
    if os.path.isabs(target):
        raise tree.refuse(HostileInput, rel, f"absolute symlink (to {quote(target)}) is not accepted")
    resolved = Path(os.path.realpath(root / rel))
    if not _inside(resolved, root):
        raise tree.refuse(HostileInput, rel, f"symlink points outside the drop (to {quote(target)})")
    try:
        fd = os.open(resolved, _O_FILE)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP):
            raise tree.refuse(BadInput, rel, f"dangling or looping symlink (to {quote(target)})") from None
        raise tree.refuse(BadInput, rel, f"cannot read symlink target ({exc.strerror})") from None
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        os.close(fd)
        raise tree.refuse(BadInput, rel,
                          f"symlink to a directory (to {quote(target)}) is not copied; replace it by the directory")
    _copy_fd(fd, rel, parts, tree)


__all__ = ["check_not_recursive", "copy_dir"]
