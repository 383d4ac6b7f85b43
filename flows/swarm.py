"""``swarm``: the seed's Agent Swarm and Batch Processing as Prefect flows.

The master flow reads the hive (what is known about the project), distributes to one
subflow per language swarm - ``python_swarm``, ``rust_swarm``, ``go_swarm``,
``javascript_swarm`` - which run concurrently, aggregates their reports, and writes the
result to the hive, to ``NOA_HOME/reports/swarm-<run>.json`` and to a markdown and a
table artifact.

Two modes, one code path:

* ``embedded`` (default; no workers needed): the swarm subflows run in this process,
  concurrently (async subflows gathered on one event loop; their blocking work runs in
  threads).
* ``distributed``: the master calls ``run_deployment`` for each swarm's deployment
  (``python_swarm/python-swarm`` in work pool ``python-swarm``, and so on) and waits;
  workers started by ``noa swarm up`` pick the runs up. Each swarm flow stores its report
  in the hive under its flow-run id, and the master reads it from there.

Either way the reports go through the same aggregation. Inside the Python swarm, the
test suite is cut into shards (batch processing): collect -> plan by the hive's recorded
durations -> one task (agent) per shard in parallel, each isolated in its own work copy
-> aggregate, re-run failures once (flaky detection) -> durations and results to the hive.

All flows and tasks here are async: Prefect 3.9 runs a heartbeat thread per *sync* flow
run (about 1 s each, see flows/runtime.py); async flows avoid it, and their tasks
overlap on one event loop.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from noa_core.config import NoaSettings
from noa_core.errors import BadInput
from noa_core.observability.logs import logs_in_home
from noa_core.results import LanguageSwarmReport, SwarmSummary
from noa_core.swarm.interface import CheckResult, SwarmContext, SwarmReport
from noa_core.swarm.process_pools import DEPLOYMENTS
from noa_core.swarm.python import PythonToolchain
from noa_core.swarm.python_env import project_name
from noa_core.swarm.summary import (
    POOLS,
    aggregate_reports,
    crashed_report,
    validate_languages,
)
from tasks.swarm import (
    go_agent_task,
    hive_of,
    javascript_agent_task,
    publish_task,
    python_abort_task,
    python_begin_task,
    python_finish_task,
    python_lint_task,
    python_plan_task,
    python_shard_task,
    read_knowledge,
    rust_agent_task,
    share_knowledge_task,
    swarm_context,
)

__all__ = [
    "DEPLOYMENTS",
    "POOLS",
    "go_swarm",
    "javascript_swarm",
    "python_swarm",
    "run_swarm",
    "rust_swarm",
    "swarm",
]

MODES = ("embedded", "distributed")
POOL_TYPES = ("process", "docker")  # distributed mode: the Python swarm's pool (deployments/swarm_docker.py)


def _settings(home: str | None) -> NoaSettings:
    settings = NoaSettings()
    return settings.model_copy(update={"home": Path(home)}) if home else settings


def _run_context() -> tuple[str, dict[str, Any]]:
    """This flow run's id (a fresh one outside Prefect) and where it runs."""
    try:
        from prefect.runtime import flow_run

        run_id = str(flow_run.id or "") or uuid.uuid4().hex
        where: dict[str, Any] = {"flow_run_id": run_id, "flow_run_name": flow_run.name}
    except Exception:  # pragma: no cover - outside a flow run
        run_id = uuid.uuid4().hex
        where = {"flow_run_id": run_id}
    return run_id, where


def _tree(project_dir: str) -> Path:
    tree = Path(project_dir).expanduser()
    if not tree.is_dir():
        raise BadInput(f"{project_dir} is not a directory")
    return tree.resolve()


def _swarm_run_name() -> str:
    from prefect.runtime import flow_run

    project_dir = str(flow_run.parameters.get("project_dir", "project"))
    return f"{flow_run.flow_name}-" + project_dir.rstrip("/").rsplit("/", 1)[-1][:60]


async def _finish_swarm(settings: NoaSettings, language: str, run_id: str, where: dict[str, Any], project: str,
                        ctx: SwarmContext, results: Sequence[CheckResult] | SwarmReport,
                        t0: float) -> LanguageSwarmReport:
    report = results if isinstance(results, SwarmReport) else SwarmReport.of(language, list(results), agent=ctx.agent)
    report = SwarmReport(language=report.language, status=report.status, results=report.results,
                         reason=report.reason, seconds=round(time.perf_counter() - t0, 3), agent=ctx.agent,
                         extra={**report.extra, **where})
    payload = report.as_dict()
    # into the hive by flow-run id (how the master reads a run done by a worker); no task:
    # on a SQLite Prefect server every extra API write risks a 503 + back-off
    await asyncio.to_thread(hive_of(settings).put_report, run_id, f"{language}-swarm", project,
                            ctx.content_hash or "", payload)
    get_run_logger().info("%s swarm: %s in %.1f s", language, report.status, report.seconds)
    return LanguageSwarmReport.model_validate(payload)


