"""Running analysis tools as child processes: time limits, a scratch cwd, a small env.

Tools run with the current interpreter in isolated mode (``-I``: no PYTHONPATH, no
user site, no script directory on sys.path), in a fresh temporary working directory
(so any cache they write lands there, never in the received tree), and are killed
with their whole process group when the time limit passes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence

_KEEP_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
             "REQUESTS_CA_BUNDLE", "PIP_CERT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
             "PIP_CONFIG_FILE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy",
             "https_proxy", "no_proxy", "XDG_CACHE_HOME")


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int | None  # None: killed at the time limit
    stdout: str
    stderr: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def stderr_tail(self, lines: int = 3) -> str:
        tail = [ln for ln in self.stderr.strip().splitlines() if ln.strip()][-lines:]
        return " | ".join(ln.strip()[:200] for ln in tail)


def tool_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _KEEP_ENV}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def python_argv(*args: str) -> list[str]:
    return [sys.executable, "-I", *args]


@dataclass
class Running:
    """A started tool whose output goes to files in its scratch directory."""

    proc: subprocess.Popen[bytes]
    argv: tuple[str, ...]
    out_path: Path
    err_path: Path
    started: float


_OUTPUT_LIMIT = 64 * 1024 * 1024


def start(argv: Sequence[str], cwd: Path, tag: str = "tool") -> Running:
    """Start a tool; stdout/stderr go to files (no pipe can fill up and stall it)."""
    out_path, err_path = cwd / f".{tag}.stdout", cwd / f".{tag}.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=tool_env(), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, start_new_session=True)
    return Running(proc, tuple(argv), out_path, err_path, time.monotonic())


def finish(running: Running, deadline: float) -> Completed:
    """Wait until ``deadline`` (a :func:`time.monotonic` value), else kill the process group."""
    proc = running.proc
    try:
        code: int | None = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.wait()
        code = None
    return Completed(running.argv, code, _read(running.out_path), _read(running.err_path),
                     time.monotonic() - running.started)


def _read(path: Path) -> str:
    with open(path, "rb") as handle:
        return handle.read(_OUTPUT_LIMIT).decode("utf-8", errors="replace")


def run(argv: Sequence[str], *, timeout: float, cwd: Path | None = None) -> Completed:
    """Run one tool to completion or ``timeout``; in a new temporary directory by default."""
    if cwd is None:
        with tempfile.TemporaryDirectory(prefix="noa-tool-") as tmp:
            return run(argv, timeout=timeout, cwd=Path(tmp))
    running = start(argv, cwd)
    return finish(running, running.started + timeout)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def chunks_by_size(items: Sequence[tuple[str, int]], parts: int) -> list[list[str]]:
    """Split (name, size) items into ``parts`` lists of about equal total size."""
    parts = max(1, parts)
    buckets: list[list[str]] = [[] for _ in range(parts)]
    totals = [0] * parts
    for name, size in sorted(items, key=lambda kv: -kv[1]):
        i = totals.index(min(totals))
        buckets[i].append(name)
        totals[i] += max(size, 1)
    return [b for b in buckets if b]
