"""The registry: projects, drops, their files, and validation feedback.

``Registry`` wraps an :class:`~sqlalchemy.Engine` (SQLite or PostgreSQL) and hands back
frozen dataclasses, never ORM objects, so callers cannot hold sessions open.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, get_args

from sqlalchemy import Connection, Engine, delete, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from noa_core.errors import BadInput, NoaError
from noa_core.storage.hashing import digest_tree
from noa_core.storage.models import Drop, File, Project, Validation

DropKind = Literal["dir", "git", "archive", "pypi"]
DropStatus = Literal["received", "analysed", "landed", "validated", "failed", "rejected"]
_UNSET = object()


class RegistryError(NoaError):
    """The registry could not do what was asked."""


class UnknownDrop(BadInput):
    """No drop has the given id."""


@dataclass(frozen=True)
class ProjectInfo:
    id: int
    name: str
    root_commits: tuple[str, ...]
    created: datetime


@dataclass(frozen=True)
class DropInfo:
    id: str
    project_id: int | None
    source: str
    kind: str
    sandbox: str | None
    commit: str | None
    confidence_raw: float | None
    confidence: float | None
    status: str
    created: datetime
    finished: datetime | None
    report_path: str | None
    file_count: int | None
    total_bytes: int | None
    tree_hash: str | None


@dataclass(frozen=True)
class FileStats:
    count: int
    bytes: int
    tree_hash: str  # the analysis cache key: BLAKE3 over sorted (path, hash) pairs
    skipped: tuple[str, ...] = ()  # symlinks and special files, not registered


@dataclass(frozen=True)
class ValidationInfo:
    id: int
    drop_id: str
    raw_score: float
    passed: bool
    counts: Mapping[str, int]
    created: datetime


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:60].strip("-") or "drop"


def make_drop_id(name: str, *, now: datetime | None = None, suffix: str | None = None) -> str:
    """``YYYYMMDD-HHMMSS-<slug>-<6 hex>``, e.g. ``20261125-144100-cachetools-1a2b3c`` (UTC)."""
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{_slug(name)}-{suffix or secrets.token_hex(3)}"


def _project_info(p: Project) -> ProjectInfo:
    return ProjectInfo(id=p.id, name=p.name, root_commits=tuple(p.root_commits or ()), created=p.created)


def _drop_info(d: Drop) -> DropInfo:
    return DropInfo(id=d.id, project_id=d.project_id, source=d.source, kind=d.kind, sandbox=d.sandbox,
                    commit=d.commit, confidence_raw=d.confidence_raw, confidence=d.confidence, status=d.status,
                    created=d.created, finished=d.finished, report_path=d.report_path, file_count=d.file_count,
                    total_bytes=d.total_bytes, tree_hash=d.tree_hash)


def _db_path(rel: str) -> str:
    """A path as stored: undecodable file-name bytes become ``\\xNN`` escapes (valid UTF-8)."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


#: key of the PostgreSQL advisory lock that serialises project upserts
_PROJECTS_LOCK_KEY = 0x4E4F4150  # "NOAP"


