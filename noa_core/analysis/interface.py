"""The analyzer port.

An analyzer looks at a received source tree (read-only) and returns an
:class:`AnalyzerResult`. ``status`` keeps three outcomes apart, as pip-audit does:

* ``ok``      - the analyzer checked what it is responsible for; ``findings`` is complete.
* ``unknown`` - it ran but could not check some or all of it (offline, tool failed...);
                the reason says what was not checked. Never reported as clean.
* ``skipped`` - it did not apply or its tool is not installed; the reason says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from noa_core.errors import NoaError

Status = Literal["ok", "unknown", "skipped"]
Severity = Literal["info", "low", "medium", "high", "critical"]


class AnalyzerError(NoaError):
    """An analyzer failed in a way that is a bug or an environment problem."""


@dataclass(frozen=True)
class Finding:
    analyzer: str
    rule: str
    severity: Severity
    message: str
    path: str | None = None
    line: int | None = None
    #: why the finding got its severity (e.g. "entropy-only match in a test file: informational")
    reason: str = ""
    #: waived by the project's own allow-list; reported, never gating
    allowed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"analyzer": self.analyzer, "rule": self.rule, "severity": self.severity,
                "message": self.message, "path": self.path, "line": self.line,
                "reason": self.reason, "allowed": self.allowed}


@dataclass(frozen=True)
class AnalyzerResult:
    name: str
    status: Status
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "reason": self.reason,
                "data": self.data, "findings": [f.as_dict() for f in self.findings],
                "seconds": round(self.seconds, 3)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AnalyzerResult":
        return cls(name=d["name"], status=d["status"], reason=d.get("reason", ""),
                   data=d.get("data", {}), findings=tuple(Finding(**f) for f in d.get("findings", [])),
                   seconds=d.get("seconds", 0.0))


def analyzer_data(results: "Mapping[str, AnalyzerResult]", name: str) -> dict[str, Any]:
    """What analyzer ``name`` found; empty when it did not run or was skipped."""
    result = results.get(name)
    return dict(result.data) if result is not None and result.status != "skipped" else {}


@runtime_checkable
class Analyzer(Protocol):
    """One analyzer. ``name`` is stable: it keys caches and the report."""

    name: str
    version: str

    def analyze(self, tree: Path) -> AnalyzerResult: ...
