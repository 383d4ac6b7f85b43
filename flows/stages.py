"""The seven stages of the unified workflow, each an async Prefect subflow (contract 3).

Every stage returns ``{"name", "status", "duration_s", "details", "gate", "data"}``
(:class:`noa_core.stages.StageResult`), with ``status`` ``passed``, ``failed`` or
``skipped`` (details ``"skipped: <why>"``), and leaves a table artifact on its flow run.
Stages hand each other files, not large parameters: the analysis is written to
``<run dir>/analysis.json`` and the swarm summary is ``NOA_HOME/reports/swarm-<run>.json``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from noa_core.config import NoaSettings
from noa_core.errors import BadInput
from noa_core.manifest import MANIFEST_FILENAME, GatesConfig, NoaManifest, load_manifest
from noa_core.results import StageReport
from noa_core.stages import gates as G
from noa_core.stages.analysis import read_drop_analysis
from noa_core.stages.result import Gate, StageResult, skipped_stage
from tasks.stages import (
    analyse_tree_task,
    build_task,
    python_benchmarks_task,
    record_change,
    semgrep_task,
    stage_table,
    write_json,
)

__all__ = ["STAGE_FLOWS", "analysis_stage", "build_stage", "load_gates", "performance_stage", "production_stage",
           "project_manifest", "security_stage", "staging_stage", "testing_stage"]


def _settings(home: str | None) -> NoaSettings:
    settings = NoaSettings()
    return settings.model_copy(update={"home": Path(home)}) if home else settings


def _tree(project_dir: str) -> Path:
    tree = Path(project_dir).expanduser()
    if not tree.is_dir():
        raise BadInput(f"{project_dir} is not a directory")
    return tree.resolve()


def project_manifest(tree: Path, project: str | None = None) -> NoaManifest:
    """The project's noa.yaml (a bad one is refused: exit 2), or a minimal one."""
    path = tree / MANIFEST_FILENAME
    if path.is_file():
        return load_manifest(path)
    from noa_core.adaptation import project_slug

    return NoaManifest(name=project_slug(project or tree.name))


def load_gates(gates: Mapping[str, Any] | None) -> GatesConfig:
    return GatesConfig.model_validate(dict(gates)) if gates else GatesConfig()


def _run_dir(settings: NoaSettings, run_dir: str | None) -> Path:
    path = Path(run_dir) if run_dir else settings.layout().reports / "stages" / "adhoc"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _stage_run_name() -> str:
    from prefect.runtime import flow_run

    project = flow_run.parameters.get("project") or str(flow_run.parameters.get("project_dir", "")).rstrip("/")
    return f"{flow_run.flow_name.removesuffix('_stage')}-" + str(project).rsplit("/", 1)[-1][:60]


def stage_span(settings: NoaSettings, project: str, result: StageResult, run_id: Any) -> None:
    """The stage as an OpenTelemetry span (NOA_HOME/traces, and OTLP when configured): its own flow
    run id, the trace of the pipeline run it belongs to. Tracing never fails a stage."""
    from noa_core.observability.tracing import current_trace_run, tracing_for

    try:
        end = time.time_ns()
        tracing = tracing_for(settings)
        rid = str(run_id) if run_id else None
        tracing.record(f"stage {result.name}", end - int(result.duration_s * 1e9), end,
                       {"noa.stage": result.name, "noa.project": project, "noa.status": result.status,
                        "noa.gate": result.gate.rule, "noa.gate_passed": result.gate.passed},
                       run_id=rid, trace_run_id=current_trace_run() or rid,
                       error=result.details[:200] if result.status == "failed" else None)
        tracing.shutdown()
    except Exception as exc:  # noqa: BLE001
        get_run_logger().warning("stage %s: no trace span (%s)", result.name, exc)