# ------------------------------------------------------------------------ language swarms


async def _python_tests(ctx: SwarmContext, tree: str) -> dict[str, Any]:
    job, hit = await python_begin_task(ctx, tree)
    if hit is not None:
        return hit
    try:
        plan, collection = await python_plan_task(ctx, job)
        clear = bool(collection and collection["clear_addopts"])
        runs = await asyncio.gather(*(python_shard_task(job, s["index"], s["files"], s["weight"], clear)
                                      for s in plan["shards"]))
    except BaseException:
        await python_abort_task(ctx, job)
        raise
    return await python_finish_task(ctx, job, plan, list(runs), collection)


@flow(name="python_swarm", flow_run_name=_swarm_run_name, log_prints=False)
async def python_swarm(project_dir: str, shards: int = 2, home: str | None = None, project: str | None = None,
                       reuse: bool = True) -> LanguageSwarmReport:
    """Python swarm: pytest sharded over ``shards`` agents (each isolated) and ruff, at once."""
    t0 = time.perf_counter()
    settings = _settings(home)
    tree = _tree(project_dir)
    run_id, where = _run_context()
    knowledge = await asyncio.to_thread(read_knowledge, settings, str(tree), project)  # no task: fewer API writes
    name = project or project_name(tree)
    ctx = swarm_context(settings, run_id=run_id, agent=f"python_swarm/{run_id[:8]}", project=name,
                        shards=max(1, int(shards)), reuse=reuse, content=knowledge["content_hash"])
    if not PythonToolchain().detect(tree):
        from noa_core.swarm.interface import skipped_result

        return await _finish_swarm(settings, "python", run_id, where, name, ctx,
                                   [skipped_result("python", "tests", "no Python code in the project")], t0)
    tests, lint = await asyncio.gather(_python_tests(ctx.for_agent(f"{ctx.agent}/tests"), str(tree)),
                                       python_lint_task(ctx.for_agent(f"{ctx.agent}/lint"), str(tree)))
    results = [CheckResult.from_dict(tests), CheckResult.from_dict(lint)]
    return await _finish_swarm(settings, "python", run_id, where, name, ctx, results, t0)


async def _native_swarm(language: str, agent_task: Any, project_dir: str, home: str | None,
                        project: str | None, reuse: bool) -> LanguageSwarmReport:
    """The Rust, Go and JavaScript swarms: one agent task runs the toolchain's checks, isolated."""
    t0 = time.perf_counter()
    settings = _settings(home)
    tree = _tree(project_dir)
    run_id, where = _run_context()
    knowledge = await asyncio.to_thread(read_knowledge, settings, str(tree), project)  # no task: fewer API writes
    name = project or project_name(tree)
    ctx = swarm_context(settings, run_id=run_id, agent=f"{language}_swarm/{run_id[:8]}", project=name,
                        reuse=reuse, content=knowledge["content_hash"])
    report = SwarmReport.from_dict(await agent_task(ctx, str(tree)))
    return await _finish_swarm(settings, language, run_id, where, name, ctx, report, t0)


@flow(name="rust_swarm", flow_run_name=_swarm_run_name, log_prints=False)
async def rust_swarm(project_dir: str, shards: int = 2, home: str | None = None, project: str | None = None,
                     reuse: bool = True) -> LanguageSwarmReport:
    """Rust swarm: cargo check, clippy and test, --offline and isolated."""
    return await _native_swarm("rust", rust_agent_task, project_dir, home, project, reuse)


@flow(name="go_swarm", flow_run_name=_swarm_run_name, log_prints=False)
async def go_swarm(project_dir: str, shards: int = 2, home: str | None = None, project: str | None = None,
                   reuse: bool = True) -> LanguageSwarmReport:
    """Go swarm: go vet, go test and the benchmarks (go test -bench), isolated."""
    return await _native_swarm("go", go_agent_task, project_dir, home, project, reuse)


