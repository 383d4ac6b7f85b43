"""Helpers for the deploy tests: tiny service variants, a load generator process, cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from noa_core.deploy.loadgen import Hit, read_results

ROOT = Path(__file__).resolve().parents[1]

APP = r'''
import os, sys, time, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
MODE = {mode!r}
DELAY = {delay_ms} / 1000.0
VERSION = {version!r}
count = [0]
codes = {{}}
lock = threading.Lock()
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            return self._send(200, b"ok\n")
        if self.path == "/metrics":  # Prometheus text format, as prometheus-client would write it
            with lock:
                text = "".join('app_requests_total{{code="%d"}} %d\n' % (c, n) for c, n in sorted(codes.items()))
            return self._send(200, ("# TYPE app_requests_total counter\n" + text).encode())
        with lock:
            count[0] += 1
            n = count[0]
        if MODE == "crash" and n > {crash_after}:
            os._exit(3)
        if DELAY:
            time.sleep(DELAY)
        if MODE == "error":
            return self._send(500, b"boom\n")
        self._send(200, ("hello from " + VERSION + "\n").encode())
    def _send(self, code, body):
        if self.path not in ("/health", "/metrics"):
            with lock:
                codes[code] = codes.get(code, 0) + 1
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H)
s.daemon_threads = True
if MODE == "unhealthy":
    sys.exit(2)
s.serve_forever()
'''

MANIFEST = """name: {name}
version: "{version}"
language: python
run:
  command: [python, app.py]
  port_env: PORT
  health:
    path: /health
deploy:
  strategy: canary
  canary_steps: {steps}
  interval_s: {interval}
"""


def make_app(parent: Path, *, version: str, mode: str = "ok", delay_ms: int = 0, crash_after: int = 20,
             name: str = "svc", steps: str = "[5, 25, 50, 100]", interval: float = 1.0) -> Path:
    d = parent / f"{name}-{version}-{mode}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "app.py").write_text(APP.format(mode=mode, delay_ms=delay_ms, version=version, crash_after=crash_after))
    (d / "noa.yaml").write_text(MANIFEST.format(name=name, version=version, steps=steps, interval=interval))
    return d


@contextmanager
def load(url: str, out: Path, rps: float = 100.0, threads: int = 6) -> Iterator[list[Hit]]:
    """Load from a separate process while the block runs; the list fills when it ends."""
    hits: list[Hit] = []
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "noa_core.deploy.loadgen", "--url", url, "--rps", str(rps),
                          "--threads", str(threads), "--out", str(out)], env=env, cwd=ROOT)
    started = out.with_suffix(".started")
    deadline = time.monotonic() + 20
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # some traffic on the stable release before the deploy starts
    try:
        yield hits
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
        hits.extend(read_results(out))


def failed_share(hits: list[Hit]) -> tuple[int, int, float]:
    failed = sum(h.failed for h in hits)
    return failed, len(hits), (failed / len(hits) if hits else 0.0)


def deploy(home: Path, project: Path, env: str = "production", strategy: str | None = None,
           **options: object) -> dict:
    """The deploy task's body (Prefect-free): manifest -> release -> controller."""
    from noa_core.deploy.run import deploy_project

    options.setdefault("tick_s", 0.1)
    return deploy_project(home, project, env, strategy, None, options, log=lambda m: print("  deploy:", m))


def cleanup_home(home: Path) -> None:
    """Stop the supervisor of ``home`` and anything a crashed one left behind."""
    import json as _json

    from noa_core.deploy.processes import MARKER_ENV
    from noa_core.deploy.supervisor_client import stop_supervisor
    from noa_core.deploy.supervisor_common import deploy_dir, kill_group

    stop_supervisor(home)
    d = deploy_dir(home)
    state = d / "state.json"
    if state.exists():
        data = _json.loads(state.read_text())
        for pid in data.get("caddy_pids") or []:
            for cfg in ("edge.json", "router.json"):
                kill_group(int(pid), str(d / cfg))
        for iid, inst in (data.get("instances") or {}).items():
            if inst.get("pid"):
                kill_group(int(inst["pid"]), f"{MARKER_ENV}={iid}")


def body_of(url: str) -> str:
    import httpx

    return httpx.get(url, timeout=5).text
