"""The local target: releases run as supervised processes on this host.

The processes belong to the deploy supervisor of ``NOA_HOME``
(:mod:`noa_core.deploy.supervisor`), so they outlive the command that deployed them;
each gets its own copy of the release tree, a free loopback port in the manifest's
``run.port_env`` variable, captured logs, limits and restarts on crash
(:mod:`noa_core.deploy.processes`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import httpx

from noa_core.deploy.interface import DeployTarget, HealthResult, Instance, InstanceStatus, Release
from noa_core.deploy.supervisor_client import SupervisorClient, ensure_supervisor

__all__ = ["LocalTarget", "http_health"]


def http_health(host: str, port: int, path: str, timeout_s: float) -> HealthResult:
    t0 = time.monotonic()
    try:
        r = httpx.get(f"http://{host}:{port}{path}", timeout=timeout_s)
    except httpx.HTTPError as exc:
        return HealthResult(False, None, f"{type(exc).__name__}: {exc}".strip(": "), time.monotonic() - t0)
    ok = 200 <= r.status_code < 300
    return HealthResult(ok, r.status_code, "" if ok else f"HTTP {r.status_code}", time.monotonic() - t0)


class LocalTarget(DeployTarget):
    name: ClassVar[str] = "local"

    def __init__(self, home: Path, *, max_restarts: int = 3) -> None:
        self.home = Path(home).resolve()
        self.max_restarts = max_restarts
        self._client: SupervisorClient | None = None
        self._health: dict[str, tuple[str, float]] = {}

    @property
    def client(self) -> SupervisorClient:
        if self._client is None:
            self._client = ensure_supervisor(self.home)
        return self._client

    def start(self, release: Release) -> Instance:
        d = self.client.call("start", {"release": release.as_dict(), "max_restarts": self.max_restarts})
        inst = Instance(app=release.app, release_id=release.release_id, target=self.name,
                        instance_id=d["instance_id"], host="127.0.0.1", port=int(d["port"]), pid=d.get("pid"),
                        logs=d.get("logs", ""), started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        data={"health_path": release.health_path, "health_timeout_s": release.health_timeout_s,
                              "isolation": d.get("isolation", "")})
        return inst

    def health(self, instance: Instance, *, timeout_s: float | None = None) -> HealthResult:
        path = str(instance.data.get("health_path", "/health"))
        t = timeout_s if timeout_s is not None else float(instance.data.get("health_timeout_s", 2.0))
        return http_health(instance.host, instance.port, path, t)

    def stop(self, instance: Instance, *, drain_timeout_s: float = 10.0) -> None:
        self.client.call("stop", {"instance_id": instance.instance_id, "grace_s": drain_timeout_s},
                         timeout=drain_timeout_s + 30)

    def status(self, instance: Instance) -> InstanceStatus:
        d = self.client.call("instance", {"instance_id": instance.instance_id})
        return InstanceStatus(d["state"], int(d.get("restarts", 0)), d.get("exit_code"), d.get("reason", ""))
