"""The drop-in watcher: find complete items, take each once, run it, file it by outcome.

The service is Prefect-free.  It runs code drops through a :class:`RunBackend` port; the
real one (``deployments/code_drop.py``) serves the ``code_drop`` deployment in this
process and triggers one flow run per item, so every item shows in the Prefect UI under
its own name.  Tests use an in-process fake.

Life of an item (see :mod:`noa_core.dropin.journal` for why this is exactly-once):

1. seen at the top of ``drop-in/`` (watchfiles wakes the loop; a scan every
   ``scan_interval`` seconds is the safety net), settled (:mod:`~noa_core.dropin.settle`);
2. hashed (:func:`~noa_core.dropin.items.content_key`); a key already finished is
   skipped and left where it is; otherwise the item is renamed into ``.work/<key>/`` and
   journalled ``taken``;
3. a flow run is created (idempotency key ``<key>:<attempt>``), journalled ``started``,
   and waited for, at most ``concurrency`` at a time;
4. the outcome is journalled ``finished`` and the item moves to ``processed/``,
   ``failed/`` (with the reason, and the report when there is one) or ``quarantine/``
   (refused as hostile or over a limit: never extracted again).

On start, unfinished journal entries are recovered before anything new is taken: a run
that finished while no watcher was there is filed; a run still scheduled is adopted; a
run left active by a watcher that died is marked crashed and the item is run once more;
one interrupted twice is filed as failed.
"""

from __future__ import annotations

import asyncio
import enum
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from noa_core.dropin.folder import DropInFolder
from noa_core.dropin.items import (
    RESERVED_NAMES,
    Signature,
    archive_looks_complete,
    classify,
    content_key,
    is_ignored,
    read_source_file,
    signature,
)
from noa_core.dropin.journal import ItemRecord, Journal, Outcome
from noa_core.dropin.settle import Ready, SettleTracker
from noa_core.errors import BadInput, NoaError

MAX_INTERRUPTS = 2  # the first interruption is re-run once; the second files the item as failed


# ------------------------------------------------------------------ the run port
class RunStatus(enum.Enum):
    SCHEDULED = "scheduled"  # created, not picked up: the new runner will run it
    ACTIVE = "active"  # pending / running / paused / cancelling
    FINAL = "final"
    MISSING = "missing"  # the orchestrator does not know it (database reset)


@dataclass(frozen=True)
class RunRequest:
    key: str
    attempt: int
    name: str
    kind: str
    source: str
    home: str
    use_ai: bool
    sandbox: str

    @property
    def idempotency_key(self) -> str:
        return f"drop-in:{self.key}:{self.attempt}"


@dataclass(frozen=True)
class RunTicket:
    run_id: str
    url: str | None = None


@dataclass(frozen=True)
class RunOutcome:
    """How a code_drop run ended, as the drop-in needs to know it."""

    state: Literal["completed", "failed", "crashed", "cancelled"]
    report: dict[str, Any] | None = None
    error_type: str | None = None
    hostile: bool = False  # HostileInput or LimitExceeded: quarantine
    bad_input: bool = False  # any BadInput: running it again gives the same answer
    message: str = ""


class RunBackend(Protocol):
    """Runs code drops; the Prefect implementation lives in ``deployments/code_drop.py``."""

    description: str

    async def start(self) -> None:
        """Register the deployment; runs may be created but none is executed yet."""

    async def serve(self) -> None:
        """Begin executing runs (after recovery has looked at the ones left from before)."""

    async def stop(self) -> None: ...

    async def submit(self, request: RunRequest) -> RunTicket: ...

    async def status(self, run_id: str) -> RunStatus: ...

    async def wait(self, run_id: str) -> RunOutcome: ...

    async def mark_crashed(self, run_id: str, message: str) -> None: ...

    def url(self, run_id: str) -> str | None: ...


# ------------------------------------------------------------------ what the service reports
EventKind = Literal["watching", "taken", "running", "done", "failed", "quarantined", "skipped", "waiting",
                    "resumed", "interrupted", "stopping", "error", "warning"]


@dataclass(frozen=True)
class DropInEvent:
    kind: EventKind
    name: str = ""
    message: str = ""
    url: str | None = None
    key: str | None = None
    dest: str | None = None


