"""Metrics collector: turns events into the Prometheus series of :class:`NoaMetrics`.

Conventions read from events: ``stage.finished`` (payload ``stage``, ``status``),
``flow.finished`` (``flow``, ``outcome``), ``deploy.*`` (``env``, ``outcome``),
``rollback.*``, ``swarm.queue`` (``language``, ``depth``), ``canary.analysis``
(``app``, ``error_rate``), ``backup.finished`` (``backend``, ``bytes``); ``duration_s``
on the event feeds the duration histograms.
"""

from __future__ import annotations

from noa_core.events.interface import Event
from noa_core.observability.metrics import NoaMetrics


class MetricsSubscriber:
    name = "metrics"

    def __init__(self, metrics: NoaMetrics) -> None:
        self.m = metrics

    def handle(self, event: Event) -> str:
        m, p = self.m, event.payload
        m.events.labels(event.kind, event.severity).inc()
        if event.kind == "stage.finished":
            stage = str(p.get("stage", "?"))
            m.stage_runs.labels(stage, str(p.get("status", "?"))).inc()
            if event.duration_s is not None:
                m.stage_seconds.labels(stage).observe(event.duration_s)
        elif event.kind == "flow.finished":
            flow = str(p.get("flow", "?"))
            m.flow_runs.labels(flow, str(p.get("outcome", "?"))).inc()
            if event.duration_s is not None:
                m.flow_seconds.labels(flow).observe(event.duration_s)
        elif event.family == "deploy" and event.kind != "deploy.submitted":
            m.deploys.labels(str(p.get("env", "?")), str(p.get("outcome", event.kind.split(".")[-1]))).inc()
        elif event.family == "rollback" and event.kind != "rollback.submitted":
            m.rollbacks.labels(str(p.get("app", event.subject))).inc()
        elif event.kind == "swarm.queue":
            m.swarm_queue_depth.labels(str(p.get("language", "?"))).set(float(p.get("depth", 0)))
        elif event.kind == "canary.analysis":
            m.canary_error_rate.labels(str(p.get("app", event.subject))).set(float(p.get("error_rate", 0.0)))
        elif event.kind == "backup.finished":
            m.backup_bytes.labels(str(p.get("backend", "local"))).set(float(p.get("bytes", 0)))
        return "ok"