async def _finish(settings: NoaSettings, project: str, result: StageResult, t0: float,
                  rows: list[dict[str, Any]] | None = None) -> StageReport:
    """Time the stage, leave its table artifact and its change-log entry, return its report."""
    from prefect.runtime import flow_run

    result = StageResult(result.name, result.status, result.details, result.gate, time.perf_counter() - t0,
                         {**dict(result.data), "flow_run_id": str(flow_run.id) if flow_run.id else None})
    table = [{"stage": result.name, "status": result.status, "gate": result.gate.rule,
              "gate passed": result.gate.passed, "value": result.gate.value, "threshold": result.gate.threshold,
              "details": result.details[:300], "duration_s": round(result.duration_s, 3)}, *(rows or [])]
    # plain calls, not tasks: two fewer task runs per stage on the API (see bench/bench_pipeline.py)
    await stage_table(project, result.name, table, f"stage {result.name}: {result.status} - {result.details}")
    cl = await record_change(settings, "stage", f"{project}/{result.name}",
                             {"status": result.status, "details": result.details[:500],
                              "gate": result.gate.as_dict(), "duration_s": round(result.duration_s, 3)})
    get_run_logger().info("stage %s: %s - %s", result.name, result.status, result.details)
    stage_span(settings, project, result, flow_run.id)
    return StageReport.from_domain(result, change_log=cl)


# ------------------------------------------------------------------------------ 1 analysis


@flow(name="analysis_stage", flow_run_name=_stage_run_name, log_prints=False)
async def analysis_stage(project_dir: str, home: str | None = None, project: str | None = None,
                         drop_report: str | None = None, gates: dict[str, Any] | None = None,
                         run_dir: str | None = None) -> StageReport:
    """Stage 1: the code drop's analysis and confidence (analysed now when no drop report is given)."""
    t0 = time.perf_counter()
    settings, tree, g = _settings(home), _tree(project_dir), load_gates(gates)
    name = project or tree.name
    if drop_report:
        analysis = read_drop_analysis(json.loads(Path(drop_report).read_text()))
    else:
        analysis = await analyse_tree_task(str(tree))
    path = write_json(_run_dir(settings, run_dir) / "analysis.json", analysis)
    gate = G.analysis_gate(analysis.get("confidence"), g)
    statuses = {n: a["status"] for n, a in analysis["analyzers"].items()}
    conf = analysis.get("confidence")
    details = (f"confidence {conf:.2f} ({analysis['source']}); "
               f"{sum(1 for s in statuses.values() if s == 'ok')}/{len(statuses)} analyzers ok") if conf is not None \
        else "no confidence score"
    if gate.passed is False:
        details = f"{gate.reason} ({analysis['source']})"
    rows = [{"stage": "analysis", "status": a["status"], "gate": f"analyzer {n}", "details": a.get("reason", ""),
             "value": len(a.get("findings", []))} for n, a in analysis["analyzers"].items()]
    result = StageResult("analysis", "passed" if gate.passed else "failed", details, gate,
                         data={"confidence": conf, "source": analysis["source"], "analyzers": statuses,
                               "analysis": str(path)})
    return await _finish(settings, name, result, t0, rows)


# ------------------------------------------------------------------------------- 2 testing


def _crashed(summary: Mapping[str, Any]) -> list[str]:
    return [f"{lang}: {r.get('reason')}" for lang, rep in (summary.get("swarms") or {}).items()
            for r in rep.get("results", []) if r.get("check") == "swarm" and r.get("status") == "failed"]


