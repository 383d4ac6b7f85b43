"""The event port: what a NOA step emits, and what a subscriber is."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from noa_core.errors import NoaError

Severity = Literal["debug", "info", "warning", "error", "critical"]
SEVERITIES: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")


class EventError(NoaError):
    """A subscriber could not handle an event."""


@dataclass(frozen=True)
class Event:
    """One thing that happened. ``kind`` is dotted: ``drop.submitted``, ``deploy.failed``, ``stage.finished``.

    ``subject`` names what it happened to (a drop id, an app, a project); ``payload`` holds
    no secrets (the change-log subscriber scrubs secret-looking keys again).
    """

    kind: str
    subject: str
    severity: Severity = "info"
    payload: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    duration_s: float | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    occurred: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))

    @property
    def family(self) -> str:
        """The first part of ``kind`` (``deploy`` of ``deploy.failed``)."""
        return self.kind.split(".", 1)[0]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "subject": self.subject, "severity": self.severity,
                "payload": self.payload, "run_id": self.run_id, "duration_s": self.duration_s,
                "occurred": self.occurred}


@dataclass(frozen=True)
class Delivery:
    """What one subscriber did with one event: ``ok``, ``skipped: <why>`` or ``error: <what>``."""

    subscriber: str
    status: str


@runtime_checkable
class Subscriber(Protocol):
    name: str

    def handle(self, event: Event) -> str:
        """Handle the event; return ``"ok"`` or ``"skipped: <why>"``; raise on failure."""
        ...
