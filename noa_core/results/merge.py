"""``sandbox_merge``'s result: :class:`MergeReport` (what ``noa merge --json`` prints).

The merge domain keeps its frozen dataclass :class:`noa_core.sandbox.merge.MergeReport`
(journal, verdict files, markdown); :meth:`MergeReport.from_domain` turns it into this model
at the flow edge, under the same name.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from noa_core.results.base import FlowResult

__all__ = ["MergeReport"]


class MergeReport(FlowResult):
    """One sandbox merge: conflict check, merge into D, validation; failing drops held in their sandbox."""

    model_config = ConfigDict(extra="allow")  # the merge queue may add keys before this model names them

    run_id: str = Field(description="id of this merge run")
    outcome: str = Field(description="merged, partially merged, nothing to merge, conflict, validation failed, "
                                     "rolled back or concurrent update")
    merged: bool = Field(description="D moved")
    requested: list[str] = Field(description="the sandboxes asked for")
    to_merge: list[str] = Field(description="the sandboxes that were ahead of D and tried")
    integration_head_before: str = Field(description="D's commit before")
    integration_head_after: str = Field(description="D's commit after (equal to before when D did not move)")
    candidate: str | None = Field(None, description="the integration candidate commit that was validated")
    conflicts: list[dict[str, Any]] = Field(default_factory=list, description="conflicting paths: sandboxes, path, "
                                                                              "kind")
    matrix: list[dict[str, str]] = Field(default_factory=list, description="pairwise conflict matrix")
    conflict_check: dict[str, Any] = Field(default_factory=dict, description="the whole conflict check")
    validation: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per project: the integration "
                                                                                    "candidate's test run")
    culprit: list[str] | None = Field(None, description="the sandboxes whose drops made the validation fail")
    culprit_reason: str | None = Field(None, description="why they are the culprit")
    bisection: list[dict[str, Any]] = Field(default_factory=list, description="the probes run to find the culprit")
    per_sandbox: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per sandbox: status, "
                                                                                     "message, files")
    mergeable: list[str] = Field(default_factory=list, description="the sandboxes that merge cleanly")
    suggestion: str | None = Field(None, description="what to do next, when the merge was refused")
    message: str = Field(description="what happened, in one line")
    recovered: list[str] = Field(default_factory=list, description="what an interrupted earlier merge left and "
                                                                   "was restored")
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per step, and total")
    started: str = Field("", description="start time (ISO 8601)")
    finished: str = Field("", description="end time (ISO 8601)")
    report_path: str | None = Field(None, description="NOA_HOME/reports/merge-<run>.json")
    flow_run_id: str | None = Field(None, description="the Prefect flow run")
    cltree: dict[str, str] = Field(default_factory=dict, description="the change-log entry: status, reason")
    drops: dict[str, list[dict[str, Any]]] = Field(default_factory=dict,
                                                   description="per drop: merged [sandbox, drop_id, project, "
                                                               "commit, superseded], held [... and reason]")
    exit_code: int = Field(description="0 when merged or nothing to merge, else 1 (what `noa merge` exits with)")

    @classmethod
    def from_domain(cls, report: Any) -> MergeReport:
        """The model of the merge domain's report (anything with ``as_dict()``, or its dict)."""
        return cls.model_validate(report.as_dict() if hasattr(report, "as_dict") else dict(report))
