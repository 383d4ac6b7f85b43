"""Swarm tasks: each one an agent's step over noa_core.swarm, run off the event loop.

The swarm flows are async (no per-flow heartbeat thread, and their agents overlap), so
every task here is ``async`` and hands its blocking work - isolated processes, hashing,
database calls - to a thread. Caching is the hive's job (results keyed by tool, version,
content hash and command, shared by every agent and process), so Prefect's own task
cache is off.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from noa_core.config import NoaSettings
from noa_core.swarm.go import GoToolchain
from noa_core.swarm.hive import Hive, open_hive
from noa_core.swarm.hive_keys import content_hash
from noa_core.swarm.interface import CheckResult, SwarmContext, SwarmReport
from noa_core.swarm.python import PythonToolchain
from noa_core.swarm.python_collection import plan_tests
from noa_core.swarm.python_env import project_name
from noa_core.swarm.python_test_results import finish_tests
from noa_core.swarm.python_tests import TestsJob, abort_tests, begin_tests, run_test_shard
from noa_core.swarm.javascript import JavaScriptToolchain
from noa_core.swarm.rust import RustToolchain
from noa_core.swarm.shard_plan import Shard, ShardPlan
from noa_core.swarm.shard_runs import ShardRun
from noa_core.swarm.suite_collection import Collection
from noa_core.swarm.summary import detect_languages, render_markdown, summary_rows
from tasks.reporting import artifact_key

__all__ = [
    "go_agent_task",
    "hive_of",
    "publish_task",
    "python_begin_task",
    "python_finish_task",
    "python_lint_task",
    "python_plan_task",
    "python_shard_task",
    "javascript_agent_task",
    "read_knowledge",
    "rust_agent_task",
    "share_knowledge_task",
    "swarm_context",
]


def hive_of(settings: NoaSettings) -> Hive:
    """The hive in the registry database of ``settings`` (``NOA_DATABASE_URL`` or ``registry.db``)."""
    layout = settings.layout()
    layout.root.mkdir(parents=True, exist_ok=True)
    return open_hive(settings.database_url or layout.registry_db)


def swarm_context(settings: NoaSettings, *, run_id: str, agent: str, project: str = "", shards: int = 1,
                  reuse: bool = True, content: str | None = None) -> SwarmContext:
    layout = settings.layout().ensure()
    return SwarmContext(work_parent=layout.tmp / "swarm" / run_id, limits=settings.exec, hive=hive_of(settings),
                        agent=agent, hide_paths=(str(layout.root),), project=project, shards=shards, reuse=reuse,
                        content_hash=content, home=layout.root)


def read_knowledge(settings: NoaSettings, project_dir: str, project: str | None) -> dict[str, Any]:
    """The project's languages, its content hash, and what the hive knows about it (durations
    per test file, flaky tests, results of this content)."""
    tree = Path(project_dir)
    t0 = time.perf_counter()
    chash = content_hash(tree)
    name = project or project_name(tree)
    knowledge = hive_of(settings).knowledge(name, chash)
    knowledge.update(languages=detect_languages(tree), hash_seconds=round(time.perf_counter() - t0, 3))
    return knowledge


@task(name="share-knowledge", cache_policy=NO_CACHE)
async def share_knowledge_task(settings: NoaSettings, project_dir: str, project: str | None) -> dict[str, Any]:
    """Read the hive before distributing (see :func:`read_knowledge`)."""
    knowledge = await asyncio.to_thread(read_knowledge, settings, project_dir, project)
    get_run_logger().info("hive: %s", knowledge)
    return knowledge


# ------------------------------------------------------------------------------- python


@task(name="python-lint", cache_policy=NO_CACHE)
async def python_lint_task(ctx: SwarmContext, project_dir: str) -> dict[str, Any]:
    result = await asyncio.to_thread(PythonToolchain().lint, Path(project_dir), ctx)
    return result.as_dict()


@task(name="python-tests-begin", cache_policy=NO_CACHE)
async def python_begin_task(ctx: SwarmContext, project_dir: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The test job, and the hive's result when this content was tested before (then done)."""
    job, hit = await asyncio.to_thread(begin_tests, Path(project_dir), ctx)
    if hit is not None:
        get_run_logger().info("tests: reused from the hive (computed by %s)", hit.computed_by or "?")
    return job.as_dict(), hit.as_dict() if hit is not None else None


