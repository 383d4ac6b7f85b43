"""The write flow: validation -> database write -> cache invalidation -> registry update ->
change-log entry -> success -> asynchronous backup.

Atomicity across the database, the cache and the CL tree (which writes in its own
transaction, so with SQLite it cannot share ours):

* the request row (``api_writes``) and the registry update are one transaction: both or
  neither;
* the cache keys are dropped before the commit and again after it (a reader that filled
  the cache from the old rows in between is evicted);
* if the change-log entry then fails, a compensating transaction removes the row and
  restores the registry as it was, the keys are dropped again, and a flow run created
  for the request is cancelled; the caller gets an error, and no half-written row and no
  stale cache entry stay behind.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Engine, String, Text, delete
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from noa_core.errors import NoaError
from noa_core.storage.cache import Cache, invalidate
from noa_core.storage.models import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from noa_core.config import NoaSettings

try:
    from noa_core.cltree import record_change as _record_change
except ImportError:  # CL tree not available
    _record_change = None  # type: ignore[assignment]

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


class WriteFailed(NoaError):
    """A write failed part way and was undone; ``step`` says where."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


RegistryUpdate = Callable[[Session], Callable[[Session], None] | None]
"""Changes registry rows in the open transaction; returns the undo (run in a later transaction)."""


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
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.record_change = _record_change if record_change is True else (record_change or None)
        self.schedule_backup = _schedule_backup if schedule_backup is True else (schedule_backup or None)
        self.log = logger or logging.getLogger("noa.server.writes")
        self._backups: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ steps (sync, in a worker thread)
    def _db_write(self, req: WriteRequest, flow_run_id: str | None) -> Callable[[Session], None] | None:
        undo: Callable[[Session], None] | None = None
        with self._sessions() as s, s.begin():
            s.add(ServerWrite(id=req.id, kind=req.kind, subject=req.subject[:300], params=req.params,
                              token_name=req.token_name, flow_run_id=flow_run_id,
                              created=datetime.now(UTC)))
            s.flush()
            self._invalidate(req)  # first drop (before commit)
            if req.registry_update is not None:
                undo = req.registry_update(s)
        self._invalidate(req)  # second drop (after commit): evicts a fill from the old rows
        return undo

    def _invalidate(self, req: WriteRequest) -> None:
        invalidate(self.cache, req.invalidate_keys, req.invalidate_prefixes)

    def _change(self, req: WriteRequest, flow_run_id: str | None) -> str | None:
        if self.record_change is None:
            return None
        payload = {"write_id": req.id, "action": "api." + req.kind, "token": req.token_name,
                   "flow_run_id": flow_run_id, "params": req.params}
        extra = {"engine": self.engine} if self.record_change is _record_change else {}
        entry = self.record_change(self.settings, CL_KIND.get(req.kind, "registry"), req.subject[:300] or "-",
                                   payload, **extra)
        return getattr(entry, "id", None)  # the entry names the write (payload.write_id)

    def _undo(self, req: WriteRequest, undo: Callable[[Session], None] | None) -> None:
        with self._sessions() as s, s.begin():
            s.execute(delete(ServerWrite).where(ServerWrite.id == req.id))
            if undo is not None:
                undo(s)
        self._invalidate(req)

    # ------------------------------------------------------------------ the flow
    async def run(self, req: WriteRequest) -> WriteResult:
        t0 = time.perf_counter()
        steps: dict[str, str] = {"validation": "ok"}
        flow_run_id: str | None = None
        if req.submit is not None:
            flow_run_id = await req.submit(req.id)  # raises -> nothing written yet
            steps["flow_run"] = "ok"
        try:
            undo = await asyncio.to_thread(self._db_write, req, flow_run_id)
        except Exception as exc:
            await self._cancel(req, flow_run_id, "database write failed")
            await asyncio.to_thread(self._safe_invalidate, req)
            raise WriteFailed("db write", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from exc
        steps.update({"db_write": "ok", "cache_invalidation": "ok",
                      "registry_update": "ok" if req.registry_update else "skipped: nothing to update"})
        try:
            change_id = await asyncio.to_thread(self._change, req, flow_run_id)
        except Exception as exc:
            try:
                await asyncio.to_thread(self._undo, req, undo)
            except Exception as undo_exc:  # noqa: BLE001
                self.log.error("write %s: undo after a change-log failure failed: %s", req.id, undo_exc)
            await self._cancel(req, flow_run_id, "change-log entry failed")
            raise WriteFailed("change log", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from exc
        steps["change_log"] = "ok" if change_id else "skipped: CL tree not available"
        steps["backup"] = self._trigger_backup()
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
    """Registry update for ``POST /v1/projects``: create the project or add root commits (undoable)."""
    from sqlalchemy import select

    from noa_core.storage.models import Project

    roots = sorted(set(root_commits))

    def update(s: Session) -> Callable[[Session], None]:
        row = s.scalars(select(Project).where(Project.name == name)).first()
        if row is None:
            row = Project(name=name, root_commits=roots, created=datetime.now(UTC))
            s.add(row)
            s.flush()
            new_id = row.id
            return lambda s2: s2.execute(delete(Project).where(Project.id == new_id)) and None
        before = list(row.root_commits or [])
        merged = sorted(set(before) | set(roots))
        if merged != before:
            row.root_commits = merged
        pid = row.id

        def undo(s2: Session) -> None:
            p = s2.get(Project, pid)
            if p is not None:
                p.root_commits = before

        return undo

    return update


def write_rows(engine: Engine, kind: str | None = None) -> list[dict[str, Any]]:
    from sqlalchemy import select

    with Session(engine) as s:
        q = select(ServerWrite).order_by(ServerWrite.created)
        if kind:
            q = q.where(ServerWrite.kind == kind)
        return [{"id": r.id, "kind": r.kind, "subject": r.subject, "flow_run_id": r.flow_run_id,
                 "params": json.loads(json.dumps(r.params))} for r in s.scalars(q)]
