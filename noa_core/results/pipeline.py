"""``noa_pipeline``'s result: :class:`PipelineReport` (what ``noa pipeline --json`` and
``noa demo --json`` print)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from noa_core.results.base import FlowResult
from noa_core.results.stages import StageReport

__all__ = ["PipelineReport"]


class PipelineReport(FlowResult):
    """One source end to end: code drop -> sandbox merge -> swarm -> the seven stages."""

    pipeline_run_id: str = Field(description="the Prefect flow run of the pipeline")
    source: str = Field(description="the SOURCE as given")
    project: str = Field(description="the project it became")
    verdict: Literal["passed", "failed", "unknown"] = Field(
        description="passed when merged and every stage passed; unknown when the drop was held because its "
                    "tests could not be run (no toolchain, dependencies out of reach); else failed")
    deployed: bool = Field(description="the production stage passed")
    stages: list[StageReport] = Field(description="the seven stages, in order (all skipped, the first "
                                                  "failed, when the merge was refused)")
    steps: dict[str, dict[str, Any]] = Field(description="summaries of code_drop (drop_id, sandbox, confidence, "
                                                         "tests, report_path), sandbox_merge (outcome, message, "
                                                         "report_path) and swarm (status, mode, counts, "
                                                         "report_path, workers)")
    unified_run_id: str | None = Field(None, description="the unified_workflow flow run, when it ran")
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per step, and total")
    report_path: str | None = Field(None, description="NOA_HOME/reports/pipeline-<run>.json")
    change_log: Any = Field(None, description="the change-log entry of the run")
    ui_url: str | None = Field(None, description="the run's page in the Prefect UI (set by `noa pipeline`, "
                                                 "which knows the server)")
