"""``cicd_pipeline``: the seed's CI/CD Pipeline as one Prefect flow.

trigger -> validate -> build -> test -> deploy -> monitor -> CL tree

* **trigger**: the source (a directory, a git URL or local repository, an archive, a
  ``pypi:`` spec) is fetched through the ingestion guards into
  ``NOA_HOME/drops/cicd-<run>/`` (a plain copy, no ``.git``); a requested ``commit`` must
  be the fetched HEAD (a plain directory has no commit: it is recorded as given, unverified).
* **validate**: ``noa.yaml`` against the model *and* the published JSON schema, and ruff's
  blocking rules (``E9,F63,F7,F82``: syntax errors, undefined names - the set GitHub's
  Python starter workflow fails on), ``--isolated`` so the project's config cannot
  widen or silence them.
* **build**: ``flows.stages.build_stage`` (artifacts content-hashed, SBOM) when that module
  is installed; otherwise the stage says "skipped".
* **test**: the ``swarm`` flow (language swarms, sharded tests, lint).
* **deploy**: ``flows.deploy.deploy`` (blue-green staging / canary production).
* **monitor**: health checks of the release's public route every ``monitor_interval_s``
  for ``monitor_s`` seconds; ``monitor_failures`` failures in a row call
  ``flows.deploy.rollback``.
* **record**: one ``pipeline`` entry in the change log (CL tree): commit, ref, artifacts,
  stage statuses, outcome - no secrets.

A stage that fails skips the ones after it (each says why); the flow itself completes
and returns ``{"status": "passed" | "failed", "stages": [...], ...}``. Triggers: ``noa
cicd run``, the ``cicd_pipeline`` deployment (UI "Run", its schedule) and GitHub webhooks
(``POST /webhooks/github``, see noa_core/server/github_webhook.py).

The trigger and validate steps are tasks (``tasks/cicd.py``) over :mod:`noa_core.cicd`, which
also holds the monitor's health probes.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from noa_core.cicd.monitor import endpoint_of, watch_health
from noa_core.config import NoaSettings
from noa_core.errors import BadInput, NoaError
from noa_core.observability.logs import logs_in_home
from noa_core.results import CicdReport, StageReport
from tasks.cicd import trigger_task, validate_task

__all__ = ["STAGES", "cicd_pipeline", "run_cicd_pipeline"]

STAGES = ("trigger", "validate", "build", "test", "deploy", "monitor", "record")


# ------------------------------------------------------------------------ helpers
def _settings(home: str | None) -> NoaSettings:
    settings = NoaSettings()
    return settings.model_copy(update={"home": Path(home)}) if home else settings


def _stage(name: str, status: str, t0: float, details: Mapping[str, Any] | None = None, reason: str = "",
           gate: str = "") -> dict[str, Any]:
    return {"name": name, "status": status, "duration_s": round(time.perf_counter() - t0, 3),
            "details": dict(details or {}), "gate": gate, "reason": reason}


def _skipped(name: str, reason: str) -> dict[str, Any]:
    return {"name": name, "status": "skipped", "duration_s": 0.0, "details": {}, "gate": "",
            "reason": reason if reason.startswith("skipped:") else f"skipped: {reason}"}


def _why(exc: BaseException) -> str:
    text = exc.one_line() if isinstance(exc, NoaError) else " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:2000]


def _run_id() -> str:
    try:
        from prefect.runtime import flow_run

        return str(flow_run.id or "") or uuid.uuid4().hex
    except Exception:  # noqa: BLE001  # pragma: no cover - outside a flow run
        return uuid.uuid4().hex


# ------------------------------------------------------------------------ build / test / deploy
def _optional(module: str, name: str) -> Callable[..., Awaitable[Any]] | None:
    try:
        mod = __import__(module, fromlist=[name])
    except ImportError:
        return None
    return getattr(mod, name, None)


def _filter_kwargs(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Pass only what ``fn`` takes (a subflow owned by another module may grow or shrink)."""
    import inspect

    target = getattr(fn, "fn", fn)
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return dict(kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in params}