@flow(name="javascript_swarm", flow_run_name=_swarm_run_name, log_prints=False)
async def javascript_swarm(project_dir: str, shards: int = 2, home: str | None = None, project: str | None = None,
                           reuse: bool = True) -> LanguageSwarmReport:
    """JavaScript swarm: npm test with the project's own node_modules, isolated and offline."""
    return await _native_swarm("javascript", javascript_agent_task, project_dir, home, project, reuse)


SWARM_FLOWS = {"python": python_swarm, "rust": rust_swarm, "go": go_swarm, "javascript": javascript_swarm}


# ------------------------------------------------------------------------------- dispatch


async def _embedded(language: str, params: dict[str, Any]) -> SwarmReport:
    try:
        payload = await SWARM_FLOWS[language](**params)
    except Exception as exc:  # one swarm failing must not sink the others
        return crashed_report(language, f"{language} swarm crashed: {type(exc).__name__}: {exc}", mode="embedded")
    return SwarmReport.from_dict(payload.to_json()).with_extra(mode="embedded")


async def _docker_run(language: str, params: dict[str, Any], settings: NoaSettings,
                      pool_type: str) -> tuple[str, str, dict[str, Any] | None]:
    """(deployment, pool, per-run job variables): the docker pool's for the Python swarm when
    ``pool_type`` is docker (its image read from the deployment), else the process pool's."""
    if pool_type != "docker" or language != "python":
        return DEPLOYMENTS[language], POOLS[language], None
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from noa_core.swarm.docker_pool import DOCKER_DEPLOYMENT, DOCKER_POOL, run_job_variables

    try:
        async with get_client() as client:
            dep = await client.read_deployment_by_name(DOCKER_DEPLOYMENT)
    except ObjectNotFound:
        return DOCKER_DEPLOYMENT, DOCKER_POOL, None  # reported as "not found" below
    image = str((dep.job_variables or {}).get("image", ""))
    return DOCKER_DEPLOYMENT, DOCKER_POOL, dict(run_job_variables(image, settings, params["project_dir"]))


