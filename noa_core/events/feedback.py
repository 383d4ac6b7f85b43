"""Feedback to the master orchestrator: a deploy failure or a monitor alarm starts the rollback."""

from __future__ import annotations

from collections.abc import Callable

from noa_core.events.interface import Event

ROLLBACK_TRIGGERS = frozenset({"deploy.failed", "monitor.alarm", "canary.failed"})


class RollbackFeedback:
    name = "rollback-feedback"

    def __init__(self, start_rollback: Callable[[str, str], str]) -> None:
        self._start = start_rollback

    def handle(self, event: Event) -> str:
        if event.kind not in ROLLBACK_TRIGGERS:
            return "skipped: not a rollback trigger"
        if event.payload.get("outcome") == "rolled_back":
            return "skipped: already rolled back"
        app = str(event.payload.get("app") or event.subject)
        env = str(event.payload.get("env") or "production")
        run = self._start(app, env)
        return f"ok: rollback {run}"
