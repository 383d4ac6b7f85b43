"""The domain's one door to Prefect: the event port's Prefect adapters.

* :class:`PrefectEventSubscriber`: every event also goes to Prefect (``prefect.events.emit_event``)
  when a Prefect API is configured, so Prefect automations can react to NOA events
  (``noa.deploy.failed`` ...);
* :class:`PrefectBlockNotifier`: alerts sent through a Prefect notification block;
* :func:`current_flow_run_id`: the flow run an event belongs to.

Prefect is imported inside these, only when they are used; the import-linter contract
"noa_core domain imports no Prefect, Typer or FastAPI" names this module as its one exception
(see docs/architecture.md).
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


class PrefectBlockNotifier:
    """Sends through a Prefect notification block (synchronously: call it off the event loop)."""

    def __init__(self, block: Any) -> None:
        self.block = block

    def send(self, subject: str, body: str) -> None:
        self.block.notify(body, subject, _sync=True)

    @classmethod
    def webhook(cls, url: str, *, timeout: float = 10.0) -> PrefectBlockNotifier:
        """The default: a ``CustomWebhookNotificationBlock`` POSTing ``{"subject", "body"}`` JSON to ``url``."""
        from prefect.blocks.notifications import CustomWebhookNotificationBlock

        block = CustomWebhookNotificationBlock(
            name="noa-alerts", url=url, method="POST", timeout=timeout, allow_private_urls=True,
            json_data={"subject": "{{subject}}", "body": "{{body}}"})
        return cls(block)

    @classmethod
    def load(cls, slug: str) -> PrefectBlockNotifier:
        """A saved notification block, e.g. ``custom-webhook/noa-alerts`` or ``slack-webhook/ops``."""
        from prefect.blocks.core import Block

        return cls(Block.load(slug, _sync=True))


def current_flow_run_id() -> str | None:
    """The id of the Prefect flow run this code runs in; ``None`` outside one (or without Prefect)."""
    try:
        from prefect.runtime import flow_run

        return str(flow_run.id) if flow_run.id else None
    except Exception:  # noqa: BLE001 - outside a flow run, or Prefect not importable
        return None