@flow(name="testing_stage", flow_run_name=_stage_run_name, log_prints=False)
async def testing_stage(project_dir: str, home: str | None = None, project: str | None = None,
                        swarm_report: str | None = None, gates: dict[str, Any] | None = None,
                        mode: str = "embedded", shards: int = 2, pickup_timeout_s: float = 60.0) -> StageReport:
    """Stage 2: the language swarms' tests (the pipeline's swarm run, or a swarm run now).

    A distributed swarm that could not finish (no worker, a crash after its resubmission)
    falls back to an embedded run: the seed's retry -> fallback -> continue."""
    from flows.swarm import swarm

    t0 = time.perf_counter()
    settings, tree, g = _settings(home), _tree(project_dir), load_gates(gates)
    name = project or tree.name
    logger = get_run_logger()
    if swarm_report:
        summary = json.loads(Path(swarm_report).read_text())
    else:
        summary = await swarm(project_dir=str(tree), shards=shards, home=str(settings.home), mode=mode,
                              project=project, pickup_timeout_s=pickup_timeout_s)
    fallback = None
    crashed = _crashed(summary)
    if crashed and summary.get("mode") == "distributed":
        fallback = f"embedded run after the distributed one failed ({'; '.join(crashed)[:300]})"
        logger.warning("testing: falling back to an embedded swarm: %s", "; ".join(crashed))
        summary = await swarm(project_dir=str(tree), shards=shards, home=str(settings.home), mode="embedded",
                              project=project)
    gate = G.testing_gate(summary, g)
    counts = summary.get("counts_line") or "no tests"
    langs = ", ".join(summary.get("languages") or []) or "none"
    where = summary.get("mode", "?")
    workers = {lang: (rep.get("extra") or {}).get("worker") for lang, rep in (summary.get("swarms") or {}).items()}
    data = {"swarm_report": summary.get("report_path"), "swarm_run_id": summary.get("run_id"), "mode": where,
            "languages": summary.get("languages"), "counts": summary.get("counts"), "workers": workers,
            "swarm_status": summary.get("status"), "fallback": fallback}
    rows = [{"stage": "testing", "status": r.get("status"), "gate": f"{lang}/{r.get('check')}",
             "details": ((r.get("counts") or {}).get("summary_line") or r.get("reason") or "")[:300],
             "value": r.get("findings", 0)}
            for lang, rep in (summary.get("swarms") or {}).items() for r in rep.get("results", [])]
    if gate.passed is None:
        result = skipped_stage("testing", f"{gate.reason} (swarms: {langs})", **data)
        result = StageResult("testing", "skipped", result.details, gate, data=result.data)
    else:
        details = f"{counts} ({where}, swarms: {langs})" if gate.passed else f"{gate.reason} ({where})"
        notes = [f"{lang}/{r.get('check')}: {r.get('reason')}" for lang, rep in (summary.get("swarms") or {}).items()
                 for r in rep.get("results", []) if r.get("status") == "failed" and r.get("check") not in G.TEST_CHECKS
                 and r.get("check") not in G.BLOCKING_CHECKS]
        if notes:
            details += "; not gating: " + "; ".join(notes)[:300]
        if fallback:
            details += f"; fallback: {fallback}"
        result = StageResult("testing", "passed" if gate.passed else "failed", details, gate, data=data)
    return await _finish(settings, name, result, t0, rows)


# --------------------------------------------------------------------------- 3 performance


@flow(name="performance_stage", flow_run_name=_stage_run_name, log_prints=False)
async def performance_stage(project_dir: str, home: str | None = None, project: str | None = None,
                            swarm_report: str | None = None, gates: dict[str, Any] | None = None,
                            run_id: str = "adhoc") -> StageReport:
    """Stage 3: benchmarks (Go swarm's go test -bench, pytest-benchmark) against the stored baseline."""
    from noa_core.stages.performance import Baselines, compare, go_benchmarks
    from noa_core.swarm.hive_keys import content_hash

    t0 = time.perf_counter()
    settings, tree, g = _settings(home), _tree(project_dir), load_gates(gates)
    name = project or tree.name
    manifest = project_manifest(tree, project)
    summary = json.loads(Path(swarm_report).read_text()) if swarm_report else {}
    runs = [r for r in (go_benchmarks(summary),) if r is not None]
    runs.append(await python_benchmarks_task(settings, str(tree), manifest, run_id))
    runs = [r if isinstance(r, dict) else r.as_dict() for r in runs]
    current = {k: v for r in runs if r["status"] != "skipped" for k, v in r["benchmarks"].items()}
    broken = [r for r in runs if r["status"] == "failed"]
    base = Baselines(settings.layout().root / "baselines")
    rows_src = [{"stage": "performance", "status": r["status"], "gate": r["source"],
                 "details": r["reason"] or f"{len(r['benchmarks'])} benchmarks", "value": len(r["benchmarks"])}
                for r in runs]
    if not current and not broken:
        why = "no benchmarks found"
        reasons = [f"{r['source']}: {r['reason']}" for r in runs if r.get("reason")]
        result = skipped_stage("performance", why, sources=runs, reasons=reasons)
        return await _finish(settings, name, result, t0, rows_src)
    comparisons = compare(current, base.load(name))
    gate = G.performance_gate(comparisons, g)
    recorded = await asyncio.to_thread(base.record_missing, name, current, content_hash(tree)) if not broken else []
    if broken:
        gate = Gate(gate.rule, False, gate.value, gate.threshold,
                    "; ".join(f"{r['source']}: {r['reason']}" for r in broken))
    rows = rows_src + [{"stage": "performance", "status": "new" if c["regression_pct"] is None else "compared",
                        "gate": c["name"], "value": c["regression_pct"],
                        "details": f"{c['ns_per_op']:.1f} ns/op, baseline "
                                   + (f"{c['baseline_ns_per_op']:.1f}" if c["baseline_ns_per_op"] else "-")}
                       for c in comparisons]
    data = {"benchmarks": len(current), "comparisons": comparisons, "baseline": str(base.path(name)),
            "recorded": recorded, "sources": [r["source"] for r in runs if r["status"] != "skipped"]}
    if gate.passed is False:
        result = StageResult("performance", "failed", gate.reason, gate, data=data)
    elif gate.passed is None:  # nothing had a baseline yet: this run is it
        result = StageResult("performance", "passed", f"baseline recorded: {len(recorded)} benchmarks",
                             Gate(gate.rule, True, None, gate.threshold, "first measurement: baseline recorded"),
                             data=data)
    else:
        result = StageResult("performance", "passed",
                             f"{len(comparisons)} benchmarks, worst {gate.value:+.1f}% against the baseline"
                             + (f"; {len(recorded)} new recorded" if recorded else ""), gate, data=data)
    return await _finish(settings, name, result, t0, rows)


