"""NOA's side of the model process: start it, ask it, notice when it dies or hangs.

One :class:`ModelProcess` is one child (``python -m noa_core.analysis.llm_worker``) with
its model loaded once; requests go one at a time. Every wait has a deadline. When the
child dies the request raises :class:`ModelProcessDied` with the reason
``model process died: signal 11`` (or ``exit code N``); when a deadline passes the child
is killed and :class:`ModelTimedOut` says ``timed out after N s``. The caller decides
what the missing answer means; a later :meth:`ModelProcess.request` starts a new child.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

from noa_core.analysis.llm_protocol import (
    READY_ID,
    ProtocolError,
    Reply,
    Request,
    decode_reply,
    encode,
)
from noa_core.errors import NoaError

TIMEOUT_ENV = "NOA_LLM_TIMEOUT_S"
LOAD_TIMEOUT_ENV = "NOA_LLM_LOAD_TIMEOUT_S"
MEMORY_ENV = "NOA_LLM_MEMORY_MB"


class ModelProcessError(NoaError):
    """The model process could not answer; ``str(exc)`` is the reason for the report."""


class ModelProcessDied(ModelProcessError):
    """``model process died: signal 11`` / ``model process died: exit code 1``."""


class ModelTimedOut(ModelProcessError):
    """``timed out after N s`` (the process was killed)."""


class ModelLoadFailed(ModelProcessError):
    """``model failed: ...``: the child is alive but the model file did not load."""


class ModelRequestFailed(ModelProcessError):
    """One request failed inside a healthy child (bad grammar, bad request)."""


@dataclass(frozen=True)
class WorkerLimits:
    request_timeout: float = 120.0  # seconds per request
    load_timeout: float = 120.0     # seconds from start to "ready"
    memory_mb: int = 4096           # RLIMIT_AS of the child

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerLimits:
        env = os.environ if env is None else env
        default = cls()
        try:
            return cls(float(env.get(TIMEOUT_ENV) or default.request_timeout),
                       float(env.get(LOAD_TIMEOUT_ENV) or default.load_timeout),
                       int(env.get(MEMORY_ENV) or default.memory_mb))
        except ValueError as exc:
            raise ModelProcessError(f"bad model process limit in the environment: {exc}") from None


def seconds_text(seconds: float) -> str:
    return f"{seconds:g}"


def death_reason(returncode: int | None, stderr_tail: str = "") -> str:
    if returncode is None:
        return "model process died"
    if returncode < 0:
        return f"model process died: signal {-returncode}"
    tail = f": {stderr_tail}" if stderr_tail else ""
    return f"model process died: exit code {returncode}{tail}"


def _package_root() -> str:
    import noa_core

    return str(Path(noa_core.__file__).resolve().parents[1])


class ModelProcess:
    """One model process; thread-safe (requests are serialised)."""

    def __init__(self, model_path: Path | None, *, limits: WorkerLimits | None = None, n_ctx: int = 2048,
                 seed: int = 7, python: str | None = None) -> None:
        self.model_path = model_path
        self.limits = limits or WorkerLimits()
        self.n_ctx = n_ctx
        self.seed = seed
        self.python = python or sys.executable
        self.ready_info: dict[str, Any] = {}
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._buffer = b""
        self._next_id = READY_ID + 1
        self._lock = threading.RLock()

    # -- lifecycle ----------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> dict[str, Any]:
        """Start the child (if not running) and wait for its ``ready``; returns its info."""
        with self._lock:
            if self.alive:
                return self.ready_info
            self.close()
            argv = [self.python, "-m", "noa_core.analysis.llm_worker", "--n-ctx", str(self.n_ctx),
                    "--seed", str(self.seed), "--memory-mb", str(self.limits.memory_mb)]
            if self.model_path is not None:
                argv += ["--model", str(self.model_path)]
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH", "")) if p)
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - open for the child's lifetime
            self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                          env=env, cwd=tempfile.gettempdir(), start_new_session=True)
            self._buffer = b""
            self.starts += 1
            reply = self._read_reply(READY_ID, self.limits.load_timeout)
            if not reply.ok:
                self.close()
                raise ModelLoadFailed(reply.error)
            self.ready_info = reply.info
            return self.ready_info

    def close(self) -> None:
        """Stop the child and reap it. It keeps no state worth a graceful exit (freeing the
        model and shutting the interpreter down took longer than a request), so it is
        killed; a child whose parent dies without closing it exits on end of stdin."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                if proc.poll() is None:
                    _kill(proc)
                for pipe in (proc.stdin, proc.stdout):
                    try:
                        if pipe is not None:
                            pipe.close()
                    except OSError:
                        pass
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------

    def request(self, op: str, **fields: Any) -> Reply:
        """Send one request and wait for its reply (starting the child first if needed)."""
        with self._lock:
            self.start()
            try:
                req = Request(id=self._next_id, op=op, **fields)
            except (ProtocolError, TypeError) as exc:
                raise ModelRequestFailed(f"bad request: {exc}") from None
            self._next_id += 1
            assert self._proc is not None and self._proc.stdin is not None
            try:
                self._proc.stdin.write(encode(req))
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError):
                raise self._died() from None
            reply = self._read_reply(req.id, self.limits.request_timeout)
            if not reply.ok:
                raise ModelRequestFailed(reply.error)
            return reply

    def chat(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float = 0.0,
             grammar: str | None = None) -> Reply:
        return self.request("chat", messages=messages, max_tokens=max_tokens, temperature=temperature,
                            grammar=grammar)

    def complete(self, prompt: str, *, max_tokens: int, temperature: float = 0.0) -> Reply:
        return self.request("complete", prompt=prompt, max_tokens=max_tokens, temperature=temperature)

    def info(self) -> dict[str, Any]:
        return self.request("info").info

    # -- internals ----------------------------------------------------------------

    def _read_reply(self, want_id: int, timeout: float) -> Reply:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self._proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                while b"\n" in self._buffer:
                    line, self._buffer = self._buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    try:
                        reply = decode_reply(line)
                    except ValueError:
                        continue  # not a protocol line
                    if reply.id == want_id or reply.id == -1:
                        return reply
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._timed_out(timeout)
                if not sel.select(timeout=left):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise self._died()
                self._buffer += chunk

    def _died(self) -> ModelProcessDied:
        proc = self._proc
        returncode: int | None = None
        if proc is not None:
            try:
                returncode = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _kill(proc)
                returncode = proc.returncode
        reason = death_reason(returncode, self._stderr_tail())
        self.close()
        return ModelProcessDied(reason)

    def _timed_out(self, timeout: float) -> ModelTimedOut:
        if self._proc is not None:
            _kill(self._proc)
        self.close()
        return ModelTimedOut(f"timed out after {seconds_text(timeout)} s")

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 2000))
            lines = [ln for ln in self._stderr.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return " ".join(lines[-1].split())[:200] if lines else ""


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole process group and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
