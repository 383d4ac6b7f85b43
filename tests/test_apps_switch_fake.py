"""The switch controller's undo at every step, with a fake (in-memory) router and target.

A fake router and target stand in for Caddy and the supervisor so that a failure can be
injected after each step in milliseconds; the registry (SQLite), the release snapshot
and the health probes are real (a small HTTP server in this process answers them).
The real-Caddy behaviour under load is in ``test_apps_switch.py``.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from deploy_helpers import make_app

from noa_core.apps.registry import AppRegistry, parse_spec
from noa_core.apps.switch import STEPS, SwitchController, SwitchOptions, route_of
from noa_core.config import NoaSettings
from noa_core.deploy.interface import (
    DeployTarget,
    HealthResult,
    Instance,
    InstanceStatus,
    Release,
    TrafficRouter,
    Upstream,
    UpstreamCounts,
)
from noa_core.errors import BadInput


class _OK(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *a: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[str]:
    """host:port of an HTTP server that answers 200 to everything (public route and external app)."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _OK)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield f"127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


class FakeRouter(TrafficRouter):
    name: ClassVar[str] = "fake"

    def __init__(self, public: str) -> None:
        self.public = public
        self.routes: dict[str, tuple[Upstream, ...]] = {}
        self.history: list[tuple[Upstream, ...]] = []

    def ensure_route(self, app: str) -> str:
        self.routes.setdefault(app, ())
        return self.public

    def set_upstreams(self, app: str, upstreams: Sequence[Upstream]) -> None:
        self.routes[app] = tuple(upstreams)
        self.history.append(tuple(upstreams))

    def upstreams(self, app: str) -> tuple[Upstream, ...]:
        return self.routes.get(app, ())

    def counts(self, app: str) -> Mapping[str, UpstreamCounts]:
        return {}

    def in_flight(self, app: str, endpoint: str) -> int:
        return 0


class FakeTarget(DeployTarget):
    name: ClassVar[str] = "fake"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.started: list[Instance] = []
        self.stopped: list[str] = []

    def start(self, release: Release) -> Instance:
        host, _, port = self.endpoint.rpartition(":")
        inst = Instance(release.app, release.release_id, "fake", f"{release.release_id}-{len(self.started)}",
                        host, int(port))
        self.started.append(inst)
        return inst

    def health(self, instance: Instance, *, timeout_s: float | None = None) -> HealthResult:
        return HealthResult(True, 200)

    def stop(self, instance: Instance, *, drain_timeout_s: float = 10.0) -> None:
        self.stopped.append(instance.instance_id)

    def status(self, instance: Instance) -> InstanceStatus:
        return InstanceStatus("stopped" if instance.instance_id in self.stopped else "running")


@pytest.fixture
def world(tmp_path: Path, answering: str) -> dict[str, Any]:
    settings = NoaSettings(home=tmp_path / "home")
    with AppRegistry(settings) as reg:
        reg.register(parse_spec(name="legacy", kind="external", endpoint=f"http://{answering}", service="shop"))
        reg.register(parse_spec(name="shop", kind="owned", project_dir=str(make_app(tmp_path, version="1"))))
    router, target = FakeRouter(answering), FakeTarget("127.0.0.1:1")  # the owned app's (fake) endpoint
    ctl = SwitchController(settings, target=target, router=router, options=SwitchOptions(2.0, 2.0))
    assert ctl.serve("legacy")["outcome"] == "serving"
    return {"settings": settings, "router": router, "target": target, "ctl": ctl, "ext": answering}


def _statuses(settings: NoaSettings) -> dict[str, str]:
    with AppRegistry(settings) as reg:
        return {a.name: a.status for a in reg.list()}


@pytest.mark.parametrize("step", [s for s in STEPS if s not in ("request", "registry")])
def test_fake_failure_after_each_step_puts_traffic_back_on_the_external_app(
        world: dict[str, Any], step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ctl: SwitchController = world["ctl"]
    router: FakeRouter = world["router"]
    target: FakeTarget = world["target"]
    real = getattr(ctl, f"_{step}")

    def broken(run: Any) -> str:
        real(run)
        raise RuntimeError(f"injected after {step}")

    monkeypatch.setattr(ctl, f"_{step}", broken)
    res = ctl.run("shop")
    assert res["outcome"] == "failed" and res["serving"] == "legacy"
    assert res["reason"] == f"{step}: RuntimeError: injected after {step}; traffic stays on legacy"
    assert router.upstreams(route_of("shop")) == (Upstream(world["ext"], 1, "legacy"),)
    assert [s["name"] for s in res["steps"]][-2:] == ["undo", "report"]
    assert [i.instance_id for i in target.started] == target.stopped  # whatever it started, it stopped
    assert _statuses(world["settings"]) == {"legacy": "serving", "shop": "failed"}
    # a later switch works: nothing was left half-done (lock released, statuses consistent)
    monkeypatch.setattr(ctl, f"_{step}", real)
    assert ctl.run("shop")["outcome"] == "switched"
    assert router.upstreams(route_of("shop")) == (Upstream(target.started[-1].endpoint, 1, "shop"),)


def test_fake_reverse_switch_to_an_external_app_that_is_down_keeps_the_owned_one(world: dict[str, Any]) -> None:
    ctl: SwitchController = world["ctl"]
    assert ctl.run("shop")["outcome"] == "switched"
    with AppRegistry(world["settings"]) as reg:
        reg.register(parse_spec(name="gone", kind="external", endpoint="http://127.0.0.1:9", service="shop"))
    ctl.options = SwitchOptions(health_timeout_s=0.5, drain_timeout_s=2.0)
    res = ctl.run("gone")
    assert res["outcome"] == "failed" and "ready: gone never became ready" in res["reason"]
    assert res["reason"].endswith("traffic stays on shop")
    assert world["target"].stopped == []  # the owned app keeps serving
    assert _statuses(world["settings"]) == {"legacy": "detached", "shop": "serving", "gone": "failed"}
    back = ctl.run("legacy")
    assert back["outcome"] == "switched" and world["target"].stopped == [world["target"].started[0].instance_id]


def test_fake_one_switch_per_service_and_refusals(world: dict[str, Any]) -> None:
    ctl: SwitchController = world["ctl"]
    lock = Path(world["settings"].home).resolve() / "apps" / "shop.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        res = ctl.run("shop")
    assert res["outcome"] == "failed" and "another switch of 'shop' is running" in res["reason"]
    assert _statuses(world["settings"]) == {"legacy": "serving", "shop": "registered"}
    with pytest.raises(BadInput, match="already serves"):
        ctl.run("legacy")
    with pytest.raises(BadInput, match="no app named"):
        ctl.run("nope")
    with pytest.raises(BadInput, match="to itself"):
        ctl.run("shop", "shop")
