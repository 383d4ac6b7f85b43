"""Results of the seven stage flows (:class:`StageReport`), of ``unified_workflow``
(:class:`WorkflowReport`) and of ``error_handling`` (:class:`ErrorHandlingReport`).

The stages' domain result stays the frozen dataclass :class:`noa_core.stages.result.StageResult`;
:meth:`StageReport.from_domain` turns it into the model at the flow edge.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from noa_core.results.base import FlowResult, ResultPart
from noa_core.stages.result import StageResult

__all__ = ["ErrorHandlingReport", "GateReport", "StageReport", "WorkflowReport"]

StageName = Literal["analysis", "testing", "performance", "security", "build", "staging", "production"]
StageStatus = Literal["passed", "failed", "skipped"]


class GateReport(ResultPart):
    """A stage's gate: the rule, the value measured, the threshold, and whether it held."""

    rule: str = Field(description="the rule, e.g. 'coverage >= 80'")
    passed: bool | None = Field(description="held, failed, or null when there was nothing to judge (skipped)")
    value: Any = Field(None, description="the value measured")
    threshold: Any = Field(None, description="the threshold from noa.yaml's gates")
    reason: str = Field("", description="why it failed or was skipped")


class StageReport(FlowResult):
    """One of the seven stages (a ``*_stage`` flow) and its gate."""

    name: StageName = Field(description="the stage")
    status: StageStatus = Field(description="passed, failed or skipped (details then start with 'skipped: ')")
    duration_s: float = Field(0.0, description="wall seconds (inside the pipeline: with retries; "
                                               "data.work_s is the stage's own time)")
    details: str = Field("", description="what happened, in one line")
    gate: GateReport = Field(description="the gate the stage was judged by")
    data: dict[str, Any] = Field(default_factory=dict, description="the stage's own figures (counts, "
                                                                   "findings, artifacts, deploy result, "
                                                                   "change_log, flow_run_id, attempts, "
                                                                   "error_handling)")

    @classmethod
    def from_domain(cls, result: StageResult, **data: Any) -> StageReport:
        """The model of a domain :class:`StageResult`, with ``data`` added to its data."""
        doc = result.as_dict()
        doc["data"] = {**doc["data"], **data}
        return cls.model_validate(doc)


class ErrorHandlingReport(FlowResult):
    """A failed stage handled: logged, recorded in the change log, alerted, and rolled back when critical."""

    model_config = ConfigDict(extra="forbid")

    stage: str = Field(description="the stage that failed")
    logged: bool = Field(True, description="the failure was logged")
    recoverable: bool = Field(description="the error was of a kind that retries can fix")
    attempts: int = Field(description="attempts made")
    critical: bool = Field(description="a critical stage (production): a rollback follows")
    change_log: Any = Field(None, description="the change-log entry of the alert")
    alert: dict[str, Any] = Field(description="how the alert went: via (block or log), status, reason")
    action: str = Field(description="rollback or mark failed")
    status: str = Field(description="how the action ended: the rollback's outcome, done, skipped, failed")
    reason: str | None = Field(None, description="why, when the action was skipped or failed")
    result: dict[str, Any] | None = Field(None, description="the rollback's result (a RollbackReport)")


class WorkflowReport(FlowResult):
    """The seven stages on one project, behind their gates (``unified_workflow``)."""

    project: str = Field(description="the project (noa.yaml name)")
    project_dir: str = Field(description="the project's tree")
    verdict: Literal["passed", "failed"] = Field(description="failed when any stage failed")
    deployed: bool = Field(description="the production stage passed")
    stopped_by: str | None = Field(None, description="the stage whose failed gate stopped the later ones")
    stages: list[StageReport] = Field(description="the seven stages, in order")
    gates: dict[str, Any] = Field(default_factory=dict, description="the gates used (noa.yaml gates:)")
    flow_run_id: str = Field(description="the Prefect flow run (or a random id outside Prefect)")
    seconds: float = Field(description="wall time")
    report_path: str | None = Field(None, description="NOA_HOME/reports/unified-<run>.json")
