"""``noa.<kind>.recorded``: the Prefect event that accompanies a CL tree entry.

One shape for every recorder (the flows' change-log step in ``tasks/changelog.py``, the deploy
controller's releases and rollbacks in :mod:`noa_core.deploy.releases`), so one Prefect automation
trigger matches them all: the event ``noa.<kind>.recorded`` on the resource ``noa.<kind>.<subject>``,
related to the current flow run (if any); only scalar payload fields travel, plus ``cl_entry``, the
CL tree entry id that points at the rest.

Building the event needs no Prefect; :func:`emit_recorded` sends it through :mod:`noa_core.events.prefect_bridge`,
which imports Prefect only then.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from noa_core.events.interface import Event, Severity
from noa_core.events.prefect_bridge import PrefectEventSubscriber, current_flow_run_id

MAX_SCALAR_CHARS = 300
FAILED_OUTCOMES = ("failed", "rolled_back")


def recorded_event(kind: str, subject: str, payload: Mapping[str, Any], entry_id: str | None, *,
                   run_id: str | None = None) -> Event:
    """The NOA event of one recorded entry (``kind`` ``<kind>.recorded``); an ``error`` when the
    payload's ``outcome`` (or ``status``) says it failed or was rolled back, else ``info``."""
    scalars = {k: v for k, v in payload.items()
               if isinstance(v, (str, int, float, bool)) and len(str(v)) <= MAX_SCALAR_CHARS}
    outcome = str(payload.get("outcome") or payload.get("status") or "")
    severity: Severity = "error" if outcome in FAILED_OUTCOMES else "info"
    return Event(kind=f"{kind}.recorded", subject=subject, severity=severity,
                 payload={**scalars, "cl_entry": entry_id}, run_id=run_id)


def emit_recorded(kind: str, subject: str, payload: Mapping[str, Any], entry_id: str | None) -> str:
    """Send :func:`recorded_event` to Prefect; ``ok``, ``skipped: ...`` or ``error: ...``, never raises
    (an event is a notification, not the record)."""
    event = recorded_event(kind, subject, payload, entry_id, run_id=current_flow_run_id())
    try:
        return PrefectEventSubscriber(enabled=True).handle(event)
    except Exception as exc:  # noqa: BLE001
        return f"error: {type(exc).__name__}"


__all__ = ["current_flow_run_id", "emit_recorded", "recorded_event"]
