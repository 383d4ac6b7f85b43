"""Plain records passed between the scan and the registry store (no SQLAlchemy here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Seen:
    """A file whose stat data changed (or is new): its stat and its content hash."""

    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    hash: str


@dataclass(frozen=True)
class Applied:
    """What one scan changed in the registry."""

    added: int
    modified: int
    deleted: int
    touched: int              # stat data changed, content the same
    new_duplicates: int
    archived_blobs: int       # archive files checked or written by this scan
    versions: int
