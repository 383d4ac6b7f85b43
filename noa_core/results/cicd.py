"""``cicd_pipeline``'s result: :class:`CicdReport` (what ``noa cicd run --json`` prints)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from noa_core.results.base import FlowResult, ResultPart

__all__ = ["CicdReport", "CicdStage"]


class CicdStage(ResultPart):
    """One stage of the CI/CD run: trigger, validate, build, test, deploy, monitor, record, report."""

    name: str = Field(description="the stage")
    status: str = Field(description="passed, failed or skipped (reason then starts with 'skipped:')")
    duration_s: float = Field(0.0, description="seconds the stage took")
    details: dict[str, Any] = Field(default_factory=dict, description="the stage's own facts (fetched commit, "
                                                                      "schema errors and lint, artifacts, test "
                                                                      "counts, deploy result, health probes, CL "
                                                                      "tree entry, GitHub reports)")
    gate: str | dict[str, Any] = Field("", description="the gate the stage was judged by (a seven-stage gate: rule, "
                                                      "passed, value, threshold, reason), '' when it has none")
    reason: str = Field("", description="why it failed or was skipped")


class CicdReport(FlowResult):
    """One commit through trigger -> validate -> build -> test -> deploy -> monitor -> CL tree."""

    pipeline: str = Field("cicd_pipeline", description="always cicd_pipeline")
    flow_run_id: str = Field(description="the Prefect flow run (or a random id outside Prefect)")
    project: str = Field(description="the project (noa.yaml name, else the app or the tree's name)")
    source: str = Field(description="the source fetched")
    commit: str | None = Field(None, description="the commit built")
    ref: str | None = Field(None, description="the git ref it came from, when given")
    env: str = Field(description="staging or production")
    status: str = Field(description="passed, or failed when any stage failed")
    outcome: str = Field(description="promoted, rolled_back, failed or 'passed (not deployed)'")
    failed_stage: str | None = Field(None, description="the first stage that failed")
    artifacts: list[dict[str, Any]] = Field(default_factory=list, description="built artifacts: name, kind, "
                                                                              "path, blake3/sha256, size")
    release: Any = Field(None, description="the release deployed (its id, or its facts)")
    stages: list[CicdStage] = Field(description="the stages, in order")
    seconds: float = Field(description="wall time")
