"""ASGI middleware of the API: the body-size limit and per-request observability.

Both are plain ASGI (no ``BaseHTTPMiddleware``): they add microseconds, not a task per request.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from noa_core.observability.logs import run_context
from noa_core.observability.metrics import NoaMetrics
from noa_core.observability.tracing import Tracing


def _json_response(status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> tuple[Message, Message]:
    body = json.dumps({"detail": detail}).encode()
    start: Message = {"type": "http.response.start", "status": status,
                      "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                  (b"connection", b"close"), *(headers or [])]}
    return start, {"type": "http.response.body", "body": body, "more_body": False}


class BodySizeLimit:
    """413 for a body over the limit: from ``Content-Length`` before anything is read, or, for a
    chunked or lying body, as soon as the bytes received pass the limit (the rest is never read,
    and nothing is buffered here).

    ``limits`` maps a path prefix to its own limit (the GitHub webhook takes up to 25 MB).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, *, limits: Mapping[str, int] | None = None,
                 metrics: NoaMetrics | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limits = dict(limits or {})
        self.metrics = metrics

    def _limit(self, path: str) -> int:
        for prefix, limit in self.limits.items():
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def _refuse(self, send: Send, limit: int) -> None:
        if self.metrics is not None:
            self.metrics.body_refused.inc()
        start, body = _json_response(413, f"request body larger than {limit} bytes")
        await send(start)
        await send(body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope.get("path", ""))
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    start, body = _json_response(400, "malformed Content-Length")
                    await send(start)
                    await send(body)
                    return
                if declared > limit:
                    await self._refuse(send, limit)
                    return
        seen = 0
        over = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    return {"type": "http.disconnect"}  # the app stops reading; we answer 413 below
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the app's answer to a cut-off body is replaced by the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await self._refuse(send, limit)


class RequestObservability:
    """A span, latency histogram, request counter and a run id per request.

    The run id is the caller's ``X-Request-ID`` (if sane) or a new one; it is answered in
    ``X-Request-ID``, set on the span (``noa.run_id``) and on every log line written
    while the request runs. Mutating requests and errors are logged as JSON lines.
    """

    def __init__(self, app: ASGIApp, metrics: NoaMetrics, tracing: Tracing, logger: logging.Logger) -> None:
        self.app = app
        self.metrics = metrics
        self.tracing = tracing
        self.log = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        run_id = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id" and 0 < len(value) <= 64 and value.isascii():
                text = value.decode("ascii")
                if text.replace("-", "").replace("_", "").isalnum():
                    run_id = text
                break
        run_id = run_id or uuid.uuid4().hex
        method = scope["method"]
        status = 500
        rid_header = (b"x-request-id", run_id.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        self.metrics.http_in_flight.inc()
        with run_context(run_id), self.tracing.span(f"HTTP {method}", {"http.request.method": method,
                                                                      "url.path": scope.get("path", "")}) as span:
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                self.metrics.http_in_flight.dec()
                route: Any = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                elapsed = time.perf_counter() - t0
                span.update_name(f"HTTP {method} {template}")
                span.set_attribute("http.route", template)
                span.set_attribute("http.response.status_code", status)
                self.metrics.http_latency.labels(method, template).observe(elapsed)
                self.metrics.http_requests.labels(method, template, str(status)).inc()
                if method not in ("GET", "HEAD", "OPTIONS") or status >= 500:
                    self.log.info("%s %s %s", method, template, status,
                                  extra={"http_method": method, "route": template, "status": status,
                                         "ms": round(elapsed * 1000, 3)})


class AllowHeader:
    """A 405 lists every method of the path in ``Allow`` (Starlette names only the first matching route's)."""

    def __init__(self, app: ASGIApp, routes_of: Any) -> None:
        self.app = app
        self._routes_of = routes_of  # () -> the app's routes (read late: routers are added after the middleware)

    def _allowed(self, path: str) -> bytes:
        methods: set[str] = set()
        for route in self._routes_of():
            regex = getattr(route, "path_regex", None)
            if regex is not None and regex.match(path) and getattr(route, "methods", None):
                methods |= set(route.methods)
        return ", ".join(sorted(methods)).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def fix(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message["headers"] = [*headers, (b"allow", self._allowed(scope.get("path", "")))]
            await send(message)

        await self.app(scope, receive, fix)
