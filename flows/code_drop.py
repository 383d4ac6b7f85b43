"""``code_drop``: the seed's Code Drop Flow and CRC system as one Prefect flow.

fetch -> register -> analyse (parallel analyzers + local LLM) -> confidence -> adapt
(noa.yaml) -> assign sandbox -> land as a commit -> validate (isolated tests) -> feedback
-> report. Every step is a task; the report is a markdown artifact plus
``NOA_HOME/reports/<drop>.json``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from noa_core.analysis.interface import AnalyzerResult
from noa_core.analysis.interface import analyzer_data as _data
from noa_core.config import NoaSettings
from noa_core.intake import FetchedSource, SourceSpec
from noa_core.observability.logs import logs_in_home
from noa_core.report import (
    AnalyzerStatus,
    ConfidenceReport,
    Contribution,
    DropReport,
    TestsSummary,
)
from tasks.analysis import ai_opinion_task, all_analyzers, analysis_cache, analyze_task
from tasks.changelog import change_log_task
from tasks.intake import fetch_source_task, parse_source_task
from tasks.reporting import FlowProgress, write_report_task
from tasks.validation import validate_task
from tasks.workspace import (
    adapt_task,
    assign_task,
    confidence_task,
    identify_project_task,
    land_task,
    mark_drop_failed_task,
    new_drop_id,
    record_outcome_task,
    register_files_task,
)

ECOSYSTEMS = ("python", "javascript", "rust", "go")
STEPS = ["fetch", "register", "analyse", "confidence", "adapt", "assign", "land", "validate", "feedback", "report"]


def _settings(home: str | None, workspace: str | None) -> NoaSettings:
    """Settings from the environment, a ``noa-workspace`` block, then an explicit home."""
    settings = NoaSettings()
    if workspace:
        from blocks.workspace import NoaWorkspace

        settings = NoaWorkspace.load(workspace).settings(settings)
    return settings.model_copy(update={"home": Path(home)}) if home else settings


def _flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return str(flow_run.id) if flow_run.id else None


def _drop_run_name() -> str:
    from prefect.runtime import flow_run

    source = str(flow_run.parameters.get("source", "drop"))
    return "drop-" + source.rstrip("/").rsplit("/", 1)[-1][:60]


def _receive(source: str, settings: NoaSettings) -> tuple[SourceSpec, str, FetchedSource, dict[str, Any]]:
    """Fetch and identify. A refusal here leaves nothing behind in NOA_HOME."""
    layout = settings.layout()
    spec = parse_source_task(source)
    drop_id = new_drop_id(spec)
    try:
        fetched = fetch_source_task(spec, layout.drops / drop_id / "src", settings.ingest, layout.drops / "cache")
        identity = identify_project_task(settings, fetched)  # a bad noa.yaml is refused here
    except BaseException:
        shutil.rmtree(layout.drops / drop_id, ignore_errors=True)
        raise
    return spec, drop_id, fetched, identity


def _analyse(settings: NoaSettings, fetched: FetchedSource, identity: dict[str, Any], tree_hash: str,
             drop_id: str, use_ai: bool) -> tuple[dict[str, AnalyzerResult], dict[str, bool], dict[str, Any]]:
    """All analyzers in parallel (cached by content) and the LLM opinion beside them."""
    analyze = analyze_task.with_options(result_storage=analysis_cache(settings.layout().root))
    futures = {name: analyze.submit(name, a.version, fetched.tree, tree_hash, drop_id)
               for name, a in all_analyzers().items()}
    ai_future = ai_opinion_task.submit(fetched.tree, identity["project"], identity["is_update"],
                                       futures["languages"], settings.llm_model_path,
                                       settings.llm_max_tokens) if use_ai else None
    raw = {name: f.result() for name, f in futures.items()}
    results = {name: AnalyzerResult.from_dict(r) for name, r in raw.items()}
    cached = {name: r.get("computed_by") != drop_id for name, r in raw.items()}
    ai: dict[str, Any] = ai_future.result() if ai_future is not None else {
        "name": "llm", "status": "skipped", "reason": "disabled with --no-ai", "data": {}}
    return results, cached, ai


@flow(name="code_drop", flow_run_name=_drop_run_name, log_prints=False, persist_result=True)
@logs_in_home
def code_drop(source: str, sandbox: str = "AUTO", home: str | None = None, use_ai: bool = True,
              workspace: str | None = None) -> DropReport:
    """Drop SOURCE into the workspace: analyse, score, adapt, sandbox and validate it.

    ``workspace`` names a saved ``noa-workspace`` block (home, database URL as a secret);
    ``home`` overrides its NOA_HOME. Returns the :class:`~noa_core.results.DropReport`
    (also written to ``NOA_HOME/reports/<drop_id>.json``).
    """
    logger = get_run_logger()
    settings = _settings(home, workspace)
    layout = settings.layout().ensure()
    progress = FlowProgress(STEPS)
    progress.start()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    spec, drop_id, fetched, identity = _receive(source, settings)
    timings["fetch"] = time.perf_counter() - t0
    progress.step("fetch")
    logger.info("fetched %s: %d files, %d bytes", source, fetched.files_total, fetched.bytes_total)

    t = time.perf_counter()
    stats = register_files_task(settings, drop_id, identity, fetched)
    timings["register"] = time.perf_counter() - t
    progress.step("register")
    try:
        t = time.perf_counter()
        results, cached, ai = _analyse(settings, fetched, identity, stats["tree_hash"], drop_id, use_ai)
        timings["analyse"] = time.perf_counter() - t
        timings["ai"] = float(ai.get("seconds", 0.0))
        progress.step("analyse")

        confidence = confidence_task(settings, {**results, "llm": AnalyzerResult.from_dict(ai)})  # the note on AI
        progress.step("confidence")
        manifest, origin = adapt_task(fetched.tree, identity["project"], results, identity.get("version"))
        progress.step("adapt")
        assignment = assign_task(settings, confidence, ai.get("data", {}).get("opinion"), identity, manifest,
                                 sandbox, fetched.tree)
        progress.step("assign")
        landed = land_task(settings, fetched, identity, assignment["sandbox"], drop_id, source)
        progress.step("land")

        t = time.perf_counter()
        tests = validate_task(settings, landed["tree"], manifest, results, drop_id)
        timings["validate"] = time.perf_counter() - t
        progress.step("validate")
        calibration_table = record_outcome_task(settings, drop_id, confidence, tests, identity, assignment, landed)
        progress.step("feedback")
    except BaseException as exc:
        mark_drop_failed_task(settings, drop_id, exc)
        raise

    analyzer_status = {name: AnalyzerStatus(status=r.status, reason=r.reason, seconds=r.seconds, cached=cached[name])
                       for name, r in results.items()}
    analyzer_status["llm"] = AnalyzerStatus(status=ai["status"], reason=ai.get("reason", ""),
                                            seconds=float(ai.get("seconds", 0.0)))
    languages = _data(results, "languages")
    deps = _data(results, "dependencies")
    timings["total"] = time.perf_counter() - t0
    report = DropReport(
        drop_id=drop_id, source=source, source_kind=spec.kind, project=identity["project"],
        is_update=landed["is_update"],
        languages=dict(sorted(languages.get("by_bytes", {}).items(), key=lambda kv: -kv[1])),
        primary_language=languages.get("primary"),
        build_system=_data(results, "build_system").get("primary"),
        dependencies={k: v for k, v in deps.items() if k in ECOSYSTEMS and isinstance(v, list)},
        tests=TestsSummary(**tests),
        licence=results["licence"].data.get("spdx") if results["licence"].status == "ok" else None,
        findings=[f for r in results.values() for f in r.as_dict()["findings"]],
        confidence=confidence["calibrated"],
        confidence_detail=ConfidenceReport(raw=confidence["raw"], calibrated=confidence["calibrated"],
                                           contributions=[Contribution(**c) for c in confidence["contributions"]],
                                           calibration=calibration_table),
        sandbox=assignment["sandbox"], sandbox_reason=assignment["reason"],
        analyzers=analyzer_status, ai={"status": ai["status"], "reason": ai.get("reason", ""), **ai.get("data", {})},
        manifest=manifest.model_dump(mode="json"), manifest_origin=origin,
        commit=landed["commit"], branch=landed["branch"], files=stats["files"], bytes=stats["bytes"],
        tree_hash=stats["tree_hash"], timings={k: round(v, 3) for k, v in timings.items()},
        flow_run_id=_flow_run_id(),
    )
    report = write_report_task(report, layout.reports)
    change_log_task(settings, "drop", report.project, {
        "drop_id": report.drop_id, "source": report.source, "sandbox": report.sandbox, "commit": report.commit,
        "tree_hash": report.tree_hash, "confidence": report.confidence, "flow_run_id": report.flow_run_id})
    progress.step("report")
    return report
