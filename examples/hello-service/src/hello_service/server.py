"""The HTTP face of hello-service (standard library only)."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from hello_service import __version__
from hello_service.greeting import greet


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0

    def bump(self) -> int:
        with self._lock:
            self.requests += 1
            return self.requests


def make_handler(counters: Counters) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = f"hello-service/{__version__}"

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # http.server names the handler do_GET
            counters.bump()
            url = urlparse(self.path)
            if url.path == "/health":
                self._send(200, {"status": "ok", "version": __version__})
            elif url.path == "/hello":
                query = parse_qs(url.query)
                name = query.get("name", [None])[0]
                excited = query.get("excited", ["0"])[0] == "1"
                self._send(200, {"message": greet(name, excited=excited)})
            elif url.path == "/stats":
                self._send(200, {"requests": counters.requests})
            else:
                self._send(404, {"error": "not found"})

        def log_message(self, format: str, *args: object) -> None:  # quiet by default
            pass

    return Handler


def make_server(port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    return ThreadingHTTPServer((host, port), make_handler(Counters()))


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    server = make_server(port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
