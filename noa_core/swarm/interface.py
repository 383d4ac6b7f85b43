"""The swarm toolchain port: one toolchain per language, one result per check.

Each toolchain (:mod:`~noa_core.swarm.python`, :mod:`~noa_core.swarm.rust`,
:mod:`~noa_core.swarm.go`) runs its checks (tests, lint, static analysis, benchmarks) on
a project tree, every command isolated (:func:`noa_core.isolation.run_isolated`: no
network, its own work copy, limits), and returns frozen results. A check's ``status``
keeps three outcomes apart, as pip-audit does:

* ``ok``      - the tool ran and reported no problem;
* ``failed``  - the tool ran and reported problems, or could not do its job (the
                reason says which);
* ``skipped`` - nothing ran: the tool is not installed (``"skipped: cargo not
                installed"``), the project has nothing for it, ... Never "passed".

Results go through the hive (:mod:`noa_core.swarm.hive`) keyed by tool, tool version,
the project's content hash and the command, so identical work is done once.
"""

from __future__ import annotations

import os
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from noa_core.config import ExecLimits
from noa_core.errors import NoaError
from noa_core.validation.counts import TestCounts

if TYPE_CHECKING:  # pragma: no cover
    from noa_core.swarm.hive import Hive

__all__ = [
    "CheckResult",
    "Status",
    "SwarmContext",
    "SwarmError",
    "SwarmReport",
    "Toolchain",
    "ToolchainError",
    "counts_from_dict",
    "default_agent",
    "overall_status",
    "skipped_result",
    "through_hive",
]

Status = Literal["ok", "failed", "skipped"]
STATUSES: tuple[Status, ...] = ("ok", "failed", "skipped")


class SwarmError(NoaError):
    """Base class of the swarm port's errors."""


class ToolchainError(SwarmError):
    """A toolchain could not run a check for a reason that is NOA's or the host's."""


