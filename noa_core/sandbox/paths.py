"""Which files of a dropped tree may land in the workspace repository.

Landed: regular files, with their executable bit. Never landed (reported as skipped):

* symlinks (never followed, never recreated) and special files (fifos, sockets, devices);
* any path with a component git treats as its own metadata directory: ``.git`` in any
  case, with trailing dots or spaces, as an NTFS stream (``.git::$INDEX_ALLOCATION``),
  the 8.3 short name ``git~1``, or with HFS+-ignorable code points inside. A directory
  with such a name is not entered at all.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

# Code points HFS+ ignores when comparing names (git's is_hfs_dotgit list).
_HFS_IGNORABLE = dict.fromkeys(
    [0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E,
     0x206A, 0x206B, 0x206C, 0x206D, 0x206E, 0x206F, 0xFEFF])


def is_git_name(component: str) -> bool:
    """True when a path component would be taken for ``.git`` by git or a filesystem."""
    name = component.translate(_HFS_IGNORABLE).lower()
    if name == ".git":
        return True
    base = name.split(":", 1)[0].rstrip(" .")
    return base in (".git", "git~1")


@dataclass(frozen=True)
class DropFile:
    rel: str          # relative, "/"-separated (undecodable bytes as surrogate escapes)
    executable: bool

    @property
    def rel_bytes(self) -> bytes:
        return self.rel.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class SkippedPath:
    rel: str
    reason: str


@dataclass(frozen=True)
class DropScan:
    root: Path
    files: tuple[DropFile, ...]      # sorted by path bytes
    skipped: tuple[SkippedPath, ...]
    total_bytes: int


def scan_drop(root: Path) -> DropScan:
    """List what of ``root`` can land; nothing is followed through a symlink."""
    files: list[DropFile] = []
    skipped: list[SkippedPath] = []
    total = 0
    stack: list[tuple[str, str]] = [(os.fspath(root), "")]
    while stack:
        abs_dir, rel_dir = stack.pop()
        with os.scandir(abs_dir) as it:
            for entry in it:
                rel = f"{rel_dir}{entry.name}"
                if is_git_name(entry.name):
                    skipped.append(SkippedPath(rel, "git metadata name"))
                    continue
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append((entry.path, rel + "/"))
                elif stat.S_ISREG(st.st_mode):
                    files.append(DropFile(rel, bool(st.st_mode & 0o111)))
                    total += st.st_size
                elif stat.S_ISLNK(st.st_mode):
                    skipped.append(SkippedPath(rel, "symlink"))
                else:
                    skipped.append(SkippedPath(rel, "not a regular file"))
    files.sort(key=lambda f: f.rel_bytes)
    skipped.sort(key=lambda s: s.rel)
    return DropScan(root=root, files=tuple(files), skipped=tuple(skipped), total_bytes=total)