async def _distributed(language: str, params: dict[str, Any], settings: NoaSettings, *,
                       pickup_timeout_s: float, timeout_s: float, poll_s: float, resubmits: int = 1,
                       pool_type: str = "process") -> SwarmReport:
    """Run one swarm's deployment and wait for it. A run that crashes - or whose process, on
    one of this host's workers, is gone (``kill -9``) - is marked crashed and submitted once
    more; the new run reuses from the hive whatever the first one finished. With
    ``pool_type="docker"`` the Python swarm runs on the docker pool (project mounted read-only)."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import arun_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Cancelled, Crashed

    from noa_core.swarm.workers import local_run_gone

    name, pool, job_vars = await _docker_run(language, params, settings, pool_type)
    workers_dir = settings.layout().root / "swarm"
    attempts: list[dict[str, Any]] = []
    base = {"mode": "distributed", "work_pool": pool}
    if job_vars is not None:  # a docker worker given a missing image (pull policy Never) only crashes the run
        from noa_core.swarm.docker_image import missing_image_reason

        missing = await asyncio.to_thread(missing_image_reason, str(job_vars.get("image", "")))
        if missing:
            return crashed_report(language, missing, **base)
    async with get_client() as client:
        while True:
            try:
                run = await arun_deployment(name, parameters=params, timeout=0, as_subflow=True,
                                            job_variables=job_vars)
            except ObjectNotFound:
                return crashed_report(language, f"deployment {name} not found: run `noa swarm up --pools {pool}` "
                                                "first", **base)
            start = time.monotonic()
            gone: str | None = None
            while True:
                run = await client.read_flow_run(run.id)
                state = run.state
                if state is not None and state.is_final():
                    break
                waited = time.monotonic() - start
                reason = ""
                if state is not None and state.is_scheduled() and waited > pickup_timeout_s:
                    reason = (f"no worker of pool {pool} picked up flow run {run.name} within "
                              f"{pickup_timeout_s:.0f} s (is `noa swarm up` running?)")
                elif waited > timeout_s:
                    reason = f"flow run {run.name} did not finish within {timeout_s:.0f} s"
                if reason:
                    await client.set_flow_run_state(run.id, Cancelled(message=reason), force=True)
                    return crashed_report(language, reason, flow_run_id=str(run.id), attempts=attempts, **base)
                pid = str(run.infrastructure_pid) if run.infrastructure_pid is not None else None
                worker = (run.labels or {}).get("prefect.worker.name")
                gone = await asyncio.to_thread(local_run_gone, str(worker) if worker else None, pid, workers_dir)
                if gone:
                    await client.set_flow_run_state(run.id, Crashed(message=gone), force=True)
                    state = (await client.read_flow_run(run.id)).state
                    break
                await asyncio.sleep(poll_s)
            labels = dict(run.labels or {})
            attempts.append({"flow_run_id": str(run.id), "state": state.name if state else None,
                             "worker": labels.get("prefect.worker.name"), "message": gone or None})
            if state is not None and state.is_crashed() and len(attempts) <= resubmits:
                get_run_logger().warning("%s swarm run %s crashed (%s): submitting it once more", language,
                                         run.name, gone or state.message)
                continue
            break
    extra = {**base, "flow_run_id": str(run.id), "flow_run_name": run.name, "work_pool": run.work_pool_name,
             "work_queue": run.work_queue_name, "worker": labels.get("prefect.worker.name"),
             "infrastructure_pid": run.infrastructure_pid, "state": state.name if state else None,
             "attempts": attempts}
    payload = await asyncio.to_thread(hive_of(settings).get_report, str(run.id))
    if state is None or not state.is_completed() or payload is None:
        why = state.message if state is not None and state.message else "no report in the hive"
        return crashed_report(language, f"{language} swarm flow run {run.name} ended {state.name if state else '?'}: "
                                        f"{why}", **extra)
    return SwarmReport.from_dict(payload).with_extra(**extra)


def _master_run_name() -> str:
    from prefect.runtime import flow_run

    project_dir = str(flow_run.parameters.get("project_dir", "project"))
    return "swarm-" + project_dir.rstrip("/").rsplit("/", 1)[-1][:60]


@flow(name="swarm", flow_run_name=_master_run_name, log_prints=False)
@logs_in_home
async def swarm(project_dir: str, languages: list[str] | None = None, shards: int = 2, home: str | None = None,
                mode: str = "embedded", reuse: bool = True, project: str | None = None,
                pickup_timeout_s: float = 120.0, timeout_s: float = 3600.0, resubmits: int = 1,
                pool_type: str = "process") -> SwarmSummary:
    """Master: share knowledge (hive) -> distribute to the language swarms (concurrently; in
    process, or to work pools with ``mode="distributed"``; ``pool_type="docker"`` puts the
    Python swarm on the docker pool) -> aggregate -> hive + artifacts.

    Distributed mode needs workers on the swarm work pools (``noa swarm up``); a swarm nobody
    picks up in ``pickup_timeout_s`` is reported failed. Failed tests are an outcome
    (``status`` failed), not an error; raises :class:`~noa_core.errors.BadInput` for a bad
    mode, pool type, shard count or language.
    """
    t0 = time.perf_counter()
    if mode not in MODES:
        raise BadInput(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if pool_type not in POOL_TYPES:
        raise BadInput(f"pool_type must be one of {', '.join(POOL_TYPES)}, not {pool_type!r}")
    if not 1 <= int(shards) <= 64:
        raise BadInput("shards must be between 1 and 64")
    wanted = validate_languages(languages)
    settings = _settings(home)
    tree = _tree(project_dir)
    run_id, _ = _run_context()
    logger = get_run_logger()
    knowledge = await share_knowledge_task(settings, str(tree), project)
    langs = wanted if wanted is not None else list(knowledge["languages"])
    name = project or knowledge["project"]
    logger.info("swarms for %s: %s (%s)", name, ", ".join(langs) or "none", mode)
    params: dict[str, Any] = {"project_dir": str(tree), "shards": int(shards), "home": str(settings.home),
                              "project": name, "reuse": reuse}
    if mode == "embedded":
        reports = await asyncio.gather(*(_embedded(lang, params) for lang in langs))
    else:
        reports = await asyncio.gather(*(_distributed(lang, params, settings, pickup_timeout_s=pickup_timeout_s,
                                                      timeout_s=timeout_s, poll_s=1.0, resubmits=resubmits,
                                                      pool_type=pool_type)
                                         for lang in langs))
    summary = aggregate_reports(list(reports), project=name, project_dir=str(tree),
                                content=knowledge["content_hash"], mode=mode, knowledge=knowledge,
                                seconds=time.perf_counter() - t0, run_id=run_id)
    return SwarmSummary.model_validate(await publish_task(settings, run_id, summary))


def run_swarm(**parameters: Any) -> SwarmSummary:
    """Run the master flow from sync code (the CLI, tests, bench), without flow heartbeats."""
    from flows.runtime import in_process_run

    with in_process_run():  # heartbeat off, this process's owner mark on every run (flows/runtime.py)
        return asyncio.run(swarm(**parameters))
