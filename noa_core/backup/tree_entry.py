"""A snapshot's tree: one entry per file, directory or symlink, a list indexed by these
positions, and the progress callback backup and restore report through."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["CHUNKS", "CTIME", "INO", "K", "LINK", "MODE", "MTIME", "P", "SIZE", "Progress"]

Progress = Callable[[str, dict], None]

# tree entry: [path, kind, mode, mtime_ns, size, chunks, ino, ctime_ns, link]
P, K, MODE, MTIME, SIZE, CHUNKS, INO, CTIME, LINK = range(9)
