"""Flow, stage, deploy and backup metrics from the CL tree, whichever process ran them.

Flows run in the `noa` CLI, in workers or in the server; every one of them records its
outcome in the CL tree of the shared NOA_HOME. The server follows that log (each poll
reads the entries after the last one it saw, from the first entry on at start-up) and
turns the entries into the metric conventions of :class:`~noa_core.events.metrics.MetricsSubscriber`:

=========  =================================================================
entry      metric
=========  =================================================================
stage      ``noa_stage_runs_total{stage,status}``, ``noa_stage_seconds``
pipeline   ``noa_flow_runs_total{flow="noa_pipeline",outcome=verdict}``, ``noa_flow_seconds``
release    ``noa_deploys_total{env,outcome}``
rollback   ``noa_rollbacks_total{app}``
backup     ``noa_backup_bytes{backend}``
=========  =================================================================

The entries are fed to the metrics subscriber directly, not published on the event bus:
the bus's change-log logger would record them in the CL tree a second time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import Engine

from noa_core.cltree import ChangeEntry
from noa_core.cltree.log import entries_after
from noa_core.events.interface import Event
from noa_core.events.metrics import MetricsSubscriber

KINDS = ("stage", "pipeline", "release", "rollback", "backup")


def entry_event(entry: ChangeEntry) -> Event | None:
    """The metrics event an entry stands for (``None``: nothing to count)."""
    p: dict[str, Any] = dict(entry.payload)
    duration = p.get("duration_s")
    duration_s = float(duration) if isinstance(duration, (int, float)) else None
    if entry.kind == "stage":
        stage = entry.subject.rsplit("/", 1)[-1]
        return Event(kind="stage.finished", subject=entry.subject, duration_s=duration_s,
                     payload={"stage": stage, "status": str(p.get("status", "?"))})
    if entry.kind == "pipeline":
        return Event(kind="flow.finished", subject=entry.subject, duration_s=duration_s,
                     payload={"flow": "noa_pipeline", "outcome": str(p.get("verdict", "?"))})
    if entry.kind == "release":
        return Event(kind="deploy.finished", subject=entry.subject,
                     payload={"env": str(p.get("env", "?")), "outcome": str(p.get("outcome", "?"))})
    if entry.kind == "rollback":
        return Event(kind="rollback.finished", subject=entry.subject, payload={"app": str(p.get("app", entry.subject))})
    if entry.kind == "backup" and isinstance(p.get("bytes"), (int, float)):
        backend = str(p.get("repository", "local")).split(":", 1)[0]
        return Event(kind="backup.finished", subject=entry.subject, payload={"backend": backend, "bytes": p["bytes"]})
    return None


class ChangeLogMetrics:
    """Follows the CL tree of one registry database into the server's metrics."""

    def __init__(self, engine: Engine, metrics: MetricsSubscriber, *, batch: int = 2000,
                 logger: logging.Logger | None = None) -> None:
        self.engine = engine
        self.metrics = metrics
        self.batch = batch
        self.last_seq = 0
        self.log = logger or logging.getLogger("noa.server.cltree_metrics")

    def poll(self) -> int:
        """Count every entry recorded since the last poll; returns how many entries were counted."""
        counted = 0
        while True:
            entries, last = entries_after(self.engine, self.last_seq, KINDS, self.batch)
            for entry in entries:
                event = entry_event(entry)
                if event is not None:
                    self.metrics.handle(event)
                    counted += 1
            moved = last != self.last_seq
            self.last_seq = last
            if not moved:
                return counted

    async def follow(self, interval_s: float = 2.0) -> None:
        """Poll every ``interval_s`` until cancelled; a failed poll is logged and retried."""
        while True:
            try:
                await asyncio.to_thread(self.poll)
            except Exception as exc:  # noqa: BLE001 - metrics must never take the server down
                self.log.warning("CL tree metrics: %s", exc)
            await asyncio.sleep(interval_s)
