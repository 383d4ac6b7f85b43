"""The deploy ports: where a release runs (:class:`DeployTarget`) and how traffic
reaches it (:class:`TrafficRouter`).

A *release* is one version of one app, described by a frozen :class:`Release` (what to
run, which port variable, which health path). A target starts a release as an
:class:`Instance` that answers on ``host:port`` (its :attr:`Instance.endpoint`); the
router spreads an app's traffic over instance endpoints by weight and counts, per
upstream, the requests and failures that analysis compares.

Implementations, one file each:

* :mod:`noa_core.deploy.local_target`       - supervised local processes (the default);
* :mod:`noa_core.deploy.docker_target`      - Docker Engine via the docker SDK;
* :mod:`noa_core.deploy.kubernetes_target`  - Deployment + Service via the kubernetes client;
* :mod:`noa_core.deploy.caddy_router`       - a Caddy that NOA starts, driven by its admin API.

"skipped" is not "ok": a target that cannot run here (no Docker engine, no cluster)
says so with :meth:`DeployTarget.availability` -> ``Availability("skipped", "skipped:
no Docker engine at unix:///var/run/docker.sock")``, and its :meth:`DeployTarget.start`
raises :class:`TargetUnavailable` with the same one-line reason; nothing pretends to
have deployed. Every other failure is a :class:`DeployError`.

This module is Prefect-free and stable: other helpers code against these names.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from noa_core.errors import NoaError

__all__ = [
    "LATENCY_BUCKETS_MS",
    "Availability",
    "DeployError",
    "DeployTarget",
    "HealthCheckFailed",
    "HealthResult",
    "Instance",
    "InstanceState",
    "InstanceStatus",
    "Release",
    "RouterError",
    "TargetUnavailable",
    "TrafficRouter",
    "Upstream",
    "UpstreamCounts",
]

InstanceState = Literal["starting", "running", "restarting", "crashed", "stopped", "unknown"]
AvailabilityStatus = Literal["ok", "skipped"]

#: upper bounds (ms) of the latency histogram buckets in :class:`UpstreamCounts`; the
#: last bucket is +inf. Fine below 100 ms so that a 3x slower canary shows in p99.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 125, 150, 200, 250, 300,
    400, 500, 650, 800, 1000, 1500, 2000, 3000, 5000, 10000, 30000, 60000,
)


class DeployError(NoaError):
    """Base class of the deploy ports' errors (targets and routers)."""


class TargetUnavailable(DeployError):
    """The target cannot run here; the message starts with ``skipped:``."""


class HealthCheckFailed(DeployError):
    """An instance did not become healthy in time."""


class RouterError(DeployError):
    """The traffic router could not apply or read routing."""


@dataclass(frozen=True)
class Availability:
    """Whether a target (or router) can work here. ``reason`` starts with ``skipped:`` when not."""

    status: AvailabilityStatus
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Release:
    """One version of one app, ready to be started by a target.

    ``release_id`` is unique per app (e.g. ``hello-service-1.0.0-3f2a9c1d``);
    ``source`` is the project directory the target copies (local) or builds (docker);
    ``content_hash`` identifies the tree. ``env`` holds non-secret variables only.
    """

    app: str
    release_id: str
    version: str
    source: str
    content_hash: str
    command: tuple[str, ...]
    port_env: str = "PORT"
    health_path: str = "/health"
    health_timeout_s: float = 2.0
    health_interval_s: float = 1.0
    env: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None  # docker / kubernetes: the image built or given
    created_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "app": self.app, "release_id": self.release_id, "version": self.version, "source": self.source,
            "content_hash": self.content_hash, "command": list(self.command), "port_env": self.port_env,
            "health_path": self.health_path, "health_timeout_s": self.health_timeout_s,
            "health_interval_s": self.health_interval_s, "env": dict(self.env), "image": self.image,
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Release:
        return cls(
            app=str(d["app"]), release_id=str(d["release_id"]), version=str(d.get("version", "")),
            source=str(d.get("source", "")), content_hash=str(d.get("content_hash", "")),
            command=tuple(str(a) for a in d.get("command", ())), port_env=str(d.get("port_env", "PORT")),
            health_path=str(d.get("health_path", "/health")),
            health_timeout_s=float(d.get("health_timeout_s", 2.0)),
            health_interval_s=float(d.get("health_interval_s", 1.0)),
            env={str(k): str(v) for k, v in dict(d.get("env") or {}).items()},
            image=d.get("image"), created_at=str(d.get("created_at", "")),
        )