# ------------------------------------------------------------------------------ 4 security


@flow(name="security_stage", flow_run_name=_stage_run_name, log_prints=False)
async def security_stage(project_dir: str, home: str | None = None, project: str | None = None,
                         analysis: str | None = None, gates: dict[str, Any] | None = None) -> StageReport:
    """Stage 4: bandit, semgrep (shipped rules), secrets, vulnerabilities; the severity gate."""
    from noa_core.analysis.interface import Finding
    from noa_core.stages.security import security_checks
    from noa_core.stages.semgrep import SemgrepRun

    t0 = time.perf_counter()
    settings, tree, g = _settings(home), _tree(project_dir), load_gates(gates)
    name = project or tree.name
    if analysis:
        found = json.loads(Path(analysis).read_text())
    else:
        found = await analyse_tree_task(str(tree))
    sg = await semgrep_task(settings, str(tree))
    run = SemgrepRun(sg["status"], sg["reason"], tuple(Finding(**f) for f in sg["findings"]), sg["rules"],
                     sg["files_scanned"], tuple(sg["errors"]), sg["seconds"])
    checks, findings = security_checks(found["analyzers"], run)
    gate = G.security_gate(findings, g)
    summary = ", ".join(f"{c['check']} {c['status']}" + (f" ({c['findings']})" if c["findings"] else "")
                        for c in checks)
    rows = [{"stage": "security", "status": c["status"], "gate": c["check"], "value": c["findings"],
             "details": c["reason"][:300]} for c in checks]
    rows += [{"stage": "security", "status": f["severity"], "gate": f"{f['analyzer']}:{f['rule']}",
              "value": f.get("line"),
              "details": (f"{f.get('path')}: {f['message']}" + (f" - {f['reason']}" if f.get("reason") else ""))[:300]}
             for f in sorted(findings, key=lambda f: -G.SEVERITY_RANK.get(str(f.get("severity")), 0))[:100]]
    data = {"checks": checks, "findings": len(findings), "worst": gate.value,
            "by_severity": {s: sum(1 for f in findings if f.get("severity") == s) for s in G.SEVERITY_RANK},
            "allowed": sum(1 for f in findings if f.get("allowed"))}
    details = summary if gate.passed else f"{gate.reason}; {summary}"
    return await _finish(settings, name, StageResult("security", "passed" if gate.passed else "failed", details,
                                                     gate, data=data), t0, rows)


# --------------------------------------------------------------------------------- 5 build


