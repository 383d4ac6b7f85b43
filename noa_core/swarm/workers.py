"""Prefect worker processes for the swarm pools (``noa swarm up`` / ``noa swarm down``).

Each worker is its own process (``python -m prefect worker start --pool X --name X-N``),
started in a new session with its output in ``<state dir>/<name>.log``. Their pids are
kept in ``<state dir>/workers.json``; stopping reads that file and signals exactly those
processes - after checking that each pid still runs a Prefect worker of that pool, so a
recycled pid is never signalled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from noa_core.errors import BadInput

__all__ = ["WorkerProcess", "alive_workers", "local_run_gone", "pid_alive", "recorded_workers", "start_workers",
           "stop_workers", "worker_type"]

STATE_FILE = "workers.json"
POOL_NAME_MAX = 63


@dataclass(frozen=True)
class WorkerProcess:
    pool: str
    name: str
    pid: int
    log: str
    started: float
    proc_start: int | None = None  # the process's start time in clock ticks (/proc/<pid>/stat): its identity

    def running(self) -> bool:
        if self.proc_start is not None:
            stat = _stat(self.pid)
            return stat is not None and stat[0] != "Z" and int(stat[19]) == self.proc_start
        return _is_our_worker(self.pid, self.pool, self.name)


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def _is_our_worker(pid: int, pool: str, name: str) -> bool:
    argv = _cmdline(pid)
    if not argv:
        return False
    stat = _stat(pid)
    if stat is None or stat[0] == "Z":
        return False  # gone, or a zombie
    return "worker" in argv and pool in argv and name in argv


def _load(state_dir: Path) -> list[WorkerProcess]:
    path = Path(state_dir) / STATE_FILE
    try:
        doc = json.loads(path.read_text())
        return [WorkerProcess(**w) for w in doc.get("workers", [])]
    except (OSError, ValueError, TypeError):
        return []


def _save(state_dir: Path, workers: Sequence[WorkerProcess]) -> None:
    path = Path(state_dir) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"workers": [asdict(w) for w in workers]}, indent=2))
    os.replace(tmp, path)


def alive_workers(state_dir: Path) -> list[WorkerProcess]:
    return [w for w in _load(state_dir) if w.running()]


def recorded_workers(state_dir: Path) -> dict[str, WorkerProcess]:
    """Every worker ``noa swarm up`` recorded in ``state_dir`` (running or not), by name."""
    return {w.name: w for w in _load(state_dir)}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def local_run_gone(worker_name: str | None, run_pid: str | None, state_dir: Path) -> str | None:
    """Why a flow run handed to one of *our* workers (recorded in ``state_dir``) can no longer
    finish - its process is gone, or its worker died before starting it - else ``None``.
    Runs of workers this host did not start are never judged."""
    if not worker_name:
        return None
    worker = recorded_workers(state_dir).get(worker_name)
    if worker is None:
        return None
    if run_pid and str(run_pid).isdigit():
        if not pid_alive(int(run_pid)):
            return f"flow run process {run_pid} of worker {worker_name} is gone"
        return None
    if not worker.running():
        return f"worker {worker_name} (pid {worker.pid}) is gone"
    return None


def worker_type(pool: str) -> str:
    """The Prefect worker type of a swarm pool: ``docker`` for ``*-docker`` pools, else ``process``."""
    return "docker" if pool.endswith("-docker") else "process"


def start_workers(pools: Sequence[str], per_pool: int, *, state_dir: Path, env: Mapping[str, str] | None = None,
                  query_seconds: float = 2.0, die_with_parent: bool = False) -> list[WorkerProcess]:
    """Have ``per_pool`` workers running for each pool: start the ones missing (workers of an
    earlier ``up`` that still run count; new names go on counting). Returns those started.

    A ``*-docker`` pool gets ``prefect worker --type docker`` workers (prefect-docker), the
    others process workers. ``env`` is added to this process's environment (PREFECT_API_URL must point at the
    server). Workers poll every ``query_seconds`` (Prefect's default is 15 s). With
    ``die_with_parent`` (tests) a worker gets SIGTERM when the thread that started it ends,
    so a killed test run leaves no worker behind; ``noa swarm up``'s workers outlive it.
    """
    if per_pool < 1 or per_pool > 32:
        raise BadInput("--workers must be between 1 and 32")
    for pool in pools:
        if not pool or len(pool) > POOL_NAME_MAX or not all(c.isalnum() or c == "-" for c in pool):
            raise BadInput(f"bad pool name {pool!r}")
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    known = alive_workers(state_dir)
    run_env = dict(os.environ)
    run_env.update(env or {})
    run_env.setdefault("PREFECT_WORKER_QUERY_SECONDS", str(query_seconds))
    run_env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    started: list[WorkerProcess] = []
    for pool in pools:
        used = {w.name for w in known if w.pool == pool}
        n = 0
        for _ in range(max(0, per_pool - len(used))):
            n += 1
            while f"{pool}-{n}" in used:
                n += 1
            name = f"{pool}-{n}"
            used.add(name)
            log = state_dir / f"{name}.log"
            with open(log, "ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--name", name,
                     "--type", worker_type(pool)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=run_env,
                    start_new_session=True, close_fds=True,
                    preexec_fn=_die_with_parent if die_with_parent else None)
            stat = _stat(proc.pid)
            started.append(WorkerProcess(pool=pool, name=name, pid=proc.pid, log=str(log), started=time.time(),
                                         proc_start=int(stat[19]) if stat else None))
    _save(state_dir, [*known, *started])
    return started


def stop_workers(state_dir: Path, *, pools: Sequence[str] | None = None,
                 timeout_s: float = 15.0) -> list[WorkerProcess]:
    """Stop the workers recorded in ``state_dir`` (of ``pools`` only, when given): SIGTERM to
    each worker's process group, SIGKILL after ``timeout_s``. Returns the ones stopped."""
    state_dir = Path(state_dir)
    workers = _load(state_dir)
    chosen = [w for w in workers if pools is None or w.pool in pools]
    targets = [w for w in chosen if w.running()]
    for w in targets:
        try:
            os.killpg(w.pid, signal.SIGTERM)  # its own session: the worker and the flow runs it started
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + timeout_s
    while any(w.running() for w in targets) and time.monotonic() < deadline:
        time.sleep(0.2)
    for w in targets:
        if w.running():
            try:
                os.killpg(w.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    for w in targets:  # reap the ones this process started
        try:
            os.waitpid(w.pid, os.WNOHANG)
        except ChildProcessError:
            pass
    _save(state_dir, [w for w in workers if w not in chosen])
    return targets
