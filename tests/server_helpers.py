"""Shared pieces of the server tests: an app on a tmp NOA_HOME, tokens, a webhook receiver, a live uvicorn."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from noa_core.config import NoaSettings
from noa_core.server.orchestrator import RunRef, RunState


def settings_for(tmp_path: Path, **extra: Any) -> NoaSettings:
    return NoaSettings(home=tmp_path / "noa", **extra)


def tokens(app: Any) -> dict[str, str]:
    store = app.state.noa.tokens
    return {scope: store.create(f"t-{scope}", scope)[0] for scope in ("read", "write", "admin")}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def wait(self, n: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.bodies


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    received: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received.append(json.loads(self.rfile.read(length) or b"{}"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook", received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class FakeOrchestrator:
    """Stands in for Prefect where hundreds of generated requests would each create a real flow run
    (schemathesis); the real :class:`PrefectOrchestrator` is tested in test_server_prefect.py."""

    def __init__(self) -> None:
        self.runs: dict[str, RunRef] = {}
        self.cancelled: list[str] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def availability(self) -> dict[str, str]:
        return {k: "ok" for k in ("drop", "merge", "pipeline", "deploy", "rollback", "cicd")}

    async def submit(self, kind: str, parameters: Mapping[str, Any], *, idempotency_key: str,
                     name: str | None = None) -> RunRef:
        import uuid

        run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key))
        ref = RunRef(kind, run_id, name or kind, "SCHEDULED", None)
        self.runs[run_id] = ref
        return ref

    async def status(self, flow_run_id: str) -> RunState | None:
        ref = self.runs.get(flow_run_id)
        if ref is None:
            return None
        return RunState(ref.flow_run_id, ref.name, ref.kind, "SCHEDULED", "Scheduled", None, False, None, None, {})

    async def cancel(self, flow_run_id: str, message: str) -> None:
        self.cancelled.append(flow_run_id)


@contextmanager
def live_server(app: Any, port: int | None = None) -> Iterator[str]:
    """The app on a real uvicorn in a thread (127.0.0.1); stopped on exit."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(20)