@task(name="python-tests-plan", cache_policy=NO_CACHE)
async def python_plan_task(ctx: SwarmContext, job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Collect (pytest --collect-only, isolated) and plan the shards from the hive's durations."""
    plan, collection = await asyncio.to_thread(plan_tests, TestsJob.from_dict(job), ctx)
    get_run_logger().info("plan: %d shard(s) by %s%s", len(plan.shards), plan.basis,
                          f" ({plan.reason})" if plan.reason else "")
    return plan.as_dict(), collection.as_dict() if collection else None


@task(name="python-shard", task_run_name="shard-{index}", cache_policy=NO_CACHE)
async def python_shard_task(job: dict[str, Any], index: int, files: list[str], weight: float,
                            clear_addopts: bool) -> dict[str, Any]:
    """One agent: one shard of the suite, isolated in its own work copy."""
    run = await asyncio.to_thread(run_test_shard, TestsJob.from_dict(job), Shard(index, tuple(files), weight),
                                  clear_addopts)
    get_run_logger().info("shard %d: %s in %.1f s (%d files)", index,
                          run.counts.summary_line if run.counts else run.outcome, run.seconds, len(files))
    return run.as_dict()


@task(name="python-tests-finish", cache_policy=NO_CACHE)
async def python_finish_task(ctx: SwarmContext, job: dict[str, Any], plan: dict[str, Any],
                             runs: list[dict[str, Any]], collection: dict[str, Any] | None) -> dict[str, Any]:
    """Aggregate, re-run failures once (flaky detection), write durations and the result to the hive."""
    result = await asyncio.to_thread(
        finish_tests, TestsJob.from_dict(job), ctx, ShardPlan.from_dict(plan),
        [ShardRun.from_dict(r) for r in runs], Collection.from_dict(collection) if collection else None)
    return result.as_dict()


@task(name="python-tests-abort", cache_policy=NO_CACHE)
async def python_abort_task(ctx: SwarmContext, job: dict[str, Any]) -> None:
    await asyncio.to_thread(abort_tests, TestsJob.from_dict(job), ctx)


# --------------------------------------------------------------------------- rust / go


@task(name="rust-agent", cache_policy=NO_CACHE)
async def rust_agent_task(ctx: SwarmContext, project_dir: str) -> dict[str, Any]:
    """cargo check, clippy and test --offline, isolated, in one work copy."""
    report = await asyncio.to_thread(RustToolchain().run, Path(project_dir), ctx)
    return report.as_dict()


@task(name="javascript-agent", cache_policy=NO_CACHE)
async def javascript_agent_task(ctx: SwarmContext, project_dir: str) -> dict[str, Any]:
    """npm test with the project's own node_modules (installed outside, no scripts), isolated."""
    report = await asyncio.to_thread(JavaScriptToolchain().run, Path(project_dir), ctx)
    return report.as_dict()


@task(name="go-agent", cache_policy=NO_CACHE)
async def go_agent_task(ctx: SwarmContext, project_dir: str) -> dict[str, Any]:
    """go vet, go test and go test -bench, isolated, in one work copy."""
    report = await asyncio.to_thread(GoToolchain().run, Path(project_dir), ctx)
    return report.as_dict()


# ------------------------------------------------------------------------------ results


@task(name="publish-swarm", cache_policy=NO_CACHE)
async def publish_task(settings: NoaSettings, run_id: str, summary: dict[str, Any]) -> dict[str, Any]:
    """The master's results to the hive and NOA_HOME/reports, plus a markdown and a table artifact."""
    import json
    import os

    def write() -> dict[str, Any]:
        hive = hive_of(settings)
        hive.put_report(run_id, "swarm", summary["project"], summary["content_hash"], summary)
        stats = hive.stats()
        summary["hive"]["after"] = {"results": stats.results, "hits": stats.hits, "durations": stats.durations,
                                    "flaky": stats.flaky}
        reports = settings.layout().reports
        reports.mkdir(parents=True, exist_ok=True)
        path = reports / f"swarm-{run_id}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(summary, indent=2))
        os.replace(tmp, path)
        summary["report_path"] = str(path)
        return summary

    summary = await asyncio.to_thread(write)
    markdown = render_markdown(summary)
    await acreate_markdown_artifact(markdown, key=artifact_key("swarm", summary["project"]),
                                   description=f"swarm {summary['status']}: {summary['project']}")
    rows = summary_rows(summary)
    if rows:
        await acreate_table_artifact(rows, key=artifact_key("swarm", summary["project"], "checks"),
                                    description="every check of every language swarm")
    return summary


def as_reports(payloads: list[dict[str, Any]]) -> list[SwarmReport]:
    return [SwarmReport.from_dict(p) for p in payloads]


def check_results(payloads: list[dict[str, Any]]) -> list[CheckResult]:
    return [CheckResult.from_dict(p) for p in payloads]