@flow(name="build_stage", flow_run_name=_stage_run_name, log_prints=False)
async def build_stage(project_dir: str, home: str | None = None, project: str | None = None,
                      analysis: str | None = None, gates: dict[str, Any] | None = None) -> StageReport:
    """Stage 5: wheel + sdist, cargo build, go build (isolated); artifacts by BLAKE3; CycloneDX SBOM."""
    from noa_core.swarm.hive_keys import content_hash

    t0 = time.perf_counter()
    settings, tree, g = _settings(home), _tree(project_dir), load_gates(gates)
    manifest = project_manifest(tree, project)
    name = project or manifest.name
    deps = json.loads(Path(analysis).read_text()).get("dependencies") if analysis else None
    chash = await asyncio.to_thread(content_hash, tree)
    out_dir = settings.layout().root / "builds" / name / chash[:16]
    built = await build_task(settings, str(tree), manifest, str(out_dir), deps)
    gate = G.build_gate(built["status"], built["reason"], g)
    rows = [{"stage": "build", "status": s["status"], "gate": s["tool"], "details": s["reason"][:300],
             "value": s["seconds"]} for s in built["steps"]]
    rows += [{"stage": "build", "status": a["kind"], "gate": a["name"], "value": a["size"],
              "details": f"blake3 {a['blake3']}"} for a in built["artifacts"]]
    data = {"artifacts": built["artifacts"], "sbom": built["sbom"], "sbom_components": built["sbom_components"],
            "out_dir": built["out_dir"], "steps": built["steps"]}
    if gate.passed is None:
        result = StageResult("build", "skipped", f"skipped: {built['reason']}", gate, data=data)
    else:
        details = built["reason"] + (f"; SBOM {Path(built['sbom']).name} ({built['sbom_components']} components)"
                                     if built.get("sbom") else "")
        result = StageResult("build", "passed" if gate.passed else "failed", details, gate, data=data)
    if built["status"] == "ok":
        await record_change(settings, "build", name, {"artifacts": [
            {"name": a["name"], "blake3": a["blake3"], "size": a["size"]} for a in built["artifacts"]],
            "sbom": built["sbom"]})
    return await _finish(settings, name, result, t0, rows)


# ------------------------------------------------------------------ 6 staging, 7 production


def _deploy_flows() -> tuple[Any, Any] | None:
    try:
        from flows.deploy import deploy, rollback
    except ImportError:
        return None
    return deploy, rollback


async def _deploy_stage(stage: str, env: str, project_dir: str, home: str | None, project: str | None,
                        enabled: bool, options: dict[str, Any] | None) -> StageReport:
    t0 = time.perf_counter()
    settings, tree = _settings(home), _tree(project_dir)
    manifest = project_manifest(tree, project)
    name = project or manifest.name
    rule = f"{env} deployment promoted"
    if not enabled:
        return await _finish(settings, name, skipped_stage(stage, "deployment disabled (--no-deploy)"), t0)
    flows_ = _deploy_flows()
    if flows_ is None:
        return await _finish(settings, name, skipped_stage(stage, "no deploy target"), t0)
    deploy, _ = flows_
    outcome = await deploy(project_dir=str(tree), env=env, home=str(settings.home), app=name, **(options or {}))
    what = str(outcome.get("outcome"))
    data = {"deploy": {k: outcome.get(k) for k in ("app", "env", "strategy", "outcome", "release", "reason", "url")},
            "steps": outcome.get("steps")}
    rows = [{"stage": stage, "status": str(s.get("verdict", "")), "gate": str(s.get("name", "")),
             "value": s.get("weight"), "details": str(s.get("reason", ""))[:300]}
            for s in (outcome.get("steps") or []) if isinstance(s, dict)][:50]
    reason = str(outcome.get("reason") or "")
    if what == "promoted":
        result = StageResult(stage, "passed", f"{env}: promoted release {outcome.get('release')} "
                                              f"({outcome.get('strategy')}), serving at {outcome.get('url')}",
                             Gate(rule, True, what), data=data)
    elif what == "skipped":
        why = reason.removeprefix("skipped: ") or "no deploy target"
        result = skipped_stage(stage, why, **data)
    else:
        result = StageResult(stage, "failed", f"{env}: {what}: {reason}"[:500], Gate(rule, False, what, None, reason),
                             data=data)
    return await _finish(settings, name, result, t0, rows)


@flow(name="staging_stage", flow_run_name=_stage_run_name, log_prints=False)
async def staging_stage(project_dir: str, home: str | None = None, project: str | None = None,
                        deploy: bool = True, options: dict[str, Any] | None = None) -> StageReport:
    """Stage 6: ``flows.deploy.deploy(env="staging")`` when a deploy target exists; never passed without one."""
    return await _deploy_stage("staging", "staging", project_dir, home, project, deploy, options)


@flow(name="production_stage", flow_run_name=_stage_run_name, log_prints=False)
async def production_stage(project_dir: str, home: str | None = None, project: str | None = None,
                           deploy: bool = True, options: dict[str, Any] | None = None) -> StageReport:
    """Stage 7: ``flows.deploy.deploy(env="production")``; a failure here is critical (rollback)."""
    return await _deploy_stage("production", "production", project_dir, home, project, deploy, options)


STAGE_FLOWS = {"analysis": analysis_stage, "testing": testing_stage, "performance": performance_stage,
               "security": security_stage, "build": build_stage, "staging": staging_stage,
               "production": production_stage}