def default_agent() -> str:
    """``host:pid:thread``: who computed a result (kept in the hive)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


def counts_from_dict(d: Mapping[str, Any] | None) -> TestCounts | None:
    if not d:
        return None
    known = {k: d[k] for k in TestCounts.__dataclass_fields__ if k in d and k != "other"}
    other = d.get("other") or {}
    return TestCounts(**known, other=tuple((str(k), int(v)) for k, v in dict(other).items()))


@dataclass(frozen=True)
class CheckResult:
    """One check of one toolchain on one tree (tests, lint, check, clippy, vet, bench)."""

    toolchain: str
    check: str
    status: Status
    reason: str = ""
    tool: str = ""
    tool_version: str = ""
    command: tuple[str, ...] = ()
    counts: TestCounts | None = None  # tests only, read from the tool's own closing lines
    findings: int = 0  # lint / static-analysis findings (warnings included)
    data: Mapping[str, Any] = field(default_factory=dict)  # JSON-safe details (rules, shards, benchmarks)
    seconds: float = 0.0
    isolation: str = ""
    cached: bool = False  # taken from the hive, not computed by this run
    key: str = ""  # the hive key
    computed_by: str = ""  # the agent that computed it

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")

    @property
    def one_line(self) -> str:
        """e.g. ``python/tests: ok: 12 passed in 0.31s`` or ``rust/test: skipped: cargo not installed``."""
        what = self.counts.summary_line if self.counts else (f"{self.findings} findings" if self.findings else "")
        parts = [p for p in (what, self.reason) if p]
        return f"{self.toolchain}/{self.check}: {self.status}" + "".join(f": {p}" if i == 0 else f" ({p})"
                                                                       for i, p in enumerate(parts))

    def as_dict(self) -> dict[str, Any]:
        return {
            "toolchain": self.toolchain, "check": self.check, "status": self.status, "reason": self.reason,
            "tool": self.tool, "tool_version": self.tool_version, "command": list(self.command),
            "counts": self.counts.as_dict() if self.counts else None, "findings": self.findings,
            "data": dict(self.data), "seconds": round(self.seconds, 3), "isolation": self.isolation,
            "cached": self.cached, "key": self.key, "computed_by": self.computed_by,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CheckResult":
        return cls(
            toolchain=str(d["toolchain"]), check=str(d["check"]), status=d["status"], reason=str(d.get("reason", "")),
            tool=str(d.get("tool", "")), tool_version=str(d.get("tool_version", "")),
            command=tuple(d.get("command") or ()), counts=counts_from_dict(d.get("counts")),
            findings=int(d.get("findings", 0)), data=dict(d.get("data") or {}), seconds=float(d.get("seconds", 0.0)),
            isolation=str(d.get("isolation", "")), cached=bool(d.get("cached", False)), key=str(d.get("key", "")),
            computed_by=str(d.get("computed_by", "")),
        )


def overall_status(statuses: Sequence[str]) -> Status:
    """failed if any failed; skipped if nothing ran (or nothing at all); else ok."""
    if any(s == "failed" for s in statuses):
        return "failed"
    if not statuses or all(s == "skipped" for s in statuses):
        return "skipped"
    return "ok"


@dataclass(frozen=True)
class SwarmReport:
    """What one language swarm found: its checks, and their combined status."""

    language: str
    status: Status
    results: tuple[CheckResult, ...] = ()
    reason: str = ""
    seconds: float = 0.0
    agent: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)  # where it ran (flow run, worker, pool)

    @classmethod
    def of(cls, language: str, results: Sequence[CheckResult], *, reason: str = "", seconds: float = 0.0,
           agent: str = "") -> "SwarmReport":
        status = overall_status([r.status for r in results])
        if not reason and status == "skipped" and results:
            reason = "; ".join(dict.fromkeys(r.reason for r in results if r.reason))
        return cls(language=language, status=status, results=tuple(results), reason=reason, seconds=seconds,
                   agent=agent)

    @property
    def counts(self) -> TestCounts | None:
        total: TestCounts | None = None
        for r in self.results:
            if r.counts is not None:
                total = r.counts if total is None else total + r.counts
        return total

    def as_dict(self) -> dict[str, Any]:
        counts = self.counts
        return {"language": self.language, "status": self.status, "reason": self.reason,
                "seconds": round(self.seconds, 3), "agent": self.agent, "extra": dict(self.extra),
                "counts": counts.as_dict() if counts else None,
                "results": [r.as_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SwarmReport":
        return cls(language=str(d["language"]), status=d["status"], reason=str(d.get("reason", "")),
                   seconds=float(d.get("seconds", 0.0)), agent=str(d.get("agent", "")),
                   extra=dict(d.get("extra") or {}),
                   results=tuple(CheckResult.from_dict(r) for r in d.get("results", [])))

    def with_extra(self, **extra: Any) -> "SwarmReport":
        return replace(self, extra={**self.extra, **extra})


@dataclass(frozen=True)
class SwarmContext:
    """Where and how a toolchain runs: work copies, limits, the hive, and who is running."""

    work_parent: Path
    limits: ExecLimits = field(default_factory=lambda: ExecLimits())
    hive: "Hive | None" = None
    agent: str = field(default_factory=default_agent)
    hide_paths: tuple[str, ...] = ()  # hidden from the dropped code (NOA_HOME when it is not $NOA_HOME)
    project: str = ""  # the name durations and flaky tests are recorded under
    shards: int = 1  # test shards (Python)
    reuse: bool = True  # take identical work from the hive instead of doing it again
    content_hash: str | None = None  # of the tree; computed when absent
    max_parallel: int | None = None  # shards run at once (default: shards)
    home: Path | None = None  # NOA_HOME: where project environments are cached (default: work_parent)

    def for_agent(self, agent: str) -> "SwarmContext":
        return replace(self, agent=agent)


def skipped_result(toolchain: str, check: str, reason: str, *, tool: str = "", tool_version: str = "") -> CheckResult:
    return CheckResult(toolchain=toolchain, check=check, status="skipped", reason=reason, tool=tool,
                       tool_version=tool_version)


def _cacheable(payload: Mapping[str, Any]) -> bool:
    # A skipped check says something about this host, not the code; a flaky outcome is not
    # a function of the content: both are worked out again next time.
    return payload.get("status") in ("ok", "failed") and not payload.get("data", {}).get("uncacheable")


def through_hive(ctx: SwarmContext, *, toolchain: str, check: str, tool: str, tool_version: str,
                 command: Sequence[str], compute: Callable[[], CheckResult], content_hash: str,
                 extra_key: Sequence[str] = ()) -> CheckResult:
    """Reuse the hive's result for (tool, version, content hash, command), or compute and store it.

    Concurrent agents asking for the same key wait for the first one (a lease in the hive)
    instead of doing the work twice. Without a hive, just compute.
    """
    if ctx.hive is None:
        return compute()
    from noa_core.swarm.hive_keys import ResultMeta, result_key

    key = result_key(tool, tool_version, content_hash, [*command, *extra_key], kind=f"{toolchain}/{check}")
    meta = ResultMeta(toolchain=toolchain, check=check, tool=tool, tool_version=tool_version,
                      content_hash=content_hash, command=tuple(command))

    def run() -> dict[str, Any]:
        res = compute()
        return replace(res, key=key, computed_by=res.computed_by or ctx.agent).as_dict()

    # wait up to the check's own time limit for another agent's identical run
    payload, cached = ctx.hive.run_once(key, run, meta=meta, agent=ctx.agent, reuse=ctx.reuse,
                                        lease_s=float(ctx.limits.wall_seconds) * 2 + 60, cacheable=_cacheable)
    result = CheckResult.from_dict(payload)
    return replace(result, cached=cached, key=key)


class Toolchain(ABC):
    """One language's toolchain. Subclasses: one file each (python.py, rust.py, go.py)."""

    name: ClassVar[str]
    checks: ClassVar[tuple[str, ...]]

    @abstractmethod
    def detect(self, tree: Path) -> bool:
        """Whether ``tree`` is (also) a project of this language."""

    @abstractmethod
    def tool_versions(self) -> dict[str, str | None]:
        """Each tool this toolchain uses and its version; None when it is not installed."""

    @abstractmethod
    def run(self, tree: Path, ctx: SwarmContext) -> SwarmReport:
        """Run every check of this toolchain on ``tree`` (isolated) and report."""

    @staticmethod
    def not_installed(tool: str) -> str:
        """The reason of a check whose tool is missing (rendered ``skipped: <tool> not installed``)."""
        return f"{tool} not installed"