@dataclass
class ItemResult:
    name: str
    key: str
    outcome: Outcome | Literal["error"]
    reason: str
    dest: str | None
    run_id: str | None
    url: str | None
    attempt: int
    report_path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class WatchOptions:
    settle: float = 3.0
    concurrency: int = 2
    once: bool = False
    use_ai: bool = True
    sandbox: str = "AUTO"
    max_interrupts: int = MAX_INTERRUPTS
    scan_interval: float | None = None  # default: settle / 4, between 0.2 and 1 s
    incomplete_grace: float | None = None  # default: max(30, 10 x settle)
    file_events: bool = True  # wake up on watchfiles events (scanning continues regardless)

    def __post_init__(self) -> None:
        if self.settle < 0:
            raise BadInput(f"--settle must be 0 or more seconds, not {self.settle}")
        if self.concurrency < 1:
            raise BadInput(f"--concurrency must be at least 1, not {self.concurrency}")
        if self.sandbox.upper() not in ("A", "B", "C", "AUTO"):
            raise BadInput(f"--sandbox must be A, B, C or auto, not {self.sandbox!r}")
        self.sandbox = self.sandbox.upper()

    @property
    def interval(self) -> float:
        if self.scan_interval is not None:
            return self.scan_interval
        return min(1.0, max(0.2, self.settle / 4))

    @property
    def grace(self) -> float:
        return self.incomplete_grace if self.incomplete_grace is not None else max(30.0, 10 * self.settle)


TESTS_BAD = ("failed", "error", "timeout")


def _one_line(text: str, limit: int = 2000) -> str:
    return " ".join(str(text).split())[:limit]


def _summary(report: dict[str, Any]) -> str:
    tests = report.get("tests") or {}
    parts = [f"{report.get('project', '?')}"]
    if tests:
        parts.append(f"tests {tests.get('status')}: {tests.get('passed', 0)} passed, {tests.get('failed', 0)} failed"
                     + (f", {tests.get('errors')} errors" if tests.get("errors") else ""))
    if report.get("sandbox"):
        parts.append(f"sandbox {report['sandbox']}")
    if isinstance(report.get("confidence"), (int, float)):
        parts.append(f"confidence {report['confidence']:.2f}")
    return ", ".join(parts)


