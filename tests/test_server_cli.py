"""`noa server` as a user starts it: the API on uvicorn with its URLs printed; Ctrl-C stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.server_helpers import free_port

REPO = Path(__file__).resolve().parents[1]
SCRIPT = ("import sys; from noa_core.cli.main import app; from noa_core.cli.server_cmd import register;\n"
          "register(app) if not any(g.name == 'server' for g in app.registered_groups) else None;\n"
          "sys.argv = ['noa'] + sys.argv[1:]; app()")


def test_noa_server_without_prefect_serves_the_api_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, "server", "--no-prefect", "--port", str(port),
                             "--home", str(tmp_path / "noa")], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        health = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health is not None, proc.stderr.read() if proc.poll() is not None else "no answer"
        assert health["prefect"].startswith("skipped:")
        assert httpx.get(f"http://127.0.0.1:{port}/v1/projects", timeout=2).status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert f"NOA API:     http://127.0.0.1:{port}/" in err
    assert "drop-in watcher: skipped: it needs Prefect (--no-prefect)" in err
    assert "/metrics" in err


def test_noa_server_rejects_a_bad_port(tmp_path):
    r = subprocess.run([sys.executable, "-c", SCRIPT, "server", "--no-prefect", "--port", "0", "--home",
                        str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == "noa: error: --port must be 1-65535, not 0"
