"""The scan index: a git-index-like cache of stat data and hashes, one file per scanned root.

``NOA_HOME/workspace/index/<key>.idx`` holds, per root-relative path,
``(size, mtime_ns, ctime_ns, inode, blake3)``, plus the last scan's summary. It is a
cache of the registry database (the record of truth): a missing or unreadable index is
rebuilt from ``ws_files``. Like git, the index's own modification time is its write
time: an entry whose mtime is not older than that may have changed within the same
timestamp tick ("racily clean") and is hashed again.

Written atomically (temporary file, fsync, rename). Serialised with :mod:`marshal`
(plain tuples and strings; fast to load for tens of thousands of files).
"""

from __future__ import annotations

import hashlib
import marshal
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1
Stat = tuple[int, int, int, int]          # size, mtime_ns, ctime_ns, inode
Entry = tuple[int, int, int, int, str]    # ... + blake3 hex


@dataclass
class Index:
    root: str
    entries: dict[str, Entry] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    written_ns: int = 0   # mtime of the index file when it was loaded (0: none)


def index_path(index_dir: Path, root: str) -> Path:
    key = hashlib.sha256(root.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return index_dir / f"{key}.idx"


def load_index(index_dir: Path, root: str) -> Index | None:
    """The index of ``root``, or None when there is none or it is unreadable (then rebuild)."""
    path = index_path(index_dir, root)
    try:
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            doc = marshal.loads(fh.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("root") != root:
        return None
    entries = doc.get("entries")
    if not isinstance(entries, dict):
        return None
    return Index(root=root, entries=entries, summary=dict(doc.get("summary") or {}), written_ns=st.st_mtime_ns)


def save_index(index_dir: Path, index: Index) -> int:
    """Write atomically; returns the new file's mtime_ns (its write time)."""
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_path(index_dir, index.root)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = marshal.dumps({"format": FORMAT, "root": index.root, "entries": index.entries,
                          "summary": index.summary})
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    index.written_ns = os.stat(path).st_mtime_ns
    return index.written_ns


def drop_index(index_dir: Path, root: str) -> None:
    try:
        index_path(index_dir, root).unlink()
    except FileNotFoundError:
        pass
