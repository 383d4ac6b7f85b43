"""``unified_workflow``: the seed's Unified Workflow - seven stage subflows behind gates.

analysis -> testing -> performance -> security -> build -> staging -> production. Gates
come from the project's ``noa.yaml`` (``gates:``; defaults in
:class:`noa_core.manifest.GatesConfig`). A failed gate goes through the error-handling
flow and stops the later stages, which report ``skipped: earlier gate failed (<stage>)``.
The run leaves a markdown summary artifact and ``NOA_HOME/reports/unified-<run>.json``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact

from flows.error_handling import guarded_stage
from flows.stages import STAGE_FLOWS, _settings, _tree, project_manifest
from noa_core.observability.logs import logs_in_home
from noa_core.results import StageReport, WorkflowReport
from noa_core.stages.result import STAGES, skipped_stage, verdict_of
from tasks.reporting import artifact_key
from tasks.stages import write_json

__all__ = ["render_summary", "unified_workflow"]


def render_summary(title: str, stages: list[StageReport], verdict: str, extra: list[str] | None = None) -> str:
    icon = {"passed": "✅", "failed": "❌", "skipped": "⏭️"}
    lines = [f"# {title}: {verdict}", "", *(extra or []), "",
             "| # | stage | status | gate | details | seconds |", "|---|---|---|---|---|---|"]
    for i, s in enumerate(stages, 1):
        lines.append(f"| {i} | {s.name} | {icon.get(s.status, '')} {s.status} | {s.gate.rule} | "
                     f"{s.details.replace('|', '/')[:300]} | {s.duration_s:.2f} |")
    return "\n".join(lines) + "\n"


def _unified_run_name() -> str:
    from prefect.runtime import flow_run

    project = flow_run.parameters.get("project") or str(flow_run.parameters.get("project_dir", "")).rstrip("/")
    return "unified-" + str(project).rsplit("/", 1)[-1][:60]


@flow(name="unified_workflow", flow_run_name=_unified_run_name, log_prints=False)
@logs_in_home
async def unified_workflow(project_dir: str, home: str | None = None, project: str | None = None,
                           drop_report: str | None = None, swarm_report: str | None = None,
                           mode: str = "embedded", shards: int = 2, deploy: bool = True,
                           deploy_options: dict[str, Any] | None = None, alert_block: str | None = None
                           ) -> WorkflowReport:
    """The seven stages on ``project_dir``. ``drop_report`` (a code drop's JSON report) and
    ``swarm_report`` (a swarm run's JSON) let the pipeline hand over what it already did.

    Needs a project tree (with or without ``noa.yaml``; its ``gates:`` decide). A failed gate
    is an outcome (``verdict`` failed, later stages skipped), not an error; raises
    :class:`~noa_core.errors.BadInput` for a missing tree or a bad ``noa.yaml``.
    """
    from prefect.runtime import flow_run

    from noa_core.observability.tracing import trace_run

    t0 = time.perf_counter()
    logger = get_run_logger()
    settings, tree = _settings(home), _tree(project_dir)
    manifest = project_manifest(tree, project)  # a bad noa.yaml: exit 2 before any stage
    name = project or manifest.name
    gates = manifest.gates.model_dump(mode="json")
    run_id = str(flow_run.id) if flow_run.id else uuid.uuid4().hex
    run_dir = settings.layout().ensure().reports / "stages" / run_id
    common = {"project_dir": str(tree), "home": str(settings.home), "project": name}
    stages: list[StageReport] = []
    stopped_by: str | None = None
    for stage in STAGES:
        if stopped_by:
            stages.append(StageReport.from_domain(skipped_stage(stage, f"earlier gate failed ({stopped_by})")))
            continue
        params: dict[str, Any] = dict(common)
        fallback = None
        if stage == "analysis":
            params.update(drop_report=drop_report, gates=gates, run_dir=str(run_dir))
        elif stage == "testing":
            params.update(swarm_report=swarm_report, gates=gates, mode=mode, shards=shards)
            if mode == "distributed":
                async def fallback(**p: Any) -> StageReport:
                    return await STAGE_FLOWS["testing"](**{**p, "swarm_report": None, "mode": "embedded"})
        elif stage == "performance":
            testing = next(s for s in stages if s.name == "testing")
            params.update(swarm_report=testing.data.get("swarm_report") or swarm_report,
                          gates=gates, run_id=run_id)
        elif stage in ("security", "build"):
            params.update(analysis=str(run_dir / "analysis.json"), gates=gates)
        else:
            params.update(deploy=deploy, options=deploy_options)
        with trace_run(run_id):  # the stages' spans form one trace (the pipeline's, when there is one)
            result = await guarded_stage(stage, STAGE_FLOWS[stage], params, project=name, home=str(settings.home),
                                         fallback=fallback, alert_block=alert_block)
        stages.append(result)
        if result.status == "failed":
            stopped_by = stage
            logger.warning("gate of %s failed: the later stages are skipped", stage)
    verdict = verdict_of(stages)
    deployed = any(s.name == "production" and s.status == "passed" for s in stages)
    report = WorkflowReport(project=name, project_dir=str(tree), verdict=verdict, deployed=deployed,
                            stopped_by=stopped_by, stages=stages, gates=gates, flow_run_id=run_id,
                            seconds=round(time.perf_counter() - t0, 3))
    report.report_path = str(write_json(settings.layout().reports / f"unified-{run_id}.json", report.to_json()))
    await acreate_markdown_artifact(
        render_summary(f"Unified workflow: {name}", stages, verdict,
                       [f"- project dir: `{tree}`", f"- gates: `{gates}`",
                        f"- stopped by: {stopped_by or '-'}; deployed: {deployed}"]),
        key=artifact_key("unified", name), description=f"unified workflow {verdict}: {name}")
    return report


def run_unified(**parameters: Any) -> WorkflowReport:
    """Run the workflow from sync code (CLI, tests, bench) without flow heartbeats."""
    import asyncio

    from flows.runtime import in_process_run

    with in_process_run():  # heartbeat off, this process's owner mark on every run (flows/runtime.py)
        return asyncio.run(unified_workflow(**parameters))
