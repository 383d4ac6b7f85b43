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
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from noa_core.dropin.outcome import judge, one_line, reason_text
from noa_core.dropin.progress import DropInEvent, EventKind, ItemResult, WatchOptions
from noa_core.dropin.recovery import Recovery
from noa_core.dropin.runs import RunBackend, RunOutcome, RunRequest
from noa_core.dropin.settle import Ready, SettleTracker
from noa_core.errors import BadInput, NoaError


class DropInService(Recovery):
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
        self._emit("error", rec.name, message=f"{one_line(message, 500)} (left in {self.folder.work_dir(rec.key)}; "
                                              "the next start resumes it)", key=rec.key)
        self.results.append(ItemResult(rec.name, rec.key, "error", message, None, run_id,
                                       self.backend.url(run_id) if run_id else None, rec.attempt))

    async def _conclude(self, rec: ItemRecord, run_id: str, outcome: RunOutcome) -> None:
        result, reason, retryable = judge(outcome)
        await self._finish(rec, result, reason, retryable=retryable, run_id=run_id, report=outcome.report)

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
        self.folder.finalize(rec.key, rec.name, rec.dest, report=report, report_md=report_md,
                             reason_text=reason_text(rec))


__all__ = ["DropInService"]
