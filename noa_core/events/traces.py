"""Trace recorder: every event becomes a short span (linked to its run id) in the trace file."""

from __future__ import annotations

from noa_core.events.interface import Event
from noa_core.observability.tracing import Tracing


class TraceSubscriber:
    name = "traces"

    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing

    def handle(self, event: Event) -> str:
        attrs = {"noa.event.kind": event.kind, "noa.event.subject": event.subject,
                 "noa.event.severity": event.severity, "noa.event.id": event.id}
        if event.duration_s is not None:
            attrs["noa.event.duration_s"] = event.duration_s
        with self.tracing.span(f"event {event.kind}", attrs, run_id=event.run_id) as span:
            span.add_event(event.kind, {str(k) or "_": str(v)[:200] for k, v in event.payload.items()})
        return "ok"
