"""Alert manager: critical events alert through a notifier; the rest are logged.

The notifier is any object with ``send(subject, body)``; the one NOA ships,
:class:`~noa_core.events.prefect_bridge.PrefectBlockNotifier`, wraps a Prefect notification
block and lives with the other Prefect adapter code in :mod:`noa_core.events.prefect_bridge`.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from noa_core.events.interface import SEVERITIES, Event


class Notifier(Protocol):
    def send(self, subject: str, body: str) -> None: ...


class AlertManager:
    name = "alerts"

    def __init__(self, notifier: Notifier | None, logger: logging.Logger, *, threshold: str = "critical",
                 metrics: Any = None) -> None:
        self.notifier = notifier
        self.metrics = metrics
        self.log = logger
        self.threshold = SEVERITIES.index(threshold)
        self.sent = 0
        self.failed = 0

    def _critical(self, event: Event) -> bool:
        return SEVERITIES.index(event.severity) >= self.threshold

    def handle(self, event: Event) -> str:
        level = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
                 "error": logging.ERROR, "critical": logging.CRITICAL}[event.severity]
        self.log.log(level, "%s %s", event.kind, event.subject,
                     extra={"event": event.kind, "subject": event.subject, "event_id": event.id,
                            "severity": event.severity, "run_id": event.run_id})
        if not self._critical(event):
            return "ok: logged"
        if self.notifier is None:
            return "skipped: no notification block configured (logged only)"
        subject = f"NOA {event.severity}: {event.kind} {event.subject}"
        body = json.dumps(event.as_dict(), default=str, sort_keys=True)
        try:
            self.notifier.send(subject, body)
        except Exception:
            self.failed += 1
            if self.metrics is not None:
                self.metrics.alerts.labels("failed").inc()
            raise
        self.sent += 1
        if self.metrics is not None:
            self.metrics.alerts.labels("sent").inc()
        return "ok: alerted"
