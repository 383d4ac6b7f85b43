"""The start-up half of the drop-in watcher: what to do with the items a previous watcher left.

Unfinished journal entries are recovered before anything new is taken: a run that finished
while no watcher was there is filed; a run still scheduled is adopted; a run left active by a
watcher that died is marked crashed and the item is run once more; one interrupted twice is
filed as failed. :class:`DropInService` runs this through :class:`Recovery`, its base class.
"""

from __future__ import annotations

import asyncio
import os

from noa_core.dropin.folder import DropInFolder
from noa_core.dropin.items import classify
from noa_core.dropin.journal import ItemRecord, Journal
from noa_core.dropin.progress import WatchOptions
from noa_core.dropin.runs import RunBackend, RunOutcome, RunStatus


class Recovery:
    """Recovery steps of :class:`~noa_core.dropin.service.DropInService` (used only as its base class)."""

    journal: Journal | None
    folder: DropInFolder
    backend: RunBackend
    options: WatchOptions

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
