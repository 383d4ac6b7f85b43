"""What a stage of the unified workflow says: its status, how long it took, why, and its gate.

``status`` is ``passed``, ``failed`` or ``skipped``. A stage whose checks did not run
(no benchmarks, no deploy target, an earlier gate failed) is ``skipped`` and its details
start with ``"skipped: "``; it is never reported as ``passed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["STAGES", "Gate", "StageResult", "StageStatus", "skipped_stage", "verdict_of"]

StageStatus = Literal["passed", "failed", "skipped"]
STAGE_STATUSES: tuple[StageStatus, ...] = ("passed", "failed", "skipped")

#: the seven stages, in order (the seed's Unified Workflow)
STAGES: tuple[str, ...] = ("analysis", "testing", "performance", "security", "build", "staging", "production")


@dataclass(frozen=True)
class Gate:
    """One gate: the rule, the value measured, the threshold, and whether it held.

    ``passed`` is None when there was nothing to judge (the stage was skipped)."""

    rule: str
    passed: bool | None
    value: Any = None
    threshold: Any = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "passed": self.passed, "value": self.value, "threshold": self.threshold,
                "reason": self.reason}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Gate:
        d = d or {}
        return cls(rule=str(d.get("rule", "")), passed=d.get("passed"), value=d.get("value"),
                   threshold=d.get("threshold"), reason=str(d.get("reason", "")))


@dataclass(frozen=True)
class StageResult:
    name: str
    status: StageStatus
    details: str
    gate: Gate
    duration_s: float = 0.0
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in STAGES:
            raise ValueError(f"unknown stage {self.name!r}")
        if self.status not in STAGE_STATUSES:
            raise ValueError(f"status must be one of {STAGE_STATUSES}, not {self.status!r}")
        if self.status == "skipped" and not self.details.startswith("skipped: "):
            raise ValueError("a skipped stage's details start with 'skipped: '")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "duration_s": round(self.duration_s, 3),
                "details": self.details, "gate": self.gate.as_dict(), "data": dict(self.data)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StageResult:
        return cls(name=d["name"], status=d["status"], details=d.get("details", ""),
                   gate=Gate.from_dict(d.get("gate")), duration_s=float(d.get("duration_s", 0.0)),
                   data=dict(d.get("data") or {}))


def skipped_stage(name: str, why: str, **data: Any) -> StageResult:
    """A stage that did not run; ``why`` without the ``skipped:`` prefix."""
    return StageResult(name=name, status="skipped", details=f"skipped: {why}",
                       gate=Gate(rule=name, passed=None, reason=why), data=data)


def verdict_of(stages: Sequence[Mapping[str, Any]]) -> str:
    """``failed`` when any stage failed, else ``passed``."""
    return "failed" if any(s.get("status") == "failed" for s in stages) else "passed"
