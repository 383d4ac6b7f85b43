"""Follow a tree of Prefect flow runs from the API while it runs: the CLI's source of progress.

The command puts its flow call under a Prefect tag of its own (``noa-cli-<hex>``, made by
:func:`new_watch_tag`); Prefect gives every flow run created inside that context - the
flow and all its subflows - the tag. A :class:`RunWatcher` thread reads those runs back from
the API every ``interval_s`` (names, flow names, states, run times) and hands each snapshot to
a callback. Nothing in the flows knows about it: what the CLI shows is what the API says.

For the stage subflows (``*_stage``) the watcher also reads the verdict the stage left in its
table artifact (``status``, ``details`` and ``duration_s`` of the first row), once per finished run.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["RunInfo", "RunWatcher", "new_watch_tag"]

TAG_PREFIX = "noa-cli-"


def new_watch_tag() -> str:
    return TAG_PREFIX + uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class RunInfo:
    """One flow run as the API reported it."""

    id: str
    name: str
    flow_name: str
    state: str  # Prefect state type: PENDING, RUNNING, COMPLETED, FAILED, CRASHED, CANCELLED, ...
    state_name: str
    seconds: float  # run time so far (server side), for a running run as of ``polled_at``
    created: float  # epoch seconds, for ordering
    polled_at: float  # time.monotonic() of the poll
    verdict: str | None = None  # stages: passed | failed | skipped, from the stage's table artifact
    details: str = ""

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"

    @property
    def final(self) -> bool:
        return self.state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


class RunWatcher:
    """Polls the flow runs tagged ``tag`` on a daemon thread until :meth:`stop`.

    ``on_update`` gets the full list (oldest first) after every poll that succeeded; API errors
    are counted in :attr:`errors` and the next poll tries again (progress is never fatal)."""

    def __init__(self, tag: str, on_update: Callable[[list[RunInfo]], None], *, interval_s: float = 0.5,
                 limit: int = 200) -> None:
        self.tag = tag
        self.on_update = on_update
        self.interval_s = interval_s
        self.limit = limit
        self.errors = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flow_names: dict[str, str] = {}
        self._verdicts: dict[str, tuple[str, str, float | None]] = {}

    def start(self) -> RunWatcher:
        self._thread = threading.Thread(target=self._loop, name="noa-run-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, final_poll: bool = True) -> None:
        """Stop the thread; with ``final_poll`` read the runs once more (their last states)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if final_poll:
            self.poll_once()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval_s)

    def poll_once(self) -> list[RunInfo] | None:
        try:
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                runs = self._read(client)
        except Exception as exc:  # noqa: BLE001 - a progress view must never break the command
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            return None
        self.on_update(runs)
        return runs

    def _read(self, client: Any) -> list[RunInfo]:
        from prefect.client.schemas.filters import (
            FlowFilter,
            FlowFilterId,
            FlowRunFilter,
            FlowRunFilterTags,
        )
        from prefect.client.schemas.sorting import FlowRunSort

        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[self.tag])),
                                     sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=self.limit)
        missing = sorted({str(r.flow_id) for r in runs} - set(self._flow_names))
        if missing:
            for f in client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=[uuid.UUID(m) for m in missing]))):
                self._flow_names[str(f.id)] = f.name
        now = time.monotonic()
        out: list[RunInfo] = []
        for r in runs:
            state = r.state.type.value if r.state is not None else "PENDING"
            flow_name = self._flow_names.get(str(r.flow_id), "?")
            seconds = (r.total_run_time if state != "RUNNING" else r.estimated_run_time).total_seconds()
            verdict, details = None, ""
            if flow_name.endswith("_stage") and state == "COMPLETED":
                verdict, details, took = self._stage_verdict(client, str(r.id))
                seconds = took if took is not None else seconds  # the stage's own timing, as in its table
            created = r.created.timestamp() if r.created else 0.0
            out.append(RunInfo(str(r.id), r.name, flow_name, state, r.state.name if r.state else "Pending",
                               max(0.0, seconds), created, now, verdict, details))
        out.sort(key=lambda i: i.created)
        return out

    def _stage_verdict(self, client: Any, run_id: str) -> tuple[str | None, str, float | None]:
        if run_id in self._verdicts:
            return self._verdicts[run_id]
        from prefect.client.schemas.filters import (
            ArtifactFilter,
            ArtifactFilterFlowRunId,
            ArtifactFilterType,
        )

        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(run_id)]), type=ArtifactFilterType(any_=["table"])))
        for a in arts:
            rows = json.loads(a.data) if isinstance(a.data, str) else a.data
            first = rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], dict) else {}
            if first.get("status") in ("passed", "failed", "skipped"):
                took = first.get("duration_s")
                self._verdicts[run_id] = (str(first["status"]), str(first.get("details", "")),
                                          float(took) if isinstance(took, int | float) else None)
                return self._verdicts[run_id]
        return None, "", None  # not written yet: the next poll asks again
