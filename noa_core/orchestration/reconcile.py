"""NOA's own reconciliation: no in-process run is left ``Running`` once its ``noa`` process is gone.

``noa`` runs flows in its own process with Prefect's flow heartbeat off (see
``flows/runtime.py``), so Prefect's zombie detection cannot see a ``noa`` killed with
SIGKILL. Every such run carries an owner mark (:mod:`noa_core.orchestration.owner`); this
module finds the Running / Pending / Cancelling flow runs that carry one, keeps those
whose owner process ran on this host and is gone, adds their active child flow runs and
task runs, and sets them all to ``Crashed`` (forced) with a message naming the dead pid.

Runs without the mark (deployments run by ``prefect worker`` or ``serve``, which keep
Prefect's heartbeat), runs of live owners and runs owned on other hosts are never touched.

It talks to Prefect's REST API with httpx (no Prefect import: the CLI calls it right after
choosing the server, before it imports Prefect). It runs when a ``noa`` command connects
(:func:`reconcile_quietly`) and every ~30 s in ``noa server`` and ``noa watch``
(:class:`PeriodicReconciler`).
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Self

import httpx

from noa_core.errors import NoaError
from noa_core.orchestration.owner import IN_PROCESS_TAG, OwnerMark, dead_owner

ACTIVE_STATES = ("RUNNING", "PENDING", "CANCELLING")
PAGE = 200
DEFAULT_INTERVAL_S = 30.0
_MAX_DEPTH = 20  # nesting of subflows followed below a dead run
_RETRY_DELAYS_S = (0.2, 0.5, 1.0)


class ReconcileError(NoaError):
    """The Prefect API could not be read or written during reconciliation."""


@dataclass(frozen=True)
class CrashedRun:
    kind: str  # "flow" or "task"
    id: str
    name: str
    owner_pid: int


@dataclass(frozen=True)
class ReconcileResult:
    crashed: tuple[CrashedRun, ...] = field(default_factory=tuple)

    @property
    def flow_runs(self) -> tuple[CrashedRun, ...]:
        return tuple(r for r in self.crashed if r.kind == "flow")

    @property
    def task_runs(self) -> tuple[CrashedRun, ...]:
        return tuple(r for r in self.crashed if r.kind == "task")

    def summary(self) -> str:
        pids = ", ".join(str(p) for p in sorted({r.owner_pid for r in self.crashed}))
        return (f"{len(self.flow_runs)} flow run(s) and {len(self.task_runs)} task run(s) of gone noa "
                f"process(es) (pid {pids}) marked Crashed")


def _headers() -> dict[str, str]:
    key = os.environ.get("PREFECT_API_KEY")
    if key:
        return {"Authorization": f"Bearer {key}"}
    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    if auth:
        return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    return {}


def crash_message(owner: OwnerMark) -> str:
    return (f"the noa process that ran this (pid {owner.pid} on {owner.host}) is gone; "
            "marked Crashed by NOA's reconciliation")


class _Api:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def _post(self, path: str, body: dict) -> object:
        for delay in (*_RETRY_DELAYS_S, None):  # a busy server (SQLite locked) answers 503 for a moment
            try:
                r = self.client.post(path, json=body)
            except httpx.HTTPError as exc:
                raise ReconcileError(f"Prefect API {path}: {type(exc).__name__}: {exc}") from exc
            if r.status_code not in (429, 503) or delay is None:
                break
            time.sleep(delay)
        if r.status_code >= 400:
            raise ReconcileError(f"Prefect API {path}: HTTP {r.status_code}")
        return r.json()

    def _filter(self, path: str, key: str, flt: dict) -> list[dict]:
        out: list[dict] = []
        offset = 0
        while True:
            page = self._post(path, {key: flt, "limit": PAGE, "offset": offset})
            if not isinstance(page, list):
                raise ReconcileError(f"Prefect API {path}: unexpected answer")
            out.extend(page)
            if len(page) < PAGE:
                return out
            offset += PAGE

    def marked_active_flow_runs(self) -> list[dict]:
        return self._filter("/flow_runs/filter", "flow_runs", {
            "state": {"type": {"any_": list(ACTIVE_STATES)}},
            "tags": {"all_": [IN_PROCESS_TAG]},
            "deployment_id": {"is_null_": True},
        })

    def active_children(self, parent_id: str) -> list[dict]:
        return self._filter("/flow_runs/filter", "flow_runs", {
            "state": {"type": {"any_": list(ACTIVE_STATES)}},
            "parent_flow_run_id": {"any_": [parent_id]},
            "deployment_id": {"is_null_": True},
        })

    def active_task_runs(self, flow_run_ids: list[str]) -> list[dict]:
        return self._filter("/task_runs/filter", "task_runs", {
            "state": {"type": {"any_": list(ACTIVE_STATES)}},
            "flow_run_id": {"any_": flow_run_ids},
        })

    def crash(self, kind: str, run_id: str, message: str) -> None:
        self._post(f"/{kind}_runs/{run_id}/set_state",
                   {"state": {"type": "CRASHED", "name": "Crashed", "message": message}, "force": True})


def _chunks(items: list[str], n: int = 100) -> Iterable[list[str]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def reconcile(api_url: str, *, timeout_s: float = 10.0) -> ReconcileResult:
    """Mark the active runs of gone ``noa`` processes of this host Crashed; say which.

    One filtered query when nothing is to be done; raises :class:`ReconcileError`.
    """
    with httpx.Client(base_url=api_url.rstrip("/"), headers=_headers(), timeout=timeout_s) as client:
        api = _Api(client)
        owners: dict[str, OwnerMark] = {}
        names: dict[str, str] = {}
        for run in api.marked_active_flow_runs():
            owner = dead_owner(run.get("tags") or [])
            if owner is not None:
                owners[run["id"]], names[run["id"]] = owner, run.get("name", "")
        if not owners:
            return ReconcileResult()
        frontier = list(owners)
        for _ in range(_MAX_DEPTH):  # active child flow runs (subflows), marked or not
            new: list[str] = []
            for parent in frontier:
                for child in api.active_children(parent):
                    if child["id"] not in owners:
                        owners[child["id"]], names[child["id"]] = owners[parent], child.get("name", "")
                        new.append(child["id"])
            if not new:
                break
            frontier = new
        crashed: list[CrashedRun] = []
        for ids in _chunks(list(owners)):
            for task in api.active_task_runs(ids):
                owner = owners[task["flow_run_id"]]
                api.crash("task", task["id"], crash_message(owner))
                crashed.append(CrashedRun("task", task["id"], task.get("name", ""), owner.pid))
        for run_id, owner in owners.items():
            api.crash("flow", run_id, crash_message(owner))
            crashed.append(CrashedRun("flow", run_id, names[run_id], owner.pid))
        return ReconcileResult(tuple(crashed))


def reconcile_quietly(api_url: str, warn: Callable[[str], None], note: Callable[[str], None] | None = None,
                      *, timeout_s: float = 5.0) -> ReconcileResult | None:
    """:func:`reconcile` that never fails its caller: any error becomes one ``warn`` line."""
    try:
        result = reconcile(api_url, timeout_s=timeout_s)
    except Exception as exc:  # noqa: BLE001 - must never make a command fail
        warn(f"reconciling runs of gone noa processes skipped: {' '.join(str(exc).split())[:200]}")
        return None
    if result.crashed and note is not None:
        note(f"reconciled: {result.summary()}")
    return result


class PeriodicReconciler:
    """Runs :func:`reconcile_quietly` every ``interval_s`` on a daemon thread until stopped.

    A warning repeated round after round (Prefect down) is shown once until it changes."""

    def __init__(self, api_url: str, warn: Callable[[str], None], note: Callable[[str], None] | None = None,
                 interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.api_url, self.warn, self.note, self.interval_s = api_url, warn, note, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="noa-reconcile", daemon=True)
        self.rounds = 0
        self._last_warning: str | None = None

    def _warn_once(self, line: str) -> None:
        if line != self._last_warning:
            self._last_warning = line
            self.warn(line)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            if reconcile_quietly(self.api_url, self._warn_once, self.note) is not None:
                self._last_warning = None
            self.rounds += 1

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def interval_from_env() -> float:
    """``NOA_RECONCILE_INTERVAL_S`` (seconds, > 0), else 30."""
    raw = os.environ.get("NOA_RECONCILE_INTERVAL_S")
    try:
        value = float(raw) if raw else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S
    return value if value > 0 else DEFAULT_INTERVAL_S


__all__ = ["ACTIVE_STATES", "CrashedRun", "PeriodicReconciler", "ReconcileError", "ReconcileResult", "crash_message",
           "interval_from_env", "reconcile", "reconcile_quietly"]
