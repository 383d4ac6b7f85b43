"""The CL tree arrow of the sync flows (code_drop, sandbox_merge): one change-log entry per run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect import get_run_logger, task

from noa_core.config import NoaSettings


def record_step(settings: NoaSettings, kind: str, subject: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """One CL tree entry plus its Prefect event ``noa.<kind>.recorded`` (:mod:`noa_core.events.recorded`):
    ``{"status": "recorded", "id", "seq", "event"}``, or
    ``{"status": "failed", "reason"}`` (logged, never raised: the change log must not sink the step)."""
    from noa_core.cltree import record_change
    from noa_core.events.recorded import emit_recorded

    try:
        entry = record_change(settings, kind, subject, dict(payload))
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        get_run_logger().warning("CL tree: %s entry for %s not recorded: %s", kind, subject, exc)
        return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:300]}
    return {"status": "recorded", "id": entry.id, "seq": entry.seq,
            "event": emit_recorded(kind, subject, payload, entry.id)}


@task(name="change-log", retries=2, retry_delay_seconds=0.5)
def change_log_task(settings: NoaSettings, kind: str, subject: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Append ``kind``/``subject`` to the CL tree; returns ``{"status", "id", "seq"}``.

    A database that refuses the write is retried; the flow's own outcome does not depend on it
    (the report already exists), so a last failure is logged and returned, not raised."""
    out = record_step(settings, kind, subject, payload)
    if out["status"] != "recorded":
        return out
    # the seed's write flow: a write through NOA ends with an asynchronous backup (NOA_BACKUP_ON_WRITE=1)
    from noa_core.backup.trigger import after_write

    try:
        started = after_write(settings)
    except Exception as exc:  # noqa: BLE001 - a backup that cannot start must not fail the write
        get_run_logger().warning("asynchronous backup not started: %s", exc)
    else:
        if started is not None:
            out["backup"] = "scheduled"
    return out
