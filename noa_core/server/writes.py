"""The write flow: validation -> database write -> cache invalidation -> registry update ->
change-log entry -> success -> asynchronous backup.

The request row (``api_writes``), the registry update and the CL tree entry are ONE
transaction on the server's engine, begun holding the CL tree's append lock (``BEGIN
IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL): all three commit, or none does.
The cache keys are dropped before the commit and again after it (a reader that filled
the cache from the old rows in between is evicted), and once more when the transaction
is rolled back. A busy database or a lost race for the log's head retries the whole
transaction. The change's tree head goes to the checkpoint file after the commit.

A test may pass its own ``record_change(settings, kind, subject, payload)``; it is called
inside the same transaction, so when it raises nothing is written either.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Connection, Engine, String, Text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column

from noa_core.errors import NoaError
from noa_core.storage.cache import Cache, invalidate
from noa_core.storage.models import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from noa_core.config import NoaSettings

from noa_core.cltree import (
    PendingChange,
    is_retryable,
    lock_for_append,
    record_change_in,
    record_checkpoint,
    retry_pause,
)
from noa_core.cltree import record_change as cltree_record_change

try:  # the backup helper's asynchronous trigger (a detached runner process; sync or async)
    from noa_core.backup.trigger import schedule_backup as _schedule_backup
except ImportError:
    try:
        from flows.backup import schedule_backup as _schedule_backup  # type: ignore[no-redef]
    except ImportError:
        _schedule_backup = None  # type: ignore[assignment]

#: API kind -> CL tree kind
CL_KIND = {"project": "registry", "drop": "drop", "pipeline": "pipeline", "merge": "merge", "deploy": "release",
           "rollback": "rollback"}


class ServerWrite(Base):
    """One accepted write request of the API (the ``db write`` step)."""

    __tablename__ = "api_writes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    token_name: Mapped[str] = mapped_column(String(80))
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="accepted")
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)


WRITE_ATTEMPTS = 20


class _Failed(Exception):
    def __init__(self, step: str, error: Exception) -> None:
        super().__init__(step)
        self.step, self.error = step, error


_INSERT_WRITE = ServerWrite.__table__.insert()  # type: ignore[attr-defined]


class WriteFailed(NoaError):
    """A write failed part way and was undone; ``step`` says where."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


RegistryUpdate = Callable[[Connection], object]
"""Changes registry rows in the write's open transaction (its return value is ignored)."""


@dataclass
class WriteRequest:
    kind: str
    subject: str
    params: dict[str, Any]
    token_name: str
    registry_update: RegistryUpdate | None = None
    invalidate_keys: tuple[str, ...] = ()
    invalidate_prefixes: tuple[str, ...] = ()
    #: creates the flow run (async, idempotent on the write id); returns its id
    submit: Callable[[str], Awaitable[str]] | None = None
    cancel: Callable[[str, str], Awaitable[None]] | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class WriteResult:
    id: str
    kind: str
    subject: str
    flow_run_id: str | None
    change_id: str | None
    steps: dict[str, str]
    seconds: float


