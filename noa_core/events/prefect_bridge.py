"""Every event also goes to Prefect (``prefect.events.emit_event``) when a Prefect API is configured,
so Prefect automations can react to NOA events (``noa.deploy.failed`` ...).
"""

from __future__ import annotations

import os
from typing import Any

from noa_core.events.interface import Event


def prefect_api_configured() -> bool:
    return bool(os.environ.get("PREFECT_API_URL"))


class PrefectEventSubscriber:
    name = "prefect"

    def __init__(self, *, enabled: bool | None = None) -> None:
        self.enabled = prefect_api_configured() if enabled is None else enabled

    @staticmethod
    def prefect_event(event: Event) -> dict[str, Any]:
        resource = {"prefect.resource.id": f"noa.{event.family}.{event.subject or '-'}",
                    "prefect.resource.name": event.subject or "-", "noa.severity": event.severity}
        related = []
        if event.run_id:
            related.append({"prefect.resource.id": f"prefect.flow-run.{event.run_id}",
                            "prefect.resource.role": "flow-run"})
        payload = {**event.payload, "noa_event_id": event.id}
        if event.duration_s is not None:
            payload["duration_s"] = event.duration_s
        return {"event": f"noa.{event.kind}", "resource": resource, "related": related, "payload": payload}

    def handle(self, event: Event) -> str:
        if not self.enabled:
            return "skipped: no Prefect API configured"
        from prefect.events import emit_event

        data = self.prefect_event(event)
        emitted = emit_event(event=data["event"], resource=data["resource"], related=data["related"] or None,
                             payload=data["payload"])
        return "ok" if emitted is not None else "skipped: Prefect events are disabled"
