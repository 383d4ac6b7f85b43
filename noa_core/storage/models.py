"""Registry tables (SQLAlchemy 2 typed models).

Migration-friendly: explicit table names, a constraint naming convention (so Alembic
autogenerate produces stable names), timezone-aware UTC timestamps stored portably,
and no dialect-specific column types.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, MetaData,
                        String, Text, UniqueConstraint)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, on every backend (SQLite drops tzinfo)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        return value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    root_commits: Mapped[list[str]] = mapped_column(JSON, default=list)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Drop(Base):
    __tablename__ = "drops"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"), index=True)
    source: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20))
    sandbox: Mapped[str | None] = mapped_column(String(1))
    commit: Mapped[str | None] = mapped_column(String(64))
    confidence_raw: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default="received")
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished: Mapped[datetime | None] = mapped_column(UTCDateTime)
    report_path: Mapped[str | None] = mapped_column(Text)
    file_count: Mapped[int | None] = mapped_column(Integer)
    total_bytes: Mapped[int | None] = mapped_column(BigInteger)
    tree_hash: Mapped[str | None] = mapped_column(String(64), index=True)


class File(Base):
    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("drop_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    drop_id: Mapped[str] = mapped_column(ForeignKey("drops.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


Index("ix_files_hash", File.hash)


class Validation(Base):
    """One validation outcome of a drop: the feedback store that calibrates confidence."""

    __tablename__ = "validations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    drop_id: Mapped[str] = mapped_column(ForeignKey("drops.id", ondelete="CASCADE"), index=True)
    raw_score: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChangeLogEntry(Base):
    """One entry of the CL tree (append-only; see :mod:`noa_core.cltree`).

    ``seq`` is the primary key, so two writers can never take the same place in the
    chain; ``payload`` and ``parents`` are stored as the exact canonical JSON text that
    was hashed into ``id`` (no JSON column type: PostgreSQL's jsonb would re-order keys).
    """

    __tablename__ = "cltree_entries"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                     autoincrement=False)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    subject: Mapped[str] = mapped_column(String(300), index=True)
    payload: Mapped[str] = mapped_column(Text)
    parents: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(40))


class ChangeLogFrontier(Base):
    """The CL tree's Merkle frontier after entry ``size`` (one row; see :class:`noa_core.cltree.merkle.Frontier`).

    Written in the same transaction as the entry it covers, so an append folds one leaf
    into it instead of re-hashing the whole log. Only a cache: verification recomputes
    it from the entries, and an append that finds it behind the log rebuilds it.
    """

    __tablename__ = "cltree_frontier"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    hashes: Mapped[str] = mapped_column(Text)


# workspace registry (noa_core.workspace) ------------------------------------------------

class WorkspaceRoot(Base):
    """A scanned tree; ``index_written_ns`` is when its index was last written (racy-git check)."""

    __tablename__ = "ws_roots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_scan: Mapped[datetime | None] = mapped_column(UTCDateTime)
    index_written_ns: Mapped[int] = mapped_column(BigInteger, default=0)
    files: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class WorkspaceFile(Base):
    """The index: one row per file now present under a root, with its stat data and content hash.

    ``source`` is empty for the single source of truth of its content, else the
    root-relative path of the file it duplicates.
    """

    __tablename__ = "ws_files"
    __table_args__ = (UniqueConstraint("root_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    root_id: Mapped[int] = mapped_column(ForeignKey("ws_roots.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    ctime_ns: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    source: Mapped[str | None] = mapped_column(Text)


class WorkspaceVersion(Base):
    """Version history per path: every content a path has had (and its removal)."""

    __tablename__ = "ws_versions"
    __table_args__ = (UniqueConstraint("root_id", "path", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    root_id: Mapped[int] = mapped_column(ForeignKey("ws_roots.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str | None] = mapped_column(String(64))  # None: the path was deleted
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    change: Mapped[str] = mapped_column(String(10))  # added, modified, deleted
    seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkspaceBlob(Base):
    """SOT content: each distinct content once; the first path seen with it is its source of truth."""

    __tablename__ = "ws_blobs"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    root_id: Mapped[int | None] = mapped_column(ForeignKey("ws_roots.id", ondelete="SET NULL"))
    source_path: Mapped[str] = mapped_column(Text)
    archived_bytes: Mapped[int | None] = mapped_column(BigInteger)  # zstd size in NOA_HOME/archive/<hash>
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
