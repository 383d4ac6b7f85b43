"""The swarms' results: :class:`SwarmSummary` of the ``swarm`` flow (what ``noa swarm run
--json`` prints and ``NOA_HOME/reports/swarm-<run>.json`` holds) and
:class:`LanguageSwarmReport` of each language swarm flow (``python_swarm``, ``rust_swarm``,
``go_swarm``, ``javascript_swarm``: what a run of their deployments returns).

Inside, a language swarm's report is the frozen dataclass
:class:`noa_core.swarm.interface.SwarmReport`; the master flow aggregates them
(:func:`noa_core.swarm.summary.aggregate_reports`) into the summary, validated at the flow edge.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from noa_core.results.base import FlowResult

__all__ = ["LanguageSwarmReport", "SwarmSummary"]


class SwarmSummary(FlowResult):
    """The language swarms' work on one project, aggregated: status, test counts, every check."""

    model_config = ConfigDict(extra="allow")  # the swarm package may add keys before this model names them

    project: str = Field(description="the project")
    project_dir: str = Field(description="the tree the swarms worked on")
    content_hash: str = Field(description="content hash of the tree (the hive's key for reuse)")
    mode: str = Field(description="embedded (in process) or distributed (work pools)")
    run_id: str = Field("", description="the master flow run")
    status: str = Field(description="failed if any swarm failed; skipped if nothing ran; else ok")
    languages: list[str] = Field(default_factory=list, description="the language swarms that ran")
    counts: dict[str, Any] | None = Field(None, description="test counts of all swarms together: passed, failed, "
                                                            "errors, skipped, subtests apart, summary_line")
    counts_line: str = Field("", description="those counts in one line")
    checks: int = Field(0, description="checks run by all swarms")
    cached_checks: int = Field(0, description="checks taken from the hive instead of run again")
    swarms: dict[str, dict[str, Any]] = Field(default_factory=dict,
                                              description="per language: status, reason, seconds, agent, extra "
                                                          "(flow run, worker, pool), counts, results (each check)")
    hive: dict[str, Any] = Field(default_factory=dict, description="the hive's knowledge before the run and its "
                                                                   "figures after")
    seconds: float = Field(0.0, description="wall time")
    report_path: str | None = Field(None, description="NOA_HOME/reports/swarm-<run>.json")


class LanguageSwarmReport(FlowResult):
    """One language swarm's work on one project: its checks (tests, lint, build checks) and their status."""

    language: str = Field(description="python, rust, go or javascript")
    status: str = Field(description="ok, failed, error or skipped: the worst of its checks' statuses")
    reason: str = Field("", description="why it was skipped or could not run (empty when it ran)")
    seconds: float = Field(0.0, description="wall time of the swarm flow run")
    agent: str = Field("", description="the agent that ran it (flow name / run id)")
    extra: dict[str, Any] = Field(default_factory=dict, description="where it ran: flow run, worker, work pool, "
                                                                   "content hash")
    counts: dict[str, Any] | None = Field(None, description="test counts of its checks together: passed, failed, "
                                                            "errors, skipped, summary_line (None: no tests ran)")
    results: list[dict[str, Any]] = Field(default_factory=list,
                                          description="each check: name, status, reason, counts, seconds, log")
