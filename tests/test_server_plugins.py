"""Plugins through the `noa.plugins` entry-point group: an installed distribution (a real dist-info
on sys.path, found by importlib.metadata) adds an API route behind the API's auth and an event
subscriber; a broken plugin is reported in /health and does not stop the server."""

from __future__ import annotations

import sys
import textwrap

import pytest
from fastapi.testclient import TestClient

from noa_core.server.app import create_app
from tests.server_helpers import bearer, settings_for, tokens

PLUGIN = '''
from fastapi import APIRouter

SEEN = []


class Recorder:
    name = "hello-recorder"

    def handle(self, event):
        SEEN.append(event.kind)
        return "ok"


def api_router(settings):
    router = APIRouter()

    @router.get("/greet")
    async def greet(name: str = "world") -> dict:
        return {"greeting": f"hello {name}", "home": settings.home.name}

    @router.post("/poke", status_code=201)
    async def poke() -> dict:
        return {"poked": True}

    return router


def event_subscribers(settings):
    return [Recorder()]
'''


@pytest.fixture()
def installed_plugins(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "noa_plugin_hello").mkdir(parents=True)
    (site / "noa_plugin_hello" / "__init__.py").write_text(PLUGIN)
    for dist, ep in (("noa_plugin_hello-0.1.0", "hello = noa_plugin_hello"),
                     ("noa_plugin_broken-0.1.0", "broken = noa_plugin_missing_module")):
        info = site / f"{dist}.dist-info"
        info.mkdir()
        name, version = dist.rsplit("-", 1)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(textwrap.dedent(f"[noa.plugins]\n{ep}\n"))
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("noa_plugin_hello", None)


def test_plugin_route_and_subscriber(tmp_path, installed_plugins):
    app = create_app(settings_for(tmp_path), record_change=None, schedule_backup=None, prefect_events=False)
    toks = tokens(app)
    with TestClient(app) as client:
        health = client.get("/health").json()
        assert health["plugins"]["hello"] == "ok"
        assert health["plugins"]["broken"].startswith("error: ModuleNotFoundError")
        assert client.get("/plugins/hello/greet").status_code == 401
        r = client.get("/plugins/hello/greet", params={"name": "noa"}, headers=bearer(toks["read"]))
        assert r.json() == {"greeting": "hello noa", "home": "noa"}
        assert client.post("/plugins/hello/poke", headers=bearer(toks["read"])).status_code == 403
        assert client.post("/plugins/hello/poke", headers=bearer(toks["write"])).status_code == 201
        spec = client.get("/openapi.json").json()
        assert {"401", "403", "429"} <= set(spec["paths"]["/plugins/hello/greet"]["get"]["responses"])
        r = client.post("/v1/events", headers=bearer(toks["write"]), json={"kind": "stage.finished", "subject": "x"})
        assert {"subscriber": "hello-recorder", "status": "ok"} in r.json()["deliveries"]
    import noa_plugin_hello

    assert noa_plugin_hello.SEEN == ["stage.finished"]


def test_plugins_can_be_turned_off(tmp_path, installed_plugins):
    app = create_app(settings_for(tmp_path), plugins=False, record_change=None, schedule_backup=None,
                     prefect_events=False)
    with TestClient(app) as client:
        assert client.get("/health").json()["plugins"] == {}
        assert client.get("/plugins/hello/greet").status_code == 404
