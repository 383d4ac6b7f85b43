"""The result-reporter port: where a pipeline's verdict is published outside NOA.

A reporter publishes one pipeline result (``{"stages": [...], "verdict": ...}``) for one
commit and answers, per channel, ``ok`` (posted, with what the service returned),
``skipped`` (not attempted or refused for a reason that is not a failure of NOA, e.g. no
pull request number, a token that may not create check runs) or ``failed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from noa_core.errors import NoaError

ChannelStatus = Literal["ok", "skipped", "failed"]


class IntegrationError(NoaError):
    """An outside service refused a call or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ChannelOutcome:
    channel: str
    status: ChannelStatus
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "status": self.status, "reason": self.reason, "data": self.data}


@dataclass(frozen=True)
class ReportOutcome:
    target: str
    channels: tuple[ChannelOutcome, ...]

    @property
    def ok(self) -> bool:
        return all(c.status != "failed" for c in self.channels)

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "ok": self.ok, "channels": [c.as_dict() for c in self.channels]}


class ResultReporter(Protocol):
    def report(self, result: Mapping[str, Any]) -> ReportOutcome: ...
