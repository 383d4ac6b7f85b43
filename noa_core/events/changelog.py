"""Change-log logger: events that change the workspace become CL tree entries (contract 1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from noa_core.events.interface import Event

if TYPE_CHECKING:
    from noa_core.config import NoaSettings

try:
    from noa_core.cltree import record_change as _record_change
except ImportError:  # CL tree not available yet
    _record_change = None  # type: ignore[assignment]

CL_KINDS = frozenset({"drop", "merge", "pipeline", "stage", "build", "release", "rollback", "backup", "registry",
                      "alert"})
RecordChange = Callable[["NoaSettings", str, str, Mapping[str, Any]], Any]


def cltree_recorder() -> RecordChange | None:
    """``noa_core.cltree.record_change``, or None when the CL tree is not available."""
    return _record_change


class ChangeLogSubscriber:
    """Records events whose family is a CL tree kind; ``deploy.*`` events are recorded as ``release``.

    Only final facts are recorded (``*.submitted`` / ``*.started`` are not changes yet).
    """

    name = "changelog"

    def __init__(self, settings: NoaSettings, record: RecordChange | None = None) -> None:
        self.settings = settings
        self._record = record if record is not None else cltree_recorder()

    @staticmethod
    def cl_kind(event: Event) -> str | None:
        family = "release" if event.family == "deploy" else event.family
        if family not in CL_KINDS:
            return None
        if event.kind.endswith((".submitted", ".started", ".requested")):
            return None
        return family

    def handle(self, event: Event) -> str:
        kind = self.cl_kind(event)
        if kind is None:
            return "skipped: not a change"
        if self._record is None:
            return "skipped: CL tree not available"
        payload = {"event": event.kind, "severity": event.severity, "run_id": event.run_id, **event.payload}
        self._record(self.settings, kind, event.subject[:300] or "-", payload)
        return "ok"
