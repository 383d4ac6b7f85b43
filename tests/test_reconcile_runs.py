"""No run left Running: runs of a gone ``noa`` process are marked Crashed, all others are left alone.

Real parts: the session's Prefect server, real processes (their pids, their /proc start times,
real SIGKILL), the real ``noa`` command as a subprocess.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from noa_core.orchestration.owner import (
    IN_PROCESS_TAG,
    OwnerMark,
    OwnerStatus,
    process_start_ticks,
)
from noa_core.orchestration.reconcile import (
    PeriodicReconciler,
    reconcile,
    reconcile_quietly,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "examples" / "hello-service"
KILL_IN = "validate-in-sandbox"  # the code_drop task the killed `noa drop` is in when it is killed


# ---------------------------------------------------------------- helpers (Prefect REST API)

def _post(api: str, path: str, body: dict) -> dict | list:
    for delay in (0.2, 0.5, 1.0, 2.0, None):  # the session's SQLite server answers 503 while it is busy
        r = httpx.post(f"{api}{path}", json=body, timeout=30)
        if r.status_code not in (429, 503) or delay is None:
            break
        time.sleep(delay)
    assert r.status_code < 400, (path, r.status_code, r.text[:300])
    return r.json()


def _flow_id(api: str) -> str:
    return _post(api, "/flows/", {"name": "noa-reconcile-test"})["id"]


def _flow_run(api: str, tags: list[str], *, parent_task: str | None = None, state: str = "RUNNING",
              deployment_id: str | None = None) -> str:
    body: dict = {"flow_id": _flow_id(api), "name": f"fr-{uuid.uuid4().hex[:8]}", "tags": tags,
                  "state": {"type": state, "name": state.title()}}
    if parent_task:
        body["parent_task_run_id"] = parent_task
    if deployment_id:
        body["deployment_id"] = deployment_id
    return _post(api, "/flow_runs/", body)["id"]


def _task_run(api: str, flow_run: str, state: str = "RUNNING") -> str:
    key = uuid.uuid4().hex[:8]
    return _post(api, "/task_runs/", {"flow_run_id": flow_run, "task_key": f"t-{key}", "dynamic_key": "0",
                                      "name": f"t-{key}", "state": {"type": state, "name": state.title()}})["id"]


def _state(api: str, kind: str, run_id: str) -> dict:
    for delay in (0.2, 0.5, 1.0, 2.0, None):
        r = httpx.get(f"{api}/{kind}_runs/{run_id}", timeout=30)
        if r.status_code not in (429, 503) or delay is None:
            break
        time.sleep(delay)
    r.raise_for_status()
    return r.json()["state"]


def _dead_mark() -> OwnerMark:
    """The mark of a real process that ran on this host and has exited."""
    proc = subprocess.Popen(["sleep", "30"])
    ticks = process_start_ticks(proc.pid)
    assert ticks is not None
    proc.kill()
    proc.wait()
    mark = replace(OwnerMark.current(), pid=proc.pid, start=ticks)
    assert mark.status() is OwnerStatus.GONE
    return mark


@pytest.fixture()
def live_process():
    proc = subprocess.Popen(["sleep", "120"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- owner marks

def test_owner_mark_round_trips_and_sees_this_process_alive() -> None:
    mark = OwnerMark.current()
    assert mark.pid == os.getpid() and mark.start > 0
    assert OwnerMark.parse(mark.tag) == mark
    assert mark.status() is OwnerStatus.ALIVE
    assert OwnerMark.parse("noa-owner:bad") is None and OwnerMark.parse("other") is None


def test_a_reused_pid_is_not_the_owner(live_process: subprocess.Popen) -> None:
    ticks = process_start_ticks(live_process.pid)
    assert ticks is not None
    here = OwnerMark.current()
    live = replace(here, pid=live_process.pid, start=ticks)
    assert live.status() is OwnerStatus.ALIVE
    assert replace(live, start=ticks + 1).status() is OwnerStatus.GONE  # the pid, reused by another process
    assert replace(live, boot="00000000").status() is OwnerStatus.GONE  # a mark from before a reboot
    assert replace(live, host="another-host").status() is OwnerStatus.ELSEWHERE
    assert replace(live, machine="0ther-id").status() is OwnerStatus.ELSEWHERE  # same host name, other machine


# ---------------------------------------------------------------- reconcile against the real server

def test_runs_of_a_gone_owner_are_crashed_with_its_pid(prefect_api_url: str) -> None:
    api = prefect_api_url
    mark = _dead_mark()
    tags = [IN_PROCESS_TAG, mark.tag]
    parent = _flow_run(api, tags)
    running_task = _task_run(api, parent)
    pending_task = _task_run(api, parent, state="PENDING")
    done_task = _task_run(api, parent, state="COMPLETED")
    sub_task = _task_run(api, parent)  # the task run a subflow hangs from
    marked_child = _flow_run(api, tags, parent_task=sub_task)
    unmarked_child = _flow_run(api, [], parent_task=_task_run(api, marked_child), state="PENDING")
    child_task = _task_run(api, unmarked_child)

    result = reconcile(api)

    for kind, run_id in [("flow", parent), ("flow", marked_child), ("flow", unmarked_child), ("task", running_task),
                         ("task", pending_task), ("task", sub_task), ("task", child_task)]:
        state = _state(api, kind, run_id)
        assert state["type"] == "CRASHED", (kind, run_id, state)
        assert f"pid {mark.pid}" in state["message"]
    assert _state(api, "task", done_task)["type"] == "COMPLETED"
    assert {parent, marked_child, unmarked_child} <= {r.id for r in result.flow_runs}
    assert f"pid {mark.pid}" in result.summary()
    assert all(r.id not in {parent} for r in reconcile(api).crashed)  # nothing left to do for them


def test_runs_of_live_foreign_or_unmarked_owners_and_worker_runs_are_left_alone(
        prefect_api_url: str, live_process: subprocess.Popen) -> None:
    api = prefect_api_url
    here = OwnerMark.current()
    live = replace(here, pid=live_process.pid, start=process_start_ticks(live_process.pid) or 0)
    dead = _dead_mark()
    live_run = _flow_run(api, [IN_PROCESS_TAG, live.tag])
    live_task = _task_run(api, live_run)
    own_run = _flow_run(api, [IN_PROCESS_TAG, here.tag])
    foreign_run = _flow_run(api, [IN_PROCESS_TAG, replace(dead, host="another-host").tag])
    unmarked_run = _flow_run(api, [])
    flow_id = _flow_id(api)
    deployment = _post(api, "/deployments/", {"name": f"d-{uuid.uuid4().hex[:6]}", "flow_id": flow_id})["id"]
    worker_run = _flow_run(api, [IN_PROCESS_TAG, dead.tag], deployment_id=deployment)

    crashed = {r.id for r in reconcile(api).crashed}

    for kind, run_id in [("flow", live_run), ("task", live_task), ("flow", own_run), ("flow", foreign_run),
                         ("flow", unmarked_run), ("flow", worker_run)]:
        assert _state(api, kind, run_id)["type"] == "RUNNING", (kind, run_id)
        assert run_id not in crashed


def test_reconcile_quietly_turns_any_error_into_one_warning() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    warnings: list[str] = []
    assert reconcile_quietly(f"http://127.0.0.1:{port}/api", warnings.append, timeout_s=2) is None
    assert len(warnings) == 1 and "reconciling" in warnings[0]


def test_periodic_reconciler_crashes_runs_of_a_gone_owner_within_its_interval(prefect_api_url: str) -> None:
    api = prefect_api_url
    warnings: list[str] = []
    with PeriodicReconciler(api, warnings.append, interval_s=0.5) as periodic:
        run = _flow_run(api, [IN_PROCESS_TAG, _dead_mark().tag])
        deadline = time.monotonic() + 15
        while _state(api, "flow", run)["type"] != "CRASHED":
            assert time.monotonic() < deadline, "not reconciled within 15 s"
            time.sleep(0.2)
    assert periodic.rounds >= 1 and not warnings


# ---------------------------------------------------------------- a real `noa drop`, killed

def _env(home: Path, api: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NOA_"))}
    env.update(PREFECT_API_URL=api, NOA_HOME=str(home), PREFECT_LOGGING_LEVEL="WARNING",
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def _runs_of(api: str, pid: int, flow: str | None = None) -> list[dict]:
    """The flow runs (of ``flow``) whose owner mark names ``pid`` on this host."""
    here = OwnerMark.current()
    prefix = f"noa-owner:{here.host}:{here.machine}:{pid}:"
    body: dict = {"flow_runs": {"tags": {"all_": [IN_PROCESS_TAG]}}, "limit": 200, "sort": "START_TIME_DESC"}
    if flow:
        body["flows"] = {"name": {"any_": [flow]}}
    return [r for r in _post(api, "/flow_runs/filter", body) if any(t.startswith(prefix) for t in r["tags"])]


def _task_runs(api: str, flow_run_ids: list[str]) -> list[dict]:
    return _post(api, "/task_runs/filter", {"task_runs": {"flow_run_id": {"any_": flow_run_ids}}, "limit": 200})


def test_a_killed_noa_drop_leaves_crashed_runs_after_the_next_noa_command(prefect_api_url: str, tmp_path: Path) -> None:
    api = prefect_api_url
    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, "-m", "noa_core.cli", "drop", str(EXAMPLE), "--no-ai"],
                            cwd=tmp_path, env=_env(home, api), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:  # kill it while it validates: a task that runs the project's tests, seconds long
            assert proc.poll() is None, f"noa drop ended before it could be killed: {proc.stderr.read()[-800:]!r}"
            assert time.monotonic() < deadline, "no Running code_drop run with a Running validation within 120 s"
            drop = [r for r in _runs_of(api, proc.pid, "code_drop") if r["state_type"] == "RUNNING"]
            running_tasks = [t for t in _task_runs(api, [r["id"] for r in drop])
                             if t["state_type"] == "RUNNING" and t["name"].startswith(KILL_IN)]
            if drop and running_tasks:
                break
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    time.sleep(1.0)  # let the server record the events the process sent before it died
    runs = _runs_of(api, proc.pid)
    active_before = [r for r in runs if r["state_type"] in ("RUNNING", "PENDING")]
    assert any(r["state_type"] == "RUNNING" for r in active_before)  # what a user saw in the UI before this work
    active_tasks = [t for t in _task_runs(api, [r["id"] for r in runs]) if t["state_type"] in ("RUNNING", "PENDING")]
    assert any(t["name"].startswith(KILL_IN) for t in active_tasks)

    # the next `noa` command that talks to Prefect: an invalid source fails fast, after connecting
    nxt = subprocess.run([sys.executable, "-m", "noa_core.cli", "drop", str(tmp_path / "no-such-dir"), "--no-ai"],
                         cwd=tmp_path, env=_env(home, api), capture_output=True, text=True, timeout=300, check=False)
    assert "reconciled:" in nxt.stderr and f"pid {proc.pid}" in nxt.stderr, nxt.stderr[-800:]
    print(f"killed pid {proc.pid}: {len(active_before)} active flow run(s), {len(active_tasks)} active task run(s); "
          f"next command exit {nxt.returncode}: {nxt.stderr.strip().splitlines()[:3]}")

    for r in active_before:
        state = _state(api, "flow", r["id"])
        assert state["type"] == "CRASHED", (r["name"], state)
        assert f"pid {proc.pid}" in state["message"]
    for t in active_tasks:
        state = _state(api, "task", t["id"])
        assert state["type"] == "CRASHED", (t["name"], state)
        assert f"pid {proc.pid}" in state["message"]
    assert not [r for r in _runs_of(api, proc.pid) if r["state_type"] in ("RUNNING", "PENDING")]


# ---------------------------------------------------------------- long-running faces reconcile on their own

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Stderr:
    """The lines a process writes on stderr, read on a thread while it runs."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=lambda: self.lines.extend(iter(proc.stderr.readline, "")), daemon=True)
        self._thread.start()

    def text(self) -> str:
        return "".join(self.lines)


