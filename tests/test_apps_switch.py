"""App switching through NOA's real Caddy, under load from a second process on 127.0.0.1.

The "external" app is a tiny HTTP server this test starts itself: NOA routes to it but
does not own it (it must still run after NOA switches away from it). The owned app is a
project directory NOA starts on its local deploy target. The switch runs as the real
``app_switch`` Prefect flow against the session's Prefect server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from deploy_helpers import body_of, cleanup_home, failed_share, load, make_app
from typer.testing import CliRunner

from noa_core.apps.registry import AppRegistry, parse_spec
from noa_core.apps.switch import SwitchController
from noa_core.config import NoaSettings
from noa_core.deploy.supervisor_client import ensure_supervisor

EXTERNAL = r'''
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/health":
            time.sleep(0.03)  # requests take a while: some are in flight when the switch drains
        body = b"ok\n" if self.path == "/health" else b"hello from external\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
s.daemon_threads = True
s.serve_forever()
'''

NEVER_READY = r'''
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        code, body = (503, b"warming up forever\n") if self.path == "/health" else (200, b"hello from broken\n")
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def external(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """An HTTP server NOA does not own; killed here, never by NOA."""
    script = tmp_path / "external.py"
    script.write_text(EXTERNAL)
    port = _free_port()
    p = subprocess.Popen([sys.executable, str(script), str(port)], start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url, p
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    h = tmp_path / "home"
    yield h
    cleanup_home(h)


def _setup(home: Path, ext_url: str, owned_dir: Path) -> tuple[NoaSettings, str]:
    settings = NoaSettings(home=home)
    with AppRegistry(settings) as reg:
        reg.register(parse_spec(name="legacy-shop", kind="external", endpoint=ext_url, owner="ops", service="shop"))
        reg.register(parse_spec(name="shop", kind="owned", project_dir=str(owned_dir), owner="team-a"))
    served = SwitchController(settings).serve("legacy-shop")
    assert served["outcome"] == "serving", served
    return settings, f"http://{served['endpoint']}/hello"


def _switch(home: Path, to: str, **kw: object) -> dict:
    from flows.app_switch import app_switch

    return asyncio.run(app_switch(app=to, home=str(home), **kw))  # type: ignore[arg-type]


def test_external_to_owned_and_back_under_load_fail_no_request(
        prefect_api_url: str, home: Path, tmp_path: Path, external: tuple[str, subprocess.Popen[bytes]]) -> None:
    ext_url, ext_proc = external
    settings, url = _setup(home, ext_url, make_app(tmp_path, version="owned", name="shop"))
    assert body_of(url) == "hello from external\n"

    with load(url, tmp_path / "load1.txt", rps=80) as hits:
        res = _switch(home, "shop")
        time.sleep(0.4)
    failed, total, share = failed_share(hits)
    print(f"\nexternal -> owned under load: {failed}/{total} failed ({share:.2%}); switch {res['duration_s']} s")
    assert res["outcome"] == "switched", res["reason"]
    assert [s["name"] for s in res["steps"]] == ["request", "registry", "controller", "initialise", "ready",
                                                 "route", "drain", "shutdown", "status", "report"]
    assert all(s["verdict"] == "passed" for s in res["steps"])
    assert res["steps"][6]["reason"].startswith("no request in flight on ")  # drained
    assert "detached legacy-shop" in res["steps"][7]["reason"]
    assert failed == 0 and total > 30
    assert {h.status for h in hits} == {200}
    assert body_of(url) == "hello from owned\n"
    assert ext_proc.poll() is None and body_of(ext_url + "/hello") == "hello from external\n"  # not killed
    with AppRegistry(settings) as reg:
        status = {a.name: a.status for a in reg.list()}
    assert status == {"legacy-shop": "detached", "shop": "serving"}

    with load(url, tmp_path / "load2.txt", rps=80) as hits2:
        back = _switch(home, "legacy-shop")
        time.sleep(0.4)
    failed2, total2, _ = failed_share(hits2)
    print(f"owned -> external under load: {failed2}/{total2} failed")
    assert back["outcome"] == "switched", back["reason"]
    assert back["steps"][7]["reason"].startswith("stopped ")
    assert failed2 == 0 and total2 > 30
    assert body_of(url) == "hello from external\n"
    with AppRegistry(settings) as reg:
        status = {a.name: (a.status, a.instance) for a in reg.list()}
    assert status == {"legacy-shop": ("serving", None), "shop": ("stopped", None)}
    states = [i["state"] for i in ensure_supervisor(home).call("status")["instances"].values()]
    assert states == ["stopped"]  # the owned app NOA started is gone; the external one still runs
    assert ext_proc.poll() is None

    from noa_core.cltree import change_entries

    entries = change_entries(settings, kind="registry", subject="apps/shop")
    assert [(e.payload["action"], e.payload["outcome"]) for e in entries] == [
        ("serve", "serving"), ("switch", "switched"), ("switch", "switched")]


def test_owned_app_that_never_becomes_ready_leaves_traffic_on_external(
        prefect_api_url: str, home: Path, tmp_path: Path, external: tuple[str, subprocess.Popen[bytes]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    broken = make_app(tmp_path, version="broken", name="shop")
    (broken / "app.py").write_text(NEVER_READY)
    settings = NoaSettings(home=home)
    monkeypatch.setenv("PREFECT_API_URL", prefect_api_url)  # the CLI connects to the session's server
    from noa_core.cli.apps_cmd import register

    cli = typer.Typer()

    @cli.callback()
    def _root() -> None:
        pass

    register(cli)
    r = CliRunner().invoke(cli, ["apps", "register", "legacy-shop", "external", external[0], "--service", "shop",
                                 "--owner", "ops", "--serve", "--home", str(home), "--json"])
    assert r.exit_code == 0, r.stderr
    served = json.loads(r.stdout)
    assert served["app"]["status"] == "serving" and served["serve"]["outcome"] == "serving"
    url = f"http://{served['serve']['endpoint']}/hello"
    r = CliRunner().invoke(cli, ["apps", "register", "shop", "owned", str(broken), "--home", str(home)])
    assert r.exit_code == 0, r.stderr
    r = CliRunner().invoke(cli, ["apps", "status", "legacy-shop", "--home", str(home), "--json"])
    st = json.loads(r.stdout)
    assert st["health"]["ok"] is True and st["route"]["listen"] == served["serve"]["endpoint"]
    assert [(u["endpoint"], u["weight"]) for u in st["route"]["upstreams"]] == [(external[0][7:], 1)]
    with load(url, tmp_path / "load.txt", rps=80) as hits:
        r = CliRunner().invoke(cli, ["apps", "switch", "shop", "--health-timeout", "2", "--home", str(home),
                                     "--json"], catch_exceptions=False)
    assert r.exit_code == 1, r.stderr
    res = json.loads(r.stdout)
    assert res["outcome"] == "failed" and res["serving"] == "legacy-shop"
    assert "ready: shop never became ready (/health)" in res["reason"] and "HTTP 503" in res["reason"]
    assert res["reason"].endswith("traffic stays on legacy-shop")
    assert [(s["name"], s["verdict"]) for s in res["steps"]][-3:] == [
        ("ready", "failed"), ("undo", "passed"), ("report", "passed")]
    assert failed_share(hits)[0] == 0
    assert body_of(url) == "hello from external\n"
    with AppRegistry(settings) as reg:
        apps = {a.name: a for a in reg.list()}
    assert apps["legacy-shop"].status == "serving"
    assert apps["shop"].status == "failed" and "never became ready" in apps["shop"].reason
    states = [i["state"] for i in ensure_supervisor(home).call("status")["instances"].values()]
    assert states == ["stopped"]  # the owned attempt was stopped


@pytest.mark.slow
def test_repeated_round_trips_under_heavier_load_fail_no_request(
        prefect_api_url: str, home: Path, tmp_path: Path, external: tuple[str, subprocess.Popen[bytes]]) -> None:
    settings, url = _setup(home, external[0], make_app(tmp_path, version="owned", name="shop", delay_ms=20))
    results = []
    with load(url, tmp_path / "load.txt", rps=200, threads=12) as hits:
        for _ in range(3):
            results.append(_switch(home, "shop"))
            results.append(_switch(home, "legacy-shop"))
        time.sleep(0.3)
    failed, total, _ = failed_share(hits)
    print(f"\n6 switches under 200 rps: {failed}/{total} failed; switch s: "
          f"{[r['duration_s'] for r in results]}")
    assert [r["outcome"] for r in results] == ["switched"] * 6
    assert failed == 0 and total > 300
    assert body_of(url) == "hello from external\n"
    states = [i["state"] for i in ensure_supervisor(home).call("status")["instances"].values()]
    assert states == ["stopped"] * 3 and external[1].poll() is None
