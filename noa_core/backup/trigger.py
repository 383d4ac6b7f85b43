"""Asynchronous backup after a write: ``schedule_backup(settings)``.

Chosen mechanism: a **detached subprocess** (``python -m noa_core.backup.trigger``, own
session, stdin closed, output to ``NOA_HOME/backups/trigger/runner.log``), not a Prefect
deployment run: it needs no running Prefect server or worker, costs the writer about
one ``fork+exec`` (a few ms), and survives the writer's exit. Scheduled backups and
cleanup are Prefect deployments instead (see flows/backup.py).

Bursts of writes coalesce: every call touches a ``dirty`` flag; one runner at a time
(``flock`` on ``runner.lock``) waits ``debounce_s``, clears the flag, backs up, and goes
round again if writes arrived meanwhile. The outcome of each run is in ``last.json``.
The runner inherits the caller's environment (``NOA_BACKUP_PASSWORD``,
``NOA_BACKUP_REPO``, cloud credentials); nothing secret is passed on the command line.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from noa_core.config import NoaSettings


@dataclass(frozen=True)
class TriggerResult:
    status: str            # "started" | "coalesced"
    pid: int | None
    log: str


def _state(settings: NoaSettings) -> Path:
    d = settings.layout().backups / "trigger"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None


def schedule_backup(settings: NoaSettings, *, source: Path | None = None, repo: str | None = None,
                    debounce_s: float = 2.0) -> TriggerResult:
    """Ask for a backup soon, without waiting for it. Safe to call after every write."""
    state = _state(settings)
    (state / "dirty").touch()
    log = state / "runner.log"
    fd = _try_lock(state / "runner.lock")
    if fd is None:
        pid = _read_pid(state)
        return TriggerResult("coalesced", pid, str(log))
    # nobody runs: hand our lock to a detached runner (flock belongs to the open file, which it inherits)
    cmd = [sys.executable, "-m", "noa_core.backup.trigger", "--home", str(settings.home.resolve()),
           "--debounce", str(debounce_s), "--lock-fd", str(fd)]
    if source is not None:
        cmd += ["--source", str(Path(source).resolve())]
    if repo:
        cmd += ["--repo", repo]
    env = {**os.environ, "PYTHONPATH": _pythonpath()}
    try:
        pid = _spawn_detached(cmd, env, log, settings.layout().root, fd)
    finally:
        os.close(fd)
    return TriggerResult("started", pid, str(log))


def _spawn_detached(cmd: list[str], env: dict[str, str], log: Path, cwd: Path, keep_fd: int) -> int:
    """Double fork + setsid: the runner is nobody's child here (no zombie), its own session."""
    os.set_inheritable(keep_fd, True)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child, replaced by exec
        try:
            os.close(r)
            os.setsid()
            grandchild = os.fork()
            if grandchild:
                os.write(w, str(grandchild).encode())
                os._exit(0)
            os.close(w)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.chdir(cwd)
            os.execve(sys.executable, cmd, env)
        finally:
            os._exit(127)
    os.close(w)
    os.waitpid(pid, 0)
    try:
        return int(os.read(r, 32) or b"0")
    finally:
        os.close(r)


def after_write(settings: NoaSettings) -> TriggerResult | None:
    """The write-flow hook: schedule a backup when ``NOA_BACKUP_ON_WRITE=1`` (off by default, so
    tests and one-off commands do not leave background processes behind)."""
    if os.environ.get("NOA_BACKUP_ON_WRITE", "0").lower() not in ("1", "true", "yes", "on"):
        return None
    return schedule_backup(settings, repo=os.environ.get("NOA_BACKUP_REPO") or None)


def _pythonpath() -> str:
    here = str(Path(__file__).resolve().parents[2])
    old = os.environ.get("PYTHONPATH")
    return here if not old else f"{here}{os.pathsep}{old}"


def _read_pid(state: Path) -> int | None:
    try:
        return int((state / "runner.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def wait_idle(settings: NoaSettings, timeout_s: float = 120.0) -> dict | None:
    """Block until no runner holds the lock and no write is pending; return ``last.json``."""
    state = _state(settings)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fd = _try_lock(state / "runner.lock")
        if fd is not None:
            os.close(fd)
            if not (state / "dirty").exists():
                try:
                    return json.loads((state / "last.json").read_text())
                except (OSError, ValueError):
                    return None
        time.sleep(0.1)
    raise TimeoutError("the asynchronous backup did not finish in time")


def run_runner(settings: NoaSettings, source: Path | None, repo: str | None, debounce_s: float,
               lock_fd: int | None = None) -> int:
    from noa_core.backup.service import parse_repo, run_backup, with_env_password

    state = _state(settings)
    fd = lock_fd if lock_fd is not None else _try_lock(state / "runner.lock")
    if fd is None:
        return 0  # another runner owns it; our dirty flag is already set
    (state / "runner.pid").write_text(str(os.getpid()))
    runs = 0
    try:
        while True:
            if not (state / "dirty").exists():
                break
            time.sleep(debounce_s)
            (state / "dirty").unlink(missing_ok=True)
            started = time.time()
            try:
                cfg = with_env_password(parse_repo(repo, settings))
                doc = run_backup(settings, cfg, source)
                last = {"status": "ok", "snapshot": doc["snapshot"]["id"], "files": doc["files"],
                        "bytes_stored": doc["bytes_stored"], "repository": doc["repository"]}
            except Exception as exc:  # noqa: BLE001 - reported in last.json and the log
                last = {"status": "error", "error": " ".join(str(exc).split())[:500]}
            last.update(started=started, finished=time.time())
            tmp = state / "last.json.tmp"
            tmp.write_text(json.dumps(last))
            os.replace(tmp, state / "last.json")
            print(json.dumps(last), flush=True)
            runs += 1
    finally:
        (state / "runner.pid").unlink(missing_ok=True)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    # a write between our last check and the unlock: hand over to a new runner
    if (state / "dirty").exists():
        schedule_backup(settings, source=source, repo=repo, debounce_s=debounce_s)
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m noa_core.backup.trigger")
    ap.add_argument("--home", required=True)
    ap.add_argument("--source")
    ap.add_argument("--repo")
    ap.add_argument("--debounce", type=float, default=2.0)
    ap.add_argument("--lock-fd", type=int, help="an inherited descriptor that already holds runner.lock")
    a = ap.parse_args(argv)
    settings = NoaSettings().model_copy(update={"home": Path(a.home)})
    return run_runner(settings, Path(a.source) if a.source else None, a.repo, a.debounce, a.lock_fd)


if __name__ == "__main__":
    sys.exit(main())
