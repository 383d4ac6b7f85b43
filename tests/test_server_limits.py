"""Body-size limit: 413 from Content-Length before any byte is read, and while streaming a chunked
body as soon as the limit is passed (the rest is never read); the webhook path has its own limit."""

from __future__ import annotations

import asyncio
import socket

import pytest

from noa_core.server.app import create_app
from noa_core.server.middleware import BodySizeLimit
from tests.server_helpers import bearer, live_server, settings_for, tokens

LIMIT = 64 * 1024


@pytest.fixture()
def server(tmp_path):
    app = create_app(settings_for(tmp_path), max_body_bytes=LIMIT, record_change=None, schedule_backup=None,
                     prefect_events=False)
    toks = tokens(app)
    with live_server(app) as base:
        yield app, base, toks


def _raw(base: str, head: bytes, chunks=(), *, read_timeout: float = 10.0) -> tuple[bytes, int]:
    """Send ``head`` then ``chunks`` until the server answers or stops reading; return (answer, bytes sent)."""
    host, port = base.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=read_timeout) as s:
        s.sendall(head)
        s.setblocking(False)
        answer = b""
        for chunk in chunks:
            try:
                answer += s.recv(65536)
            except BlockingIOError:
                pass
            except ConnectionError:
                break
            if answer:
                break
            try:
                s.sendall(chunk)
                sent += len(chunk)
            except (BlockingIOError, ConnectionError):
                break
        s.settimeout(read_timeout)
        s.setblocking(True)
        try:
            while True:  # the 413 closes the connection
                data = s.recv(65536)
                if not data:
                    break
                answer += data
        except (ConnectionError, TimeoutError):
            pass
    return answer, sent


def test_declared_oversized_body_is_refused_before_reading(server):
    _, base, toks = server
    head = (b"POST /v1/projects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + toks["write"].encode() + b"\r\nContent-Length: 10000000000\r\n\r\n")
    answer, _ = _raw(base, head)  # no body byte is ever sent: the answer comes from the header alone
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than 65536 bytes" in answer


def test_chunked_body_is_cut_off_at_the_limit(server):
    app, base, toks = server
    head = (b"POST /v1/projects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + toks["write"].encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"x" * 16384
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    total = 64 * 1024 * 1024  # 64 MiB offered
    answer, sent = _raw(base, head, [chunk] * (total // len(piece)))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 16 * 1024 * 1024, f"the server kept reading: {sent} bytes accepted"
    assert app.state.noa.registry.list_projects() == []


def test_middleware_stops_calling_receive_past_the_limit():
    """In-process proof: an endless body; the middleware reads just past the limit, then answers 413."""
    calls = {"receive": 0}
    sent: list[dict] = []

    async def endless_receive():
        calls["receive"] += 1
        return {"type": "http.request", "body": b"y" * 1000, "more_body": True}

    async def app(scope, receive, send):  # reads the whole body, as a JSON endpoint would
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RuntimeError("client went away")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read it all"})

    async def send(message):
        sent.append(message)

    asyncio.run(BodySizeLimit(app, max_bytes=10_000)({"type": "http", "path": "/v1/x", "headers": []},
                                                     endless_receive, send))
    assert sent[0]["status"] == 413
    assert calls["receive"] == 11  # 11 x 1000 bytes: just past 10 000, never more
    assert b"read it all" not in b"".join(m.get("body", b"") for m in sent)


def test_body_under_the_limit_passes(server):
    import httpx

    _, base, toks = server
    r = httpx.post(base + "/v1/projects", headers=bearer(toks["write"]), json={"name": "small"})
    assert r.status_code == 201
    r = httpx.post(base + "/v1/projects", headers=bearer(toks["write"]),
                   content=b'{"name": "' + b"a" * (LIMIT + 10) + b'"}')
    assert r.status_code == 413
    metrics = httpx.get(base + "/metrics").text
    assert "noa_body_too_large_total 1.0" in metrics