def _crashed_while_up(api: str, proc: subprocess.Popen, err: _Stderr, ready: Callable[[], bool]) -> None:
    """Wait for ``ready()`` (start-up reconciliation done), leave a run of a gone owner, and wait until
    the running ``proc`` marks it Crashed on its own."""
    deadline = time.monotonic() + 90
    while not ready():
        assert proc.poll() is None, err.text()[-800:]
        assert time.monotonic() < deadline, "not up in time"
        time.sleep(0.3)
    mark = _dead_mark()
    run = _flow_run(api, [IN_PROCESS_TAG, mark.tag])
    deadline = time.monotonic() + 20
    while (state := _state(api, "flow", run))["type"] != "CRASHED":
        assert proc.poll() is None, err.text()[-800:]
        assert time.monotonic() < deadline, "not reconciled within 20 s at a 1 s interval"
        time.sleep(0.3)
    assert f"pid {mark.pid}" in state["message"]


def _stop(proc: subprocess.Popen, err: _Stderr) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    err._thread.join(10)
    return err.text()


def test_noa_server_reconciles_periodically(prefect_api_url: str, tmp_path: Path) -> None:
    port = _free_port()
    env = _env(tmp_path / "home", prefect_api_url) | {"NOA_RECONCILE_INTERVAL_S": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "noa_core.cli", "server", "--no-watch", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = _Stderr(proc)

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        _crashed_while_up(prefect_api_url, proc, err, ready)
    finally:
        text = _stop(proc, err)
    assert "reconciled:" in text


def test_noa_watch_reconciles_periodically(prefect_api_url: str, tmp_path: Path) -> None:
    env = _env(tmp_path / "home", prefect_api_url) | {"NOA_RECONCILE_INTERVAL_S": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "noa_core.cli", "watch", "--no-ai"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = _Stderr(proc)
    try:
        _crashed_while_up(prefect_api_url, proc, err, lambda: any(line.startswith("watching") for line in err.lines))
    finally:
        text = _stop(proc, err)
    assert "reconciled:" in text