def _lock_projects(conn: Connection) -> None:
    """The writer lock for a read-modify-write of ``projects``: ``BEGIN IMMEDIATE`` on SQLite,
    a transaction-scoped advisory lock on PostgreSQL (released at commit or rollback)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PROJECTS_LOCK_KEY})


class Registry:
    """Projects, drops, files and validations in one database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def engine(self) -> Engine:
        return self._engine

    def _session(self) -> Session:
        return self._sessions()

    # projects ---------------------------------------------------------------------------

    def _find(self, s: Session, name: str | None, root_commits: Iterable[str]) -> Project | None:
        roots = set(root_commits)
        if roots:
            # Root commits live in a JSON list; projects are few, so match in Python
            # (portable across SQLite and PostgreSQL). Oldest project wins a tie.
            for project in s.scalars(select(Project).order_by(Project.id)):
                if roots.intersection(project.root_commits or ()):
                    return project
        if name is not None:
            return s.scalars(select(Project).where(Project.name == name)).first()
        return None

    def find_project(self, name: str | None = None, root_commits: Iterable[str] = ()) -> ProjectInfo | None:
        """The project sharing any root commit with ``root_commits``, else the one named ``name``."""
        with self._session() as s:
            project = self._find(s, name, root_commits)
            return _project_info(project) if project else None

    def upsert_project(self, name: str, root_commits: Iterable[str] = ()) -> ProjectInfo:
        """Find the project (roots first, then name) and add new root commits, or create it.

        A project found by a shared root commit keeps its registered name (a fork or a
        mirror under another name is the same project).
        """
        roots = sorted(set(root_commits))
        for _attempt in range(3):
            with self._session() as s:
                # read-modify-write of the root list: take the write lock before reading, or two
                # writers merging different roots into the same project lose one of them
                _lock_projects(s.connection())
                project = self._find(s, name, roots)
                if project is None:
                    project = Project(name=name, root_commits=roots)
                    s.add(project)
                else:
                    merged = sorted(set(project.root_commits or ()) | set(roots))
                    if merged != list(project.root_commits or ()):
                        project.root_commits = merged
                try:
                    s.commit()
                except IntegrityError:  # another writer created the same name meanwhile: look again
                    s.rollback()
                    continue
                return _project_info(project)
        raise RegistryError(f"could not upsert project {name!r}: concurrent writers kept conflicting")

    def list_projects(self) -> list[ProjectInfo]:
        with self._session() as s:
            return [_project_info(p) for p in s.scalars(select(Project).order_by(Project.name))]

    # drops ------------------------------------------------------------------------------

    def new_drop(self, source: str, kind: DropKind, *, name: str, project_id: int | None = None,
                 drop_id: str | None = None, now: datetime | None = None) -> DropInfo:
        """Register a received drop (status ``received``); ``name`` goes into its id."""
        if kind not in get_args(DropKind):
            raise ValueError(f"unknown drop kind {kind!r}")
        created = now or datetime.now(timezone.utc)
        with self._session() as s, s.begin():
            drop = Drop(id=drop_id or make_drop_id(name, now=created), project_id=project_id, source=source,
                        kind=kind, status="received", created=created)
            s.add(drop)
            try:
                s.flush()
            except IntegrityError as exc:
                raise RegistryError(f"cannot register drop {drop.id}: {exc.orig}") from None
            return _drop_info(drop)

    def _get(self, s: Session, drop_id: str) -> Drop:
        drop = s.get(Drop, drop_id)
        if drop is None:
            raise UnknownDrop(f"no drop with id {drop_id!r}")
        return drop

    def get_drop(self, drop_id: str) -> DropInfo:
        with self._session() as s:
            return _drop_info(self._get(s, drop_id))

    def list_drops(self, *, project_id: int | None = None, limit: int | None = None) -> list[DropInfo]:
        """Drops, newest first."""
        query = select(Drop).order_by(Drop.created.desc(), Drop.id.desc())
        if project_id is not None:
            query = query.where(Drop.project_id == project_id)
        if limit is not None:
            query = query.limit(limit)
        with self._session() as s:
            return [_drop_info(d) for d in s.scalars(query)]

    def finish_drop(self, drop_id: str, *, status: DropStatus, project_id: int | None | object = _UNSET,
                    sandbox: str | None | object = _UNSET, commit: str | None | object = _UNSET,
                    confidence_raw: float | None | object = _UNSET, confidence: float | None | object = _UNSET,
                    report_path: str | Path | None | object = _UNSET) -> DropInfo:
        """Record a drop's outcome; arguments left out keep their stored value."""
        if status not in get_args(DropStatus):
            raise ValueError(f"unknown drop status {status!r}")
        if sandbox not in (_UNSET, None, "A", "B", "C", "D"):
            raise ValueError(f"unknown sandbox {sandbox!r}")
        with self._session() as s, s.begin():
            drop = self._get(s, drop_id)
            drop.status = status
            drop.finished = datetime.now(timezone.utc)
            for field, value in (("project_id", project_id), ("sandbox", sandbox), ("commit", commit),
                                 ("confidence_raw", confidence_raw), ("confidence", confidence),
                                 ("report_path", report_path)):
                if value is not _UNSET:
                    setattr(drop, field, str(value) if isinstance(value, Path) else value)
            s.flush()
            return _drop_info(drop)

    # files ------------------------------------------------------------------------------

    def register_files(self, drop_id: str, tree: Path, *, max_workers: int | None = None) -> FileStats:
        """Hash every regular file of ``tree`` and store them for ``drop_id`` in one transaction.

        Idempotent: registering again replaces the drop's file rows. Symlinks and special
        files are not followed or stored (they are returned in ``skipped``); ``.git``
        directories are not entered.
        """
        tree = Path(tree)
        if not tree.is_dir():
            raise BadInput(f"{tree}: not a directory")
        digest = digest_tree(tree, max_workers=max_workers)
        rows = [{"drop_id": drop_id, "path": _db_path(f.path), "size": f.size, "hash": f.hash}
                for f in digest.files]
        with self._session() as s, s.begin():
            drop = self._get(s, drop_id)
            s.execute(delete(File).where(File.drop_id == drop_id))
            if rows:
                s.execute(insert(File), rows)
            drop.file_count = len(rows)
            drop.total_bytes = digest.total_bytes
            drop.tree_hash = digest.tree_hash
        return FileStats(count=len(rows), bytes=digest.total_bytes, tree_hash=digest.tree_hash,
                         skipped=digest.skipped)

    def drop_files(self, drop_id: str) -> list[tuple[str, int, str]]:
        """``(path, size, hash)`` of a drop's registered files, sorted by path."""
        with self._session() as s:
            self._get(s, drop_id)
            rows = s.execute(select(File.path, File.size, File.hash).where(File.drop_id == drop_id)
                             .order_by(File.path))
            return [(r.path, r.size, r.hash) for r in rows]

    def drops_with_tree_hash(self, tree_hash: str) -> list[DropInfo]:
        """Earlier drops with identical content (analysis cache hits), newest first."""
        with self._session() as s:
            query = select(Drop).where(Drop.tree_hash == tree_hash).order_by(Drop.created.desc())
            return [_drop_info(d) for d in s.scalars(query)]

    # validation feedback ----------------------------------------------------------------

    def record_validation(self, drop_id: str, raw_score: float, passed: bool,
                          counts: Mapping[str, int] | None = None) -> ValidationInfo:
        if not 0.0 <= raw_score <= 1.0:
            raise ValueError(f"raw_score must be within [0, 1], got {raw_score!r}")
        with self._session() as s, s.begin():
            self._get(s, drop_id)
            row = Validation(drop_id=drop_id, raw_score=float(raw_score), passed=bool(passed),
                             counts=dict(counts or {}), created=datetime.now(timezone.utc))
            s.add(row)
            s.flush()
            return ValidationInfo(id=row.id, drop_id=row.drop_id, raw_score=row.raw_score, passed=row.passed,
                                  counts=dict(row.counts), created=row.created)

    def validation_history(self, *, limit: int | None = None) -> list[tuple[float, bool]]:
        """``(raw_score, passed)`` of past validations, oldest first (the newest ``limit``)."""
        query = select(Validation.raw_score, Validation.passed).order_by(Validation.created.desc(),
                                                                          Validation.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._session() as s:
            rows: Sequence[tuple[float, bool]] = [(float(r[0]), bool(r[1])) for r in s.execute(query)]
        return list(reversed(rows))
