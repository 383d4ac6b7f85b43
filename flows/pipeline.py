"""``noa_pipeline``: the main job for one source, end to end.

code drop (fetch, analyse, score, adapt, land in a sandbox, validate) -> sandbox merge
(the drop's sandbox into D, only if everything passes) -> swarm (the language swarms on
D's copy of the project, embedded or on the work pools' workers) -> the seven stages of
``unified_workflow`` (which deploy to staging and production when a deploy target exists).

The result - ``stages`` (each ``name``, ``status``, ``duration_s``, ``details``) and
``verdict`` - goes to ``NOA_HOME/reports/pipeline-<run>.json``, a markdown artifact and
the CL tree (kind ``pipeline``).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact

from flows.stages import _settings
from flows.unified_workflow import render_summary, unified_workflow
from noa_core.errors import BadInput
from noa_core.observability.logs import logs_in_home
from noa_core.results import PipelineReport, StageReport, WorkflowReport
from noa_core.stages.result import STAGES, skipped_stage
from tasks.reporting import artifact_key
from tasks.stages import change_log_task, write_json

__all__ = ["noa_pipeline", "run_pipeline"]

MODES = ("embedded", "distributed")


def _pipeline_run_name() -> str:
    from prefect.runtime import flow_run

    source = str(flow_run.parameters.get("source", "source"))
    return "pipeline-" + source.rstrip("/").rsplit("/", 1)[-1][:60]


def _project_tree(home: Path, project: str, landed_tree: str | None) -> Path:
    from noa_core.config import HomeLayout
    from noa_core.sandbox.trees import PROJECTS_DIR
    from noa_core.sandbox.sandboxes import Sandbox

    d_tree = HomeLayout(home).sandboxes / Sandbox.D.value / PROJECTS_DIR / project
    if d_tree.is_dir():
        return d_tree
    if landed_tree and Path(landed_tree).is_dir():
        return Path(landed_tree)
    raise FileNotFoundError(f"project {project} is not in the integration sandbox D")


@flow(name="noa_pipeline", flow_run_name=_pipeline_run_name, log_prints=False, persist_result=True)
@logs_in_home
async def noa_pipeline(source: str, home: str | None = None, sandbox: str = "AUTO", use_ai: bool = True,
                       mode: str = "embedded", shards: int = 2, deploy: bool = True,
                       deploy_options: dict[str, Any] | None = None, alert_block: str | None = None,
                       pickup_timeout_s: float = 60.0) -> PipelineReport:
    """code_drop -> sandbox_merge -> swarm -> unified_workflow (seven stages) for SOURCE.

    Needs a Prefect API (the embedded server ``noa`` starts, or ``PREFECT_API_URL``); with
    ``mode="distributed"`` also workers on the swarm work pools (``noa swarm up``). A refused
    merge or a failed gate is an outcome (``verdict`` failed; ``unknown`` when the drop was held
    because its tests could not be run at all), not an error. Raises
    :class:`~noa_core.errors.BadInput` for a bad mode or sandbox, and what ``code_drop`` raises
    for a source it cannot fetch or refuses (``HostileInput``, ``LimitExceeded``).
    """
    from prefect.runtime import flow_run

    from flows.code_drop import code_drop
    from flows.sandbox_merge import sandbox_merge
    from flows.swarm import swarm
    from noa_core.observability.tracing import trace_run
    from noa_core.sandbox.merge import MergeRolledBack

    if mode not in MODES:
        raise BadInput(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if sandbox.upper() not in ("A", "B", "C", "AUTO"):
        raise BadInput(f"sandbox must be A, B, C or auto, not {sandbox!r}")
    t0 = time.perf_counter()
    logger = get_run_logger()
    settings = _settings(home)
    run_id = str(flow_run.id) if flow_run.id else uuid.uuid4().hex
    timings: dict[str, float] = {}
    home_s = str(settings.home)

    t = time.perf_counter()
    drop = code_drop(source=source, sandbox=sandbox.upper(), home=home_s, use_ai=use_ai)  # sync subflow
    timings["code_drop"] = time.perf_counter() - t
    project = drop.project
    steps: dict[str, Any] = {"code_drop": {"drop_id": drop.drop_id, "sandbox": drop.sandbox,
                                           "confidence": drop.confidence, "tests": drop.tests.status,
                                           "report_path": drop.report_path}}

    t = time.perf_counter()
    try:
        merge = sandbox_merge(sandboxes=[drop.sandbox], home=home_s)
    except MergeRolledBack as exc:
        merge = getattr(exc, "report", None) or {"outcome": "rolled back", "message": exc.one_line()}
    timings["sandbox_merge"] = time.perf_counter() - t
    # per drop: this pipeline goes on when its own drop reached D, even if other drops of the sandbox were held
    held_here = [d for d in (merge.get("drops") or {}).get("held", []) if d.get("drop_id") == drop["drop_id"]]
    merged = merge.get("outcome") in ("merged", "partially merged", "nothing to merge") and not held_here
    if held_here and merge.get("outcome") == "partially merged":  # others merged, this one did not
        merge = {**merge, "outcome": "held", "message": f"drop {drop['drop_id']} held in sandbox "
                                                        f"{held_here[0]['sandbox']}: {held_here[0]['reason']}"}
    steps["sandbox_merge"] = {"outcome": merge.get("outcome"), "message": merge.get("message"),
                              "report_path": merge.get("report_path")}

    unified: WorkflowReport | None = None
    if merged:
        tree = _project_tree(settings.home, project, None)
        t = time.perf_counter()
        summary = await swarm(project_dir=str(tree), shards=shards, home=home_s, mode=mode, project=project,
                              pickup_timeout_s=pickup_timeout_s)
        timings["swarm"] = time.perf_counter() - t
        steps["swarm"] = {"status": summary["status"], "mode": summary["mode"], "counts": summary.get("counts_line"),
                          "report_path": summary.get("report_path"),
                          "workers": {lang: (rep.get("extra") or {}).get("worker")
                                      for lang, rep in summary["swarms"].items()}}
        t = time.perf_counter()
        with trace_run(run_id):
            unified = await unified_workflow(project_dir=str(tree), home=home_s, project=project,
                                             drop_report=drop.report_path,
                                             swarm_report=summary.get("report_path"), mode=mode, shards=shards,
                                             deploy=deploy, deploy_options=deploy_options, alert_block=alert_block)
        timings["unified_workflow"] = time.perf_counter() - t
        stages = unified.stages
    else:
        why = f"sandbox merge refused: {merge.get('outcome')}"
        logger.warning("%s - %s", why, merge.get("message"))
        stages = [StageReport.from_domain(skipped_stage(s, why)) for s in STAGES]
        stages[0] = stages[0].model_copy(update={"status": "failed",
                                                 "details": f"{why}: {merge.get('message', '')}"[:500]})
    if merged and unified and unified.verdict == "passed":
        verdict = "passed"
    elif not merged and drop.tests.status == "unknown":
        # held because its tests could not be run (no toolchain, dependencies out of reach):
        # NOA cannot say whether the project is good, so it does not say "failed"
        verdict = "unknown"
    else:
        verdict = "failed"
    timings["total"] = time.perf_counter() - t0
    report = PipelineReport(pipeline_run_id=run_id, source=source, project=project, verdict=verdict,
                            deployed=bool(unified and unified.deployed), stages=stages, steps=steps,
                            unified_run_id=unified.flow_run_id if unified else None,
                            timings={k: round(v, 3) for k, v in timings.items()})
    report.report_path = str(write_json(settings.layout().reports / f"pipeline-{run_id}.json", report.to_json()))
    report.change_log = await change_log_task(settings, "pipeline", project, {
        "source": source, "verdict": verdict, "drop_id": drop.drop_id, "merge": merge.get("outcome"),
        "stages": {s.name: s.status for s in stages}, "duration_s": round(timings["total"], 3)})
    sw = steps.get("swarm", {})
    extra = [(f"- source: `{source}` -> drop `{drop.drop_id}` in sandbox {drop.sandbox} "
              f"(confidence {drop.confidence:.2f}, tests {drop.tests.status})"),
             f"- sandbox merge: {merge.get('outcome')} - {merge.get('message', '')}",
             f"- swarm: {sw.get('status', 'not run')} ({sw.get('mode', '-')}; {sw.get('counts') or 'no tests'})",
             f"- total {timings['total']:.1f} s"]
    await acreate_markdown_artifact(render_summary(f"NOA pipeline: {project}", stages, verdict, extra),
                                    key=artifact_key("pipeline", project), description=f"pipeline {verdict}: {source}")
    return report


def run_pipeline(**parameters: Any) -> PipelineReport:
    """Run the pipeline from sync code (CLI, tests, bench) without flow heartbeats."""
    import asyncio

    from flows.runtime import in_process_run

    with in_process_run():  # heartbeat off, this process's owner mark on every run (flows/runtime.py)
        return asyncio.run(noa_pipeline(**parameters))
