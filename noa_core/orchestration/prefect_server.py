"""The embedded Prefect server: started and reused under ``NOA_HOME/prefect``.

NOA talks to Prefect through an API URL. With the embedded default, the first ``noa``
command that needs Prefect starts ``prefect server start`` in the background with its
SQLite database under ``NOA_HOME/prefect`` and records its pid and port in
``server.json``; later commands find it there and reuse it, so run history persists.
If ``PREFECT_API_URL`` is already set (a server at scale, or the test harness), NOA uses
that and starts nothing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from noa_core.errors import NoaError


class PrefectServerError(NoaError):
    """The embedded Prefect server could not be started or reached."""


@dataclass(frozen=True)
class ServerInfo:
    api_url: str
    ui_url: str
    pid: int | None
    started_now: bool


def _healthy(api_url: str, timeout: float = 1.0) -> bool:
    try:
        r = httpx.get(f"{api_url}/health", timeout=timeout)
        return r.status_code == 200
    except httpx.HTTPError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_prefect_server(pid: int) -> bool:
    """``pid`` is alive and is a ``prefect server`` (not another process that got its number)."""
    if not _pid_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid
    return b"prefect" in b" ".join(argv) and b"server" in argv


def server_env(prefect_home: Path, port: int) -> dict[str, str]:
    """Environment for the server process (and for clients talking to it)."""
    api = f"http://127.0.0.1:{port}/api"
    return {
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": api,
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
    }


class EmbeddedPrefectServer:
    """Start, find, and stop the Prefect server that belongs to one NOA_HOME."""

    def __init__(self, prefect_home: Path, preferred_port: int = 4200) -> None:
        self.home = prefect_home
        self.preferred_port = preferred_port
        self.state_file = prefect_home / "server.json"
        self.log_file = prefect_home / "server.log"

    def _read_state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def running(self, busy_wait_s: float = 30.0) -> ServerInfo | None:
        """The server this home recorded, if its process is alive and answers.

        A live server that is slow to answer (a loaded machine, a long migration) is waited
        for up to ``busy_wait_s``, never replaced: a second server on the same SQLite
        database would split the runs between two APIs. Still silent after that: an error."""
        state = self._read_state()
        if not state:
            return None
        pid, port = state.get("pid"), state.get("port")
        if not isinstance(pid, int) or not isinstance(port, int) or not _is_prefect_server(pid):
            return None
        api = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + busy_wait_s
        while not _healthy(api, timeout=3.0):
            if not _is_prefect_server(pid):
                return None
            if time.monotonic() > deadline:
                raise PrefectServerError(f"the Prefect server of this NOA_HOME (pid {pid}, port {port}) is running "
                                         f"but has not answered for {busy_wait_s:.0f} s (log: {self.log_file})")
            time.sleep(0.5)
        return ServerInfo(api, f"http://127.0.0.1:{port}/", pid, False)

    def _choose_port(self) -> int:
        for port in range(self.preferred_port, self.preferred_port + 50):
            if _port_free(port):
                return port
        raise PrefectServerError(f"no free port in {self.preferred_port}-{self.preferred_port + 49}")

    def ensure(self, timeout_s: float = 90.0) -> ServerInfo:
        """Return the running server for this home, starting it if needed."""
        found = self.running(busy_wait_s=min(30.0, timeout_s))
        if found:
            return found
        self.home.mkdir(parents=True, exist_ok=True)
        port = self._choose_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(server_env(self.home, port))
        log = open(self.log_file, "ab")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                 "--port", str(port), "--analytics-off"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True, cwd=self.home,
            )
        finally:
            log.close()
        self.state_file.write_text(json.dumps({"pid": proc.pid, "port": port}))
        api = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = self.log_file.read_text(errors="replace")[-400:].strip().splitlines()
                raise PrefectServerError(
                    f"Prefect server exited with code {proc.returncode}: {tail[-1] if tail else 'no output'}"
                    f" (log: {self.log_file})")
            if _healthy(api):
                return ServerInfo(api, f"http://127.0.0.1:{port}/", proc.pid, True)
            time.sleep(0.25)
        raise PrefectServerError(f"Prefect server did not answer within {timeout_s:.0f} s (log: {self.log_file})")

    def stop(self, timeout_s: float = 15.0) -> bool:
        state = self._read_state()
        if not state or not isinstance(state.get("pid"), int) or not _pid_alive(state["pid"]):
            self.state_file.unlink(missing_ok=True)
            return False
        pid = state["pid"]
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _pid_alive(pid):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.1)
        if _pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
        self.state_file.unlink(missing_ok=True)
        return True