class WriteFlow:
    def __init__(self, settings: NoaSettings, engine: Engine, cache: Cache, *,
                 record_change: Callable[..., Any] | None | bool = True,
                 schedule_backup: Callable[[NoaSettings], Any] | None | bool = True,
                 logger: logging.Logger | None = None) -> None:
        self.settings = settings
        self.engine = engine
        ServerWrite.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
        self.cache = cache
        # One writer thread at a time takes the database's write lock: waiting here wakes at once,
        # while threads racing for SQLite's lock sleep in its busy handler (1, 2, 5, 10... ms).
        self._one_writer = threading.Lock()
        self.record_change = cltree_record_change if record_change is True else (record_change or None)
        self.schedule_backup = _schedule_backup if schedule_backup is True else (schedule_backup or None)
        self.log = logger or logging.getLogger("noa.server.writes")
        self._backups: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ steps (sync, in a worker thread)
    def _transaction(self, req: WriteRequest, flow_run_id: str | None) -> PendingChange | None:
        """Row, registry update and change-log entry in one transaction, retried when the database is busy."""
        last: _Failed | None = None
        for attempt in range(WRITE_ATTEMPTS):
            step = "db write"
            try:
                with self._one_writer, self.engine.connect() as conn:
                    lock_for_append(conn)
                    conn.execute(_INSERT_WRITE, {"id": req.id, "kind": req.kind, "subject": req.subject[:300],
                                                 "params": req.params, "token_name": req.token_name,
                                                 "flow_run_id": flow_run_id, "status": "accepted",
                                                 "created": datetime.now(UTC), "note": None})
                    self._invalidate(req)  # first drop (before commit)
                    if req.registry_update is not None:
                        req.registry_update(conn)
                    step = "change log"
                    pending = self._change(conn, req, flow_run_id)
                    conn.commit()
            except OperationalError as exc:
                if not is_retryable(exc):
                    raise _Failed(step, exc) from exc
                last = _Failed(step, exc)  # busy or locked: the whole transaction again
                retry_pause(attempt)
                continue
            except Exception as exc:  # under the lock an integrity error is a real clash, not a race
                raise _Failed(step, exc) from exc
            # committed: what follows can no longer undo the write
            self._safe_invalidate(req)  # second drop (after commit): evicts a fill from the old rows
            self._checkpoint(pending)
            return pending
        raise last or _Failed("db write", RuntimeError("database busy"))

    def _invalidate(self, req: WriteRequest) -> None:
        invalidate(self.cache, req.invalidate_keys, req.invalidate_prefixes)

    def _change(self, conn: Connection, req: WriteRequest, flow_run_id: str | None) -> PendingChange | None:
        if self.record_change is None:
            return None
        payload = {"write_id": req.id, "action": "api." + req.kind, "token": req.token_name,
                   "flow_run_id": flow_run_id, "params": req.params}
        kind, subject = CL_KIND.get(req.kind, "registry"), req.subject[:300] or "-"
        if self.record_change is cltree_record_change:
            return record_change_in(conn, kind, subject, payload)
        self.record_change(self.settings, kind, subject, payload)  # a test's own recorder: no entry id
        return None

    def _checkpoint(self, pending: PendingChange | None) -> None:
        if pending is None:
            return
        try:
            record_checkpoint(self.settings, pending)
        except OSError as exc:  # the entry is committed; `noa cltree checkpoint` writes the head later
            self.log.error("CL tree checkpoint after write not written: %s", exc)

    # ------------------------------------------------------------------ the flow
    async def run(self, req: WriteRequest) -> WriteResult:
        t0 = time.perf_counter()
        steps: dict[str, str] = {"validation": "ok"}
        flow_run_id: str | None = None
        if req.submit is not None:
            flow_run_id = await req.submit(req.id)  # raises -> nothing written yet
            steps["flow_run"] = "ok"
        try:
            pending = await asyncio.to_thread(self._transaction, req, flow_run_id)
        except _Failed as failed:
            await asyncio.to_thread(self._safe_invalidate, req)
            await self._cancel(req, flow_run_id, f"{failed.step} failed")
            exc = failed.error
            raise WriteFailed(failed.step, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from exc
        steps.update({"db_write": "ok", "cache_invalidation": "ok",
                      "registry_update": "ok" if req.registry_update else "skipped: nothing to update"})
        steps["change_log"] = "skipped: no change log" if self.record_change is None else "ok"
        steps["backup"] = self._trigger_backup()
        change_id = pending.entry.id if pending is not None else None
        return WriteResult(req.id, req.kind, req.subject, flow_run_id, change_id, steps,
                           round(time.perf_counter() - t0, 6))

    def _safe_invalidate(self, req: WriteRequest) -> None:
        try:
            self._invalidate(req)
        except Exception as exc:  # noqa: BLE001
            self.log.error("write %s: cache invalidation failed: %s", req.id, exc)

    async def _cancel(self, req: WriteRequest, flow_run_id: str | None, why: str) -> None:
        if flow_run_id and req.cancel is not None:
            await req.cancel(flow_run_id, f"NOA API write {req.id} undone: {why}")

    def _trigger_backup(self) -> str:
        if self.schedule_backup is None:
            return "skipped: backup helper not available"

        trigger = self.schedule_backup

        async def backup() -> None:
            try:
                if inspect.iscoroutinefunction(trigger):
                    await trigger(self.settings)
                else:  # e.g. noa_core.backup.trigger.schedule_backup: forks a runner, returns at once
                    result = await asyncio.to_thread(trigger, self.settings)  # type: ignore[arg-type]
                    if inspect.isawaitable(result):
                        await result
            except Exception as exc:  # noqa: BLE001 - a failed backup never fails the write
                self.log.warning("asynchronous backup failed: %s", exc)

        task = asyncio.get_running_loop().create_task(backup())
        self._backups.add(task)
        task.add_done_callback(self._backups.discard)
        return "scheduled"

    async def drain(self) -> None:
        if self._backups:
            await asyncio.gather(*list(self._backups), return_exceptions=True)


def project_upsert(name: str, root_commits: Iterable[str]) -> RegistryUpdate:
    """Registry update for ``POST /v1/projects``: create the project or add root commits."""
    from sqlalchemy import insert, select, update

    from noa_core.storage.models import Project

    projects = Project.__table__
    roots = sorted(set(root_commits))

    def upsert(conn: Connection) -> None:
        row = conn.execute(select(projects.c.id, projects.c.root_commits).where(projects.c.name == name)).first()
        if row is None:
            conn.execute(insert(projects), {"name": name, "root_commits": roots, "created": datetime.now(UTC)})
            return
        merged = sorted(set(row.root_commits or []) | set(roots))
        if merged != list(row.root_commits or []):
            conn.execute(update(projects).where(projects.c.id == row.id).values(root_commits=merged))

    return upsert


def write_rows(engine: Engine, kind: str | None = None) -> list[dict[str, Any]]:
    from sqlalchemy import select

    with Session(engine) as s:
        q = select(ServerWrite).order_by(ServerWrite.created)
        if kind:
            q = q.where(ServerWrite.kind == kind)
        return [{"id": r.id, "kind": r.kind, "subject": r.subject, "flow_run_id": r.flow_run_id,
                 "params": json.loads(json.dumps(r.params))} for r in s.scalars(q)]