async def _build(tree: str, home: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    build_stage = _optional("flows.stages", "build_stage")
    if build_stage is None:
        return _skipped("build", "skipped: build stage not available (flows.stages.build_stage is not installed)")
    try:
        result = await build_stage(**_filter_kwargs(build_stage, {"project_dir": tree, "tree": tree, "home": home}))
    except Exception as exc:  # noqa: BLE001 - a stage failure is a result, not a crash
        return _stage("build", "failed", t0, reason=_why(exc))
    if isinstance(result, StageReport):
        result = result.to_json()
    if not isinstance(result, Mapping):
        return _stage("build", "failed", t0, reason=f"build_stage returned {type(result).__name__}")
    status = str(result.get("status", "failed"))
    data = dict(result.get("data") or {})
    text = result.get("details")
    reason = text if isinstance(text, str) else str(result.get("reason") or "")
    if status == "skipped" and not reason.startswith("skipped:"):
        reason = f"skipped: {reason or 'nothing to build'}"
    details = {k: data[k] for k in ("artifacts", "sbom", "sbom_components", "out_dir", "flow_run_id") if k in data}
    details["summary"] = reason
    return {"name": "build", "status": status, "duration_s": round(time.perf_counter() - t0, 3),
            "details": details, "gate": result.get("gate") or "", "reason": reason if status != "passed" else ""}


def _artifacts(build: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``[{path, sha256|hash, size}]`` from whatever the build stage reported."""
    found = (build.get("details") or {}).get("artifacts") or []
    out = []
    for a in found if isinstance(found, list) else []:
        if isinstance(a, Mapping):
            out.append({k: a[k] for k in ("name", "kind", "path", "blake3", "sha256", "size") if k in a})
        elif isinstance(a, str):
            out.append({"path": a})
    return out


async def _test(tree: str, home: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """``flows.stages.testing_stage`` (the swarms, gated on the tests' pass rate) when installed,
    else the ``swarm`` flow itself (any failed check fails)."""
    t0 = time.perf_counter()
    cfg = manifest.get("swarm") or {}
    shards = int(cfg.get("shards") or 1)
    testing_stage = _optional("flows.stages", "testing_stage")
    if testing_stage is not None:
        try:
            result = await testing_stage(project_dir=tree, home=home, project=manifest.get("name"), shards=shards)
        except Exception as exc:  # noqa: BLE001
            return _stage("test", "failed", t0, reason=_why(exc))
        status = str(result.get("status", "failed"))
        text = str(result.get("details") or "")
        data = dict(result.get("data") or {})
        details = {"summary": text, **{k: data[k] for k in ("counts", "languages", "swarm_report", "swarm_status",
                                                              "swarm_run_id") if k in data}}
        return {"name": "test", "status": status, "duration_s": round(time.perf_counter() - t0, 3),
                "details": details, "gate": result.get("gate") or "", "reason": "" if status == "passed" else text}
    from flows.swarm import swarm

    try:
        summary = await swarm(project_dir=tree, languages=cfg.get("languages") or None, shards=shards, home=home)
    except Exception as exc:  # noqa: BLE001
        return _stage("test", "failed", t0, reason=_why(exc))
    status = {"ok": "passed", "failed": "failed", "skipped": "skipped"}.get(summary.get("status"), "failed")
    failed_checks = [f"{lang}/{r['check']}: {r.get('reason') or r.get('status')}"
                     for lang, rep in (summary.get("swarms") or {}).items() for r in rep.get("results", [])
                     if r.get("status") == "failed"]
    details = {"counts": summary.get("counts"), "summary": summary.get("counts_line"),
               "languages": summary.get("languages"), "swarm_report": summary.get("report_path")}
    reason = "; ".join(failed_checks)[:1000] if status == "failed" else (
        "skipped: no swarm ran" if status == "skipped" else "")
    return _stage("test", status, t0, details, reason=reason)


async def _deploy(tree: str, env: str, home: str, app: str | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    deploy = _optional("flows.deploy", "deploy")
    if deploy is None:
        return _skipped("deploy", "skipped: deploy flow not available (flows.deploy is not installed)")
    try:
        result = await deploy(project_dir=tree, env=env, home=home, app=app)
    except Exception as exc:  # noqa: BLE001
        return _stage("deploy", "failed", t0, reason=_why(exc))
    outcome = str(result.get("outcome", "failed"))
    status = {"promoted": "passed", "skipped": "skipped"}.get(outcome, "failed")
    reason = str(result.get("reason") or "")
    if status == "skipped" and not reason.startswith("skipped:"):
        reason = f"skipped: {reason or outcome}"
    return _stage("deploy", status, t0, {"result": dict(result)}, reason=reason)


# ------------------------------------------------------------------------ monitor
async def _monitor(deploy_stage: Mapping[str, Any], manifest: Mapping[str, Any], env: str, home: str, *,
                   window_s: float, interval_s: float, failures_allowed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    result = (deploy_stage.get("details") or {}).get("result") or {}
    app = str(result.get("app") or manifest.get("name") or "")
    base = endpoint_of(result)
    if window_s <= 0:
        return _skipped("monitor", "skipped: monitor window is 0 s")
    if base is None:
        return _skipped("monitor", "skipped: the deploy result names no public endpoint to watch")
    health = ((manifest.get("run") or {}).get("health") or {})
    url = base.rstrip("/") + str(health.get("path") or "/health")
    timeout = float(health.get("timeout_s") or 2.0)
    logger = get_run_logger()
    probes, fails, streak, last = await watch_health(url, timeout=timeout, window_s=window_s, interval_s=interval_s,
                                                     failures_allowed=failures_allowed)
    details: dict[str, Any] = {"url": url, "window_s": window_s, "probes": probes, "failures": fails, "last": last}
    if streak < failures_allowed:
        return _stage("monitor", "passed", t0, details)
    logger.error("monitor: %s failed %d times in a row (%s): rolling back %s", url, streak, last, app)
    rollback = _optional("flows.deploy", "rollback")
    if rollback is None:
        details["rollback"] = {"outcome": "skipped", "reason": "skipped: flows.deploy.rollback is not installed"}
    else:
        try:
            details["rollback"] = await rollback(app=app, env=env, home=home)
        except Exception as exc:  # noqa: BLE001
            details["rollback"] = {"outcome": "failed", "reason": _why(exc)}
    return _stage("monitor", "failed", t0, details,
                  reason=f"{url} failed {streak} health checks in a row ({last}); rollback: "
                         f"{details['rollback'].get('outcome')}")


# ------------------------------------------------------------------------ record
def _record(settings: NoaSettings, subject: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    try:
        from noa_core.cltree import record_change
    except ImportError:
        return _skipped("record", "skipped: CL tree not available")
    t0 = time.perf_counter()
    try:
        entry = record_change(settings, "pipeline", subject, payload)
    except Exception as exc:  # noqa: BLE001
        return _stage("record", "failed", t0, reason=_why(exc))
    return _stage("record", "passed", t0, {"entry": getattr(entry, "id", None), "seq": getattr(entry, "seq", None)})


# ------------------------------------------------------------------------ the flow
def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    src = str(params.get("source", "source")).rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")[:50]
    commit = params.get("commit")
    return f"cicd-{src}" + (f"-{str(commit)[:10]}" if commit else "")


@flow(name="cicd_pipeline", flow_run_name=_run_name, log_prints=False, persist_result=True)
@logs_in_home
async def cicd_pipeline(source: str, commit: str | None = None, ref: str | None = None, env: str = "staging",
                        home: str | None = None, app: str | None = None, monitor_s: float = 30.0,
                        monitor_interval_s: float = 1.0, monitor_failures: int = 3,
                        trigger: dict[str, Any] | None = None, github_block: str | None = None) -> CicdReport:
    """trigger -> validate -> build -> test -> deploy -> monitor -> CL tree, for one commit of ``source``;
    with ``github_block`` (a saved ``noa-github`` block), the result goes back to GitHub as a commit
    status, a check run and (for a pull request) a comment. A failed stage is an outcome
    (``status`` failed), not an error; raises :class:`~noa_core.errors.BadInput` for a bad
    ``env`` or ``commit``."""
    t_all = time.perf_counter()
    if env not in ("staging", "production"):
        raise BadInput(f"env must be staging or production, not {env!r}")
    if commit is not None and not re.match(r"^[0-9a-fA-F]{4,64}$", commit):
        raise BadInput(f"commit {commit[:80]!r} is not a commit id")
    settings = _settings(home)
    home_s = str(settings.home.resolve())
    run_id = _run_id()
    logger = get_run_logger()
    stages: list[dict[str, Any]] = []
    stopped: str | None = None

    def blocked(name: str) -> dict[str, Any]:
        return _skipped(name, f"skipped: {stopped} failed")

    # trigger
    t0 = time.perf_counter()
    got: dict[str, Any] = {}
    try:
        got = await trigger_task(source, commit, home_s, run_id)
        stages.append(_stage("trigger", "passed", t0, {**got, "ref": ref, "trigger": trigger or {"kind": "manual"}}))
    except Exception as exc:  # noqa: BLE001
        stages.append(_stage("trigger", "failed", t0, {"source": source, "ref": ref}, reason=_why(exc)))
        stopped = "trigger"
    tree = got.get("tree")
    manifest: dict[str, Any] = {}
    # validate
    if stopped:
        stages.append(blocked("validate"))
    else:
        t0 = time.perf_counter()
        v = await validate_task(tree)
        manifest = v.get("manifest") or {}
        stages.append(_stage("validate", v["status"], t0,
                             {"schema_errors": v.get("schema_errors", []), "lint": v.get("lint")},
                             reason=v.get("reason", "")))
        stopped = "validate" if v["status"] == "failed" else None
    # build, test, deploy
    for name, run in (("build", lambda: _build(tree, home_s, manifest)),
                      ("test", lambda: _test(tree, home_s, manifest)),
                      ("deploy", lambda: _deploy(tree, env, home_s, app))):
        if stopped:
            stages.append(blocked(name))
            continue
        result = await run()
        stages.append(result)
        if result["status"] == "failed":
            stopped = name
    # monitor
    deploy_stage = stages[-1]
    if stopped:
        stages.append(blocked("monitor"))
    elif deploy_stage["status"] != "passed":
        stages.append(_skipped("monitor", "skipped: nothing was deployed"))
    else:
        mon = await _monitor(deploy_stage, manifest, env, home_s, window_s=monitor_s,
                             interval_s=monitor_interval_s, failures_allowed=max(1, monitor_failures))
        stages.append(mon)
        stopped = "monitor" if mon["status"] == "failed" else None
    # outcome and record
    deploy_result = (deploy_stage.get("details") or {}).get("result") or {}
    build_stage = next(s for s in stages if s["name"] == "build")
    failed = [s["name"] for s in stages if s["status"] == "failed"]
    rollback = (stages[-1].get("details") or {}).get("rollback") or {}
    if stages[-1]["name"] == "monitor" and stages[-1]["status"] == "failed":
        # the monitor's rollback: "rolled_back" only if it really put the previous release back
        outcome = "rolled_back" if rollback.get("outcome") in ("rolled_back", "promoted") else "failed"
    elif deploy_result.get("outcome") == "rolled_back":  # a canary the deploy's own analysis undid
        outcome = "rolled_back"
    elif failed:
        outcome = "failed"
    elif deploy_stage["status"] == "passed":
        outcome = "promoted"
    else:
        outcome = "passed (not deployed)"
    subject = str(manifest.get("name") or deploy_result.get("app") or Path(tree or source).name)
    release = deploy_result.get("release")
    payload = {"source": got.get("source", source), "commit": got.get("commit") or commit, "ref": ref,
               "env": env, "flow_run_id": run_id, "outcome": outcome, "artifacts": _artifacts(build_stage),
               "release": release.get("release_id") if isinstance(release, Mapping) else release,
               "stages": {s["name"]: s["status"] for s in stages},
               "trigger": {k: v for k, v in (trigger or {"kind": "manual"}).items()
                           if k in ("kind", "event", "repo", "ref", "commit", "pr_number", "delivery_id")}}
    stages.append(_record(settings, subject, payload))
    status = "failed" if failed else "passed"
    if github_block:
        stages.append(await _report_to_github(github_block, payload["commit"], trigger, stages, status, run_id))
    logger.info("cicd_pipeline %s@%s: %s (%s)", subject, (payload["commit"] or "-")[:12], status, outcome)
    doc = {"pipeline": "cicd_pipeline", "flow_run_id": run_id, "project": subject, "source": payload["source"],
           "commit": payload["commit"], "ref": ref, "env": env, "status": status, "outcome": outcome,
           "failed_stage": failed[0] if failed else None, "artifacts": payload["artifacts"],
           "release": release, "stages": stages, "seconds": round(time.perf_counter() - t_all, 3)}
    await _publish(doc)
    return CicdReport.model_validate(doc)


async def _report_to_github(block_name: str, commit: str | None, trigger: Mapping[str, Any] | None,
                            stages: list[dict[str, Any]], status: str, run_id: str | None) -> dict[str, Any]:
    """The ``report`` stage: the stages so far as a commit status, check run and PR comment."""
    t0 = time.perf_counter()
    if not commit:
        return _skipped("report", "skipped: no commit to report on")
    try:
        from blocks.github import NoaGitHub
        from noa_core.integrations.github_api import GitHubReporter

        block = await NoaGitHub.aload(block_name)
        pr = (trigger or {}).get("pr_number")
        result = {"stages": [{k: s.get(k) for k in ("name", "status", "duration_s", "reason")}
                             | {"details": s.get("reason", "")} for s in stages],
                  "verdict": status, "flow_run_id": run_id}

        def post() -> dict[str, Any]:
            with block.client() as client:
                reporter = GitHubReporter(client, block.target(commit, int(pr) if pr else None),
                                          context=block.context)
                return reporter.report(result).as_dict()

        outcome = await asyncio.to_thread(post)
    except Exception as exc:  # noqa: BLE001 - reporting must not change the pipeline's verdict
        return _stage("report", "failed", t0, reason=_why(exc))
    failed = [c for c in outcome.get("channels", []) if c.get("status") == "failed"]
    return _stage("report", "failed" if failed else "passed", t0, {"github": outcome},
                  reason="; ".join(f"{c.get('channel')}: {c.get('reason')}" for c in failed))


async def _publish(doc: Mapping[str, Any]) -> None:
    """A table artifact of the stages in the flow run's page (best effort)."""
    try:
        from prefect.artifacts import acreate_table_artifact

        rows = [{"stage": s["name"], "status": s["status"], "seconds": s["duration_s"], "reason": s["reason"][:200]}
                for s in doc["stages"]]
        await acreate_table_artifact(rows, key="cicd-pipeline",
                                     description=f"cicd_pipeline {doc['project']}: {doc['status']} ({doc['outcome']})")
    except Exception as exc:  # noqa: BLE001 - the artifact is a convenience
        get_run_logger().debug("no stage table artifact: %s", type(exc).__name__)


def run_cicd_pipeline(**parameters: Any) -> CicdReport:
    """Run the flow from sync code (the CLI, tests), without flow heartbeats."""
    from flows.runtime import in_process_run

    with in_process_run():  # heartbeat off, this process's owner mark on every run (flows/runtime.py)
        return asyncio.run(cicd_pipeline(**parameters))