class DropInService:
    """Watch ``NOA_HOME/drop-in`` and run each complete item through ``backend`` once."""

    def __init__(self, home: str | os.PathLike[str], backend: RunBackend, options: WatchOptions | None = None,
                 on_event: Callable[[DropInEvent], None] | None = None) -> None:
        self.home = Path(home).resolve()
        self.folder = DropInFolder.for_home(self.home)
        self.backend = backend
        self.options = options or WatchOptions()
        self.on_event = on_event or (lambda event: None)
        self.tracker = SettleTracker(self.options.settle, self.options.grace)
        self.results: list[ItemResult] = []
        self.journal: Journal | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._active: dict[str, str] = {}  # key -> item name, taken or running in this process
        self._taking: set[str] = set()  # names being checked and hashed
        self._skipped: dict[str, Signature] = {}  # name -> signature already announced as skipped
        self._waiting: set[str] = set()
        self._stop: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._sem: asyncio.Semaphore | None = None

    # ------------------------------------------------------------------ control
    def request_stop(self) -> None:
        """Stop taking items; in-flight runs are released (a restart runs them again)."""
        if self._stop is not None and not self._stop.is_set():
            self._emit("stopping", message="stopping: in-flight items are released and resume on the next start")
            self._stop.set()
            assert self._wake is not None
            self._wake.set()

    def _emit(self, kind: EventKind, name: str = "", **kw: Any) -> None:
        try:
            self.on_event(DropInEvent(kind, name, **kw))
        except Exception:  # noqa: BLE001, S110 - a progress printer never stops the watcher
            pass

    async def run(self) -> list[ItemResult]:
        self._stop, self._wake = asyncio.Event(), asyncio.Event()
        self._sem = asyncio.Semaphore(self.options.concurrency)
        self.folder.ensure()
        with self.folder.lock():
            self.journal = Journal(self.folder.journal)
            try:
                try:
                    await self.backend.start()
                    self._emit("watching", message=(
                        f"{self.folder.root} (settle {self.options.settle:g} s, concurrency "
                        f"{self.options.concurrency}{', once' if self.options.once else ''}); {self.backend.description}"))
                    await self._recover()
                    await self.backend.serve()
                    await self._main_loop()
                finally:
                    await self._cancel_tasks()
                    await self.backend.stop()
            finally:
                self.journal.close()
        return self.results

    async def _main_loop(self) -> None:
        assert self._stop is not None and self._wake is not None
        events = asyncio.create_task(self._file_events()) if self.options.file_events else None
        try:
            while not self._stop.is_set():
                await self._scan()
                if self.options.once and self._idle():
                    break
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.options.interval)
                except TimeoutError:
                    pass
                self._wake.clear()
        finally:
            if events is not None:
                events.cancel()
                await asyncio.gather(events, return_exceptions=True)

    def _idle(self) -> bool:
        return not self._tasks and not self._taking and not self.tracker.candidates

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:  # pragma: no cover - handled inside
                self._emit("error", message=f"internal error: {t.exception()!r}")
            assert self._wake is not None
            self._wake.set()

        task.add_done_callback(done)

    async def _file_events(self) -> None:
        """Wake the loop on changes at the top of the folder; pair renames into place."""
        assert self._stop is not None and self._wake is not None
        try:
            from watchfiles import Change, awatch
        except ImportError:  # pragma: no cover - watchfiles is a dependency
            self._emit("warning", message="watchfiles is not installed: polling only")
            return
        root = self.folder.root
        try:
            async for changes in awatch(root, stop_event=self._stop, recursive=False, watch_filter=None,
                                        debounce=400, step=50, ignore_permission_denied=True):
                deleted = [Path(p).name for c, p in changes if c == Change.deleted and Path(p).parent == root]
                added = [Path(p).name for c, p in changes if c == Change.added and Path(p).parent == root]
                self.tracker.note_batch(deleted, added, time.monotonic())
                self._wake.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - inotify limits, odd filesystems: the scans carry on
            self._emit("warning", message=f"file events unavailable ({exc}); polling every "
                                          f"{self.options.interval:g} s")

    # ------------------------------------------------------------------ discovery
    def _collect(self) -> tuple[dict[str, Signature], dict[int, str]]:
        present: dict[str, Signature] = {}
        temps: dict[int, str] = {}
        root = self.folder.root
        try:
            entries = list(os.scandir(root))
        except FileNotFoundError:
            self.folder.ensure()
            return present, temps
        for entry in entries:
            name = entry.name
            if name in RESERVED_NAMES:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if is_ignored(name):
                temps[st.st_ino] = name
                continue
            sig = signature(root / name)
            if sig is None:
                continue
            if entry.is_dir(follow_symlinks=False) and sig.empty:
                continue  # an empty directory is nothing to drop (yet)
            present[name] = sig
        return present, temps

    async def _scan(self) -> None:
        present, temps = await asyncio.to_thread(self._collect)
        for name in list(self._skipped):
            if present.get(name) != self._skipped[name]:
                del self._skipped[name]
        present = {n: s for n, s in present.items() if n not in self._skipped}
        now = time.monotonic()
        # observe against the temporaries of the *previous* scan: a `.part` seen then and gone now,
        # whose inode reappears under its final name, was renamed into place
        self.tracker.observe(present, now)
        self.tracker.note_temporaries(temps)
        if self._stop is not None and self._stop.is_set():
            return
        for ready in self.tracker.ready(now):
            if ready.name in self._taking:
                continue
            self._taking.add(ready.name)
            self._spawn(self._take(ready))

    async def _take(self, ready: Ready) -> None:
        assert self.journal is not None
        name = ready.name
        path = self.folder.root / name
        try:
            kind, _why = classify(path)
            if kind == "archive" and not ready.forced and not await asyncio.to_thread(archive_looks_complete, path):
                self.tracker.looks_incomplete(name, time.monotonic())
                if name not in self._waiting:
                    self._waiting.add(name)
                    self._emit("waiting", name, message="archive looks cut short (no end marker yet); waiting "
                                                       f"up to {self.options.grace:g} s for the rest")
                return
            key = await asyncio.to_thread(content_key, path, kind)
            if await asyncio.to_thread(signature, path) != ready.sig:
                return  # changed while it was hashed: it settles again
            rec = self.journal.get(key)
            if key in self._active or (rec is not None and not rec.finished):
                other = self._active.get(key) or (rec.name if rec else "?")
                self._skip(name, ready.sig, f"same content as {other!r}, which is being processed")
                return
            if rec is not None and rec.finished and not rec.retryable:
                when = f" on {rec.finished_at}" if rec.finished_at else ""
                self._skip(name, ready.sig, f"already {rec.outcome}{when} ({rec.dest}); same content is not run twice")
                return
            attempt = rec.attempt + 1 if rec is not None else 1
            try:
                self.folder.take(name, key)
            except FileNotFoundError:
                return
            rec = self.journal.taken(key, name, kind, attempt)
            self.tracker.forget(name)
            self._waiting.discard(name)
            how = "renamed into place" if ready.renamed else (
                "forced after waiting" if ready.forced else f"settled {self.options.settle:g} s")
            self._emit("taken", name, message=f"{kind}, {how}, key {key[:12]}", key=key)
            self._spawn(self._process(rec))
        except OSError as exc:
            self._emit("error", name, message=f"cannot take {name!r}: {exc}")
            self._skip(name, ready.sig, f"cannot be taken: {exc}", quiet=True)
        finally:
            self._taking.discard(name)

    def _skip(self, name: str, sig: Signature, why: str, quiet: bool = False) -> None:
        self._skipped[name] = sig
        self.tracker.forget(name)
        self._waiting.discard(name)
        if not quiet:
            self._emit("skipped", name, message=why)

    # ------------------------------------------------------------------ running
    async def _prepare(self, rec: ItemRecord) -> str | None:
        """The SOURCE for code_drop, or None when the item is refused before any run."""
        path = self.folder.work_item(rec.key, rec.name)
        if rec.kind == "unsupported":
            _kind, why = classify(path)
            await self._finish(rec, "failed", why or "not a supported item", retryable=False, run_id=None)
            return None
        if rec.kind == "source-file":
            from noa_core.intake import parse_source

            try:
                source = read_source_file(path)
                parse_source(source)
            except BadInput as exc:
                await self._finish(rec, "failed", exc.one_line(), retryable=False, run_id=None)
                return None
            return source
        return str(path)

    async def _process(self, rec: ItemRecord, adopt_run_id: str | None = None) -> None:
        """Run one item (or adopt its existing run) and file it by outcome."""
        assert self.journal is not None and self._sem is not None
        key, name = rec.key, rec.name
        self._active[key] = name
        run_id: str | None = adopt_run_id
        try:
            source = None
            if adopt_run_id is None:
                source = await self._prepare(rec)
                if source is None:
                    return
            async with self._sem:
                if run_id is None:
                    assert source is not None
                    run_id = await self._submit(rec, source)
                self._emit("running", name, message=f"attempt {rec.attempt}" if rec.attempt > 1 else "",
                           url=self.backend.url(run_id), key=key)
                outcome = await self.backend.wait(run_id)
            await self._conclude(rec, run_id, outcome)
        except asyncio.CancelledError:
            current = self.journal.get(key)
            if current is not None and not current.finished:
                self.journal.released(key, run_id)
            raise
        except NoaError as exc:
            self._error(rec, run_id, exc.one_line())
        except Exception as exc:  # noqa: BLE001 - the item stays in .work; the next start resumes it
            self._error(rec, run_id, f"{type(exc).__name__}: {exc}")
        finally:
            self._active.pop(key, None)

    async def _submit(self, rec: ItemRecord, source: str) -> str:
        assert self.journal is not None
        ticket = await self.backend.submit(RunRequest(
            key=rec.key, attempt=rec.attempt, name=rec.name, kind=rec.kind, source=source, home=str(self.home),
            use_ai=self.options.use_ai, sandbox=self.options.sandbox))
        self.journal.started(rec.key, rec.attempt, ticket.run_id)
        return ticket.run_id

    def _error(self, rec: ItemRecord, run_id: str | None, message: str) -> None:
        self._emit("error", rec.name, message=f"{_one_line(message, 500)} (left in {self.folder.work_dir(rec.key)}; "
                                              "the next start resumes it)", key=rec.key)
        self.results.append(ItemResult(rec.name, rec.key, "error", message, None, run_id,
                                       self.backend.url(run_id) if run_id else None, rec.attempt))

    async def _conclude(self, rec: ItemRecord, run_id: str, outcome: RunOutcome) -> None:
        report = outcome.report
        retryable = False
        result: Outcome
        if outcome.state == "completed" and report:
            tests = report.get("tests") or {}
            if tests.get("status") in TESTS_BAD:
                result, reason = "failed", f"tests {tests.get('status')}: {_summary(report)}"
            else:
                result, reason = "processed", _summary(report)
        elif outcome.state == "completed":
            result, reason, retryable = "failed", "the run completed but its report could not be read", True
        elif outcome.state == "failed" and outcome.hostile:
            result, reason = "quarantined", f"{outcome.error_type}: {_one_line(outcome.message)}"
        elif outcome.state == "failed":
            result = "failed"
            reason = f"{outcome.error_type}: {_one_line(outcome.message)}" if outcome.error_type else \
                _one_line(outcome.message) or "the run failed"
            retryable = not outcome.bad_input
        else:
            result, retryable = "failed", True
            reason = f"the flow run was {outcome.state}: {_one_line(outcome.message) or 'no message'}"
        await self._finish(rec, result, reason, retryable=retryable, run_id=run_id, report=report)

    async def _finish(self, rec: ItemRecord, outcome: Outcome, reason: str, *, retryable: bool, run_id: str | None,
                      report: dict[str, Any] | None = None) -> None:
        assert self.journal is not None
        dest = self.folder.choose_dest(outcome, rec.name, rec.key)
        url = self.backend.url(run_id) if run_id else None
        rec = self.journal.finished(rec.key, outcome, reason=reason, dest=dest,
                                    report_path=(report or {}).get("report_path"), retryable=retryable,
                                    run_id=run_id, extra={"url": url, "attempt": rec.attempt})
        await asyncio.to_thread(self._materialize, rec, report)
        if run_id:
            self.folder.drop_receipt(run_id)
        kind: EventKind = {"processed": "done", "failed": "failed", "quarantined": "quarantined"}[outcome]
        self._emit(kind, rec.name, message=reason, url=url, key=rec.key, dest=dest)
        self.results.append(ItemResult(rec.name, rec.key, outcome, reason, dest, run_id, url, rec.attempt,
                                       rec.report_path))

    def _materialize(self, rec: ItemRecord, report: dict[str, Any] | None = None) -> None:
        """Move the item to its outcome folder with report and reason (idempotent)."""
        assert rec.dest is not None and rec.outcome is not None
        report_md: str | None = None
        if report is None and rec.report_path:
            try:
                import json

                report = json.loads(Path(rec.report_path).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                report = None
        if rec.report_path:
            try:
                report_md = Path(rec.report_path).with_suffix(".md").read_text(encoding="utf-8")
            except OSError:
                report_md = None
        url = rec.extra.get("url")
        if report is not None:
            report = {**report, "drop_in": {"item": rec.name, "kind": rec.kind, "key": rec.key,
                                             "outcome": rec.outcome, "attempt": rec.attempt, "flow_run_id": rec.run_id,
                                             "flow_run_url": url, "moved_to": rec.dest}}
        reason_text = None
        if rec.outcome != "processed":
            reason_text = "\n".join([
                f"{rec.outcome}: {rec.reason}",
                f"item: {rec.name} ({rec.kind})",
                f"content key: {rec.key}",
                f"attempt: {rec.attempt}",
                f"flow run: {url or rec.run_id or 'none (refused before a run)'}",
                f"finished: {rec.finished_at}",
                "retry: drop the same content again" if rec.retryable else
                "retry: this content is not run again from the drop-in folder (use `noa drop`)",
            ]) + "\n"
        self.folder.finalize(rec.key, rec.name, rec.dest, report=report, report_md=report_md,
                             reason_text=reason_text)

    # ------------------------------------------------------------------ recovery
    async def _recover(self) -> None:
        assert self.journal is not None
        for key, name in self.folder.orphan_work(set(self.journal.records)).items():
            kind, _why = classify(self.folder.work_item(key, name))
            self.journal.taken(key, name, kind, 1)
            self._emit("resumed", name, message="found in .work without a journal entry: taking it", key=key)
        for rec in list(self.journal):
            if rec.finished:
                if os.path.lexists(self.folder.work_item(rec.key, rec.name)) and rec.dest:
                    await asyncio.to_thread(self._materialize, rec)
                    self._emit("resumed", rec.name, message=f"finished the move to {rec.dest}", key=rec.key)
                continue
            if not os.path.lexists(self.folder.work_item(rec.key, rec.name)):
                self.journal.finished(rec.key, "failed", reason="the item vanished from .work before its run ended",
                                      dest=None, report_path=None, retryable=True, run_id=rec.run_id)
                self._emit("error", rec.name, message="vanished from .work before its run ended", key=rec.key)
                continue
            await self._recover_one(rec)

    async def _recover_one(self, rec: ItemRecord) -> None:
        """Before the runner serves: decide for one unfinished item, then hand it on."""
        assert self.journal is not None
        if rec.state == "taken" or rec.run_id is None:
            # taken, maybe with a run already created under this attempt's idempotency key
            source = await self._prepare(rec)
            if source is None:
                return
            await self._submit(rec, source)
            rec = self.journal.get(rec.key)  # type: ignore[assignment]
            assert rec is not None and rec.run_id is not None
        run_id = rec.run_id
        assert run_id is not None
        action, rec, _outcome = await self._reconcile(rec, run_id)
        if action == "rerun":
            self._spawn(self._process(rec))
        elif action in ("adopt", "conclude"):
            self._spawn(self._process(rec, adopt_run_id=run_id))

    async def _reconcile(self, rec: ItemRecord, run_id: str) -> tuple[str, ItemRecord, RunOutcome | None]:
        """What to do with a run created before this watcher started.

        ``adopt`` (still scheduled: this runner runs it), ``conclude`` (it finished: file
        it by its outcome), ``rerun`` (cut off: run the next attempt) or ``done`` (cut off
        too often: filed as failed).
        """
        assert self.journal is not None
        key = rec.key
        status = await self.backend.status(run_id)
        if status is RunStatus.SCHEDULED:
            self._emit("resumed", rec.name, message=f"its run is scheduled; running it (attempt {rec.attempt})",
                       key=key)
            return "adopt", rec, None
        if status is RunStatus.FINAL:
            outcome = await self.backend.wait(run_id)
            if not (outcome.state == "crashed" or (outcome.state == "cancelled" and rec.released)):
                self._emit("resumed", rec.name, message="its run finished while no watcher was running", key=key)
                return "conclude", rec, outcome
        else:
            await self.backend.mark_crashed(run_id, "the drop-in watcher stopped while this run was active; "
                                                    "the item is run again")
        if rec.released:
            rec = self.journal.resumed(key, run_id, rec.attempt + 1)
            self._emit("resumed", rec.name, message=f"was stopped with the watcher; running it again "
                                                    f"(attempt {rec.attempt})", key=key)
            return "rerun", rec, None
        rec = self.journal.interrupted(key, run_id, rec.attempt + 1)
        if rec.interrupts >= self.options.max_interrupts:
            await self._finish(rec, "failed", f"interrupted {rec.interrupts} times (the watcher stopped while it ran); "
                                              "not run again automatically", retryable=True, run_id=run_id)
            return "done", rec, None
        self._emit("interrupted", rec.name, message=f"its run was cut off when the watcher stopped; running it once "
                                                    f"more (attempt {rec.attempt})", key=key)
        return "rerun", rec, None


__all__ = [
    "MAX_INTERRUPTS",
    "DropInEvent",
    "DropInService",
    "EventKind",
    "ItemResult",
    "RunBackend",
    "RunOutcome",
    "RunRequest",
    "RunStatus",
    "RunTicket",
    "WatchOptions",
]