@dataclass(frozen=True)
class Instance:
    """A started release: where it answers and how to find it again."""

    app: str
    release_id: str
    target: str  # "local" | "docker" | "kubernetes"
    instance_id: str  # unique per target (local: "<release_id>-<n>", docker: container id, k8s: deployment name)
    host: str
    port: int
    pid: int | None = None
    logs: str = ""  # path of the captured output, "" when the target keeps logs elsewhere
    started_at: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)  # target-specific, JSON-safe

    @property
    def endpoint(self) -> str:
        """``host:port`` as the router dials it."""
        return f"{self.host}:{self.port}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "app": self.app, "release_id": self.release_id, "target": self.target,
            "instance_id": self.instance_id, "host": self.host, "port": self.port, "pid": self.pid,
            "logs": self.logs, "started_at": self.started_at, "endpoint": self.endpoint, "data": dict(self.data),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Instance:
        return cls(
            app=str(d["app"]), release_id=str(d["release_id"]), target=str(d["target"]),
            instance_id=str(d["instance_id"]), host=str(d["host"]), port=int(d["port"]),
            pid=None if d.get("pid") is None else int(d["pid"]), logs=str(d.get("logs", "")),
            started_at=str(d.get("started_at", "")), data=dict(d.get("data") or {}),
        )


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    status_code: int | None = None
    reason: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class InstanceStatus:
    state: InstanceState
    restarts: int = 0
    exit_code: int | None = None
    reason: str = ""

    @property
    def alive(self) -> bool:
        return self.state in ("starting", "running")


class DeployTarget(ABC):
    """Where releases run. Implementations are cheap to construct and hold no global state."""

    name: ClassVar[str]

    def availability(self) -> Availability:
        """``ok``, or ``skipped`` with a one-line reason (no engine, no cluster, ...)."""
        return Availability("ok")

    def prepare(self, release: Release) -> Release:
        """Make what :meth:`start` needs before any traffic moves (docker: build the image) and
        return the release to deploy; a :class:`DeployError` here fails the deploy, nothing changed."""
        return release

    @abstractmethod
    def start(self, release: Release) -> Instance:
        """Start one instance of ``release`` and return at once (do not wait for health).

        Raises :class:`TargetUnavailable` (``skipped: ...``) or :class:`DeployError`.
        """

    @abstractmethod
    def health(self, instance: Instance, *, timeout_s: float | None = None) -> HealthResult:
        """One health probe of ``instance`` (GET its release's health path)."""

    def wait_healthy(self, instance: Instance, *, timeout_s: float = 30.0, interval_s: float = 0.1) -> HealthResult:
        """Probe until healthy; a dead instance or ``timeout_s`` gives ``ok=False``."""
        t0 = time.monotonic()
        last = HealthResult(False, reason="not probed")
        while True:
            last = self.health(instance)
            if last.ok:
                return HealthResult(True, last.status_code, last.reason, time.monotonic() - t0)
            st = self.status(instance)
            if st.state in ("crashed", "stopped") or st.restarts > 0:  # died before it was ever healthy
                return HealthResult(False, last.status_code, f"instance {st.state}: {st.reason or last.reason}",
                                    time.monotonic() - t0)
            if time.monotonic() - t0 >= timeout_s:
                return HealthResult(False, last.status_code, f"not healthy after {timeout_s:g}s: {last.reason}",
                                    time.monotonic() - t0)
            time.sleep(interval_s)

    @abstractmethod
    def stop(self, instance: Instance, *, drain_timeout_s: float = 10.0) -> None:
        """Stop gracefully (SIGTERM / docker stop / scale to 0), force after ``drain_timeout_s``.

        The router has already taken traffic away; stopping an unknown or stopped
        instance is not an error.
        """

    @abstractmethod
    def status(self, instance: Instance) -> InstanceStatus:
        """What the instance is doing now (``crashed`` once its restarts are used up)."""

    def is_alive(self, instance: Instance) -> bool:
        return self.status(instance).alive

    def logs_path(self, instance: Instance) -> Path | None:
        """Where its captured output is, if the target keeps it in a file."""
        return Path(instance.logs) if instance.logs else None


