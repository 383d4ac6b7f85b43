"""Reaching the deploy supervisor of a NOA_HOME: start it detached when none runs
(``python -m noa_core.deploy.supervisor``), call its API, stop it."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from noa_core.deploy.interface import RouterError
from noa_core.deploy.supervisor_common import SupervisorError, cmdline, deploy_dir, kill_group


@dataclass(frozen=True)
class SupervisorClient:
    """The supervisor of one NOA_HOME, reached over its token-protected local HTTP API."""

    home: Path
    port: int
    token: str
    pid: int

    def call(self, op: str, body: Mapping[str, Any] | None = None, timeout: float = 30.0) -> dict[str, Any]:
        try:
            r = httpx.post(f"http://127.0.0.1:{self.port}/{op}", json=dict(body or {}),
                           headers={"X-Noa-Token": self.token}, timeout=timeout)
        except httpx.HTTPError as exc:
            raise SupervisorError(f"deploy supervisor unreachable: {exc}") from None
        data = r.json() if r.content else {}
        if r.status_code == 409:
            raise RouterError(str(data.get("error")))
        if r.status_code != 200:
            raise SupervisorError(f"deploy supervisor: {op}: {data.get('error', r.status_code)}")
        return data

    def shutdown(self, timeout: float = 20.0) -> None:
        try:
            self.call("shutdown", timeout=5)
        except SupervisorError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and cmdline(self.pid):
            time.sleep(0.05)
        if cmdline(self.pid):
            kill_group(self.pid, f"noa_core.deploy.supervisor --home {Path(self.home).resolve()}")


def read_client(home: Path) -> SupervisorClient | None:
    """The running supervisor of ``home``, or None when none answers."""
    d = deploy_dir(home)
    try:
        info = json.loads((d / "supervisor.json").read_text())
        token = (d / "token").read_text().strip()
    except (OSError, ValueError):
        return None
    c = SupervisorClient(Path(home), int(info["port"]), token, int(info["pid"]))
    try:
        c.call("status", timeout=3)
    except SupervisorError:
        return None
    return c


def ensure_supervisor(home: Path, *, timeout_s: float = 30.0) -> SupervisorClient:
    """The running supervisor of ``home``, started (detached) if there is none."""
    home = Path(home).resolve()
    c = read_client(home)
    if c is not None:
        return c
    d = deploy_dir(home)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "spawn.lock", "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        c = read_client(home)
        if c is not None:
            return c
        (d / "supervisor.json").unlink(missing_ok=True)
        log = open(d / "supervisor.log", "ab")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # the folder holding noa_core
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        proc = subprocess.Popen([sys.executable, "-m", "noa_core.deploy.supervisor", "--home", str(home)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                env=env, cwd=root)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            c = read_client(home)
            if c is not None:
                return c
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    tail = (d / "supervisor.log").read_text(errors="replace")[-500:] if (d / "supervisor.log").exists() else ""
    raise SupervisorError(f"deploy supervisor did not start: {' '.join(tail.split())[-300:]}")


def stop_supervisor(home: Path) -> bool:
    """Stop the supervisor of ``home`` and everything it runs; False if none was running."""
    c = read_client(Path(home).resolve())
    if c is None:
        return False
    c.shutdown()
    return True


__all__ = ["SupervisorClient", "ensure_supervisor", "read_client", "stop_supervisor"]
