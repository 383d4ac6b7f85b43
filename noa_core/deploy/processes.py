"""Supervised app processes for the local target (used inside the supervisor).

Each instance runs from its own copy of the release tree, with a minimal environment
(``PORT``-style variable set to a free loopback port), stdout+stderr captured to a log
file, resource limits (address space, file size, open files, no core dumps), and - where
bubblewrap works - in fresh user, pid, ipc and uts namespaces with a read-only host
file system, a private ``/tmp`` and ``NOA_HOME`` hidden except the instance's own copy.

The network namespace is *shared* on purpose: the proxy must reach the app on
127.0.0.1, and a private network namespace would have no route from the host's
loopback. The app can therefore open outbound connections; everything else is as
locked down as dropped tests are (see :mod:`noa_core.isolation`).

A process that exits without being asked is restarted with back-off (0.2 s doubling to
5 s) until it has crashed ``max_restarts`` times within ``restart_window_s``; then it is
``crashed``.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from noa_core.deploy.interface import InstanceState, InstanceStatus, Release

MARKER_ENV = "NOA_DEPLOY_INSTANCE"


def _bwrap_ok() -> bool:
    if os.environ.get("NOA_DEPLOY_ISOLATION", "") == "none":
        return False
    try:
        from noa_core.isolation import isolation_backend

        return isolation_backend() == "bwrap" and shutil.which("bwrap") is not None
    except Exception:  # noqa: BLE001 - no isolation backend: rlimits only
        return False


def _limits(memory_bytes: int, file_bytes: int) -> None:  # runs in the child before exec
    for res, val in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_FSIZE, file_bytes),
                     (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NOFILE, 4096)):
        try:
            resource.setrlimit(res, (val, val))
        except (ValueError, OSError):
            pass


@dataclass
class Supervised:
    """One app instance and its restart bookkeeping (mutable; owned by the supervisor)."""

    instance_id: str
    release: Release
    port: int
    workdir: Path
    log_path: Path
    home: Path
    memory_bytes: int = 2 * 1024 * 1024 * 1024
    file_bytes: int = 512 * 1024 * 1024
    max_restarts: int = 3
    restart_window_s: float = 60.0
    proc: subprocess.Popen[bytes] | None = None
    state: InstanceState = "starting"
    restarts: int = 0
    exit_code: int | None = None
    reason: str = ""
    isolation: str = ""
    crash_times: list[float] = field(default_factory=list)
    marker: str = ""  # the program that runs after prlimit's exec (bwrap or the command): checked before killing
    next_start: float = 0.0
    _log: IO[bytes] | None = None

    def argv(self) -> list[str]:
        cmd = list(self.release.command)
        if cmd and cmd[0] in ("python", "python3"):
            cmd[0] = sys.executable
        if not _bwrap_ok():
            self.isolation = "rlimits"
            return cmd
        self.isolation = "bwrap (shared network)"
        wd = str(self.workdir)
        argv = ["bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                "--cap-drop", "ALL", "--ro-bind", "/", "/", "--dev", "/dev",
                "--proc", "/proc", "--tmpfs", "/tmp"]
        hidden = [h for h in ("/root", "/home", "/run", str(self.home)) if os.path.isdir(h)]
        for hide in hidden:
            argv += ["--tmpfs", hide]
        # the interpreter NOA runs under stays visible (read-only) when it lies in a hidden place
        for keep in dict.fromkeys(os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)):
            if any(keep == h or keep.startswith(h.rstrip("/") + "/") for h in hidden + ["/tmp"]):
                argv += ["--ro-bind", keep, keep]
        argv += ["--bind", wd, wd, "--chdir", wd, "--"]
        return argv + cmd

    def env(self) -> dict[str, str]:
        env = {
            "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8", "HOME": "/tmp", "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1", MARKER_ENV: self.instance_id,
        }
        env.update(self.release.env)
        env[self.release.port_env] = str(self.port)
        return env

    def spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self._log is None:
            self._log = open(self.log_path, "ab", buffering=0)
        self._log.write(f"--- noa: start {self.instance_id} on 127.0.0.1:{self.port} "
                        f"(restart {self.restarts}) at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n"
                        .encode())
        argv = self.argv()
        self.marker = argv[0]
        mem, fsz = self.memory_bytes, self.file_bytes
        prlimit = shutil.which("prlimit")
        if prlimit:  # util-linux prlimit sets the limits and execs the command (no preexec_fn in a threaded parent)
            argv = [prlimit, f"--as={mem}", f"--fsize={fsz}", "--core=0", "--nofile=4096", "--", *argv]
        self.proc = subprocess.Popen(
            argv, cwd=self.workdir, env=self.env(), stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=None if prlimit else (lambda: _limits(mem, fsz)),  # noqa: PLW1509 - fallback only
        )
        self.state = "running"
        self.exit_code = None

    def poll(self, now: float) -> None:
        """Notice an exit and restart with back-off; called often by the supervisor."""
        if self.state in ("stopped", "crashed"):
            return
        if self.state == "restarting":
            if now >= self.next_start:
                self.spawn()
            return
        if self.proc is None or self.proc.poll() is None:
            return
        self.exit_code = self.proc.returncode
        self.crash_times = [t for t in self.crash_times if now - t < self.restart_window_s] + [now]
        self.reason = f"exited with code {self.exit_code}"
        if self._log:
            self._log.write(f"--- noa: {self.instance_id} {self.reason}\n".encode())
        if len(self.crash_times) > self.max_restarts:
            self.state = "crashed"
            self.reason += f"; {len(self.crash_times)} exits in {self.restart_window_s:g}s, not restarted"
            return
        self.restarts += 1
        self.state = "restarting"
        self.next_start = now + min(5.0, 0.2 * 2 ** (len(self.crash_times) - 1))

    def status(self) -> InstanceStatus:
        return InstanceStatus(self.state, self.restarts, self.exit_code, self.reason)

    def stop(self, grace_s: float = 10.0) -> None:
        self.state = "stopped"
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=5)
        if self._log:
            self._log.write(f"--- noa: stopped {self.instance_id}\n".encode())
            self._log.close()
            self._log = None