@dataclass(frozen=True)
class Upstream:
    """One backend of an app's route; weight 0 means no new requests go there."""

    endpoint: str  # host:port
    weight: int = 1
    label: str = ""  # "stable" / "canary" / "blue" / "green" / a release id


@dataclass(frozen=True)
class UpstreamCounts:
    """Cumulative counters for one upstream since the router started counting.

    ``failures`` are responses with status >= 500 and proxy errors (dial failures,
    timeouts). ``latency_buckets`` are cumulative-per-bucket counts over
    :data:`LATENCY_BUCKETS_MS` plus a last +inf bucket (not cumulative across buckets).
    Analysis subtracts two readings to get a window.
    """

    endpoint: str
    requests: int = 0
    failures: int = 0
    latency_buckets: tuple[int, ...] = ()
    latency_sum_ms: float = 0.0

    def minus(self, earlier: UpstreamCounts | None) -> UpstreamCounts:
        if earlier is None:
            return self
        n = max(len(self.latency_buckets), len(earlier.latency_buckets))
        a = self.latency_buckets + (0,) * (n - len(self.latency_buckets))
        b = earlier.latency_buckets + (0,) * (n - len(earlier.latency_buckets))
        return UpstreamCounts(self.endpoint, self.requests - earlier.requests, self.failures - earlier.failures,
                              tuple(x - y for x, y in zip(a, b)), self.latency_sum_ms - earlier.latency_sum_ms)

    def quantile_ms(self, q: float) -> float | None:
        """Upper bound of the bucket holding the q-quantile, None without samples."""
        total = sum(self.latency_buckets)
        if total <= 0:
            return None
        rank = q * total
        seen = 0
        for i, c in enumerate(self.latency_buckets):
            seen += c
            if seen >= rank and c:
                return LATENCY_BUCKETS_MS[i] if i < len(LATENCY_BUCKETS_MS) else float("inf")
        return float("inf")

    @property
    def error_rate(self) -> float | None:
        return None if self.requests <= 0 else self.failures / self.requests

    def as_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "requests": self.requests, "failures": self.failures,
                "latency_buckets": list(self.latency_buckets), "latency_sum_ms": round(self.latency_sum_ms, 3)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> UpstreamCounts:
        return cls(str(d["endpoint"]), int(d.get("requests", 0)), int(d.get("failures", 0)),
                   tuple(int(x) for x in d.get("latency_buckets", ())), float(d.get("latency_sum_ms", 0.0)))


class TrafficRouter(ABC):
    """Spreads one app's traffic over upstreams by weight and counts per upstream."""

    name: ClassVar[str]

    def availability(self) -> Availability:
        return Availability("ok")

    @abstractmethod
    def ensure_route(self, app: str) -> str:
        """Create the app's public route if missing; return its ``host:port``."""

    @abstractmethod
    def set_upstreams(self, app: str, upstreams: Sequence[Upstream]) -> None:
        """Replace the app's upstreams and weights in one step (a weight-only change is a patch)."""

    @abstractmethod
    def upstreams(self, app: str) -> tuple[Upstream, ...]:
        """The routing last applied for ``app`` (empty when none)."""

    @abstractmethod
    def counts(self, app: str) -> Mapping[str, UpstreamCounts]:
        """Cumulative :class:`UpstreamCounts` per upstream endpoint of ``app``."""

    @abstractmethod
    def in_flight(self, app: str, endpoint: str) -> int:
        """Requests to ``endpoint`` that have been sent and not yet answered (for draining)."""

    def drain(self, app: str, endpoint: str, *, timeout_s: float = 10.0, interval_s: float = 0.05) -> bool:
        """Wait until ``endpoint`` has no request in flight; False if ``timeout_s`` passed first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.in_flight(app, endpoint) <= 0:
                return True
            time.sleep(interval_s)
        return self.in_flight(app, endpoint) <= 0
