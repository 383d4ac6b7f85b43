"""Stage tasks: the unified workflow's steps over noa_core.stages and noa_core.build.

Every task is async and hands its blocking work (analyzers, semgrep, builds - all
isolated - files, the change log) to a thread, so the stage flows stay async (no
heartbeat thread per flow run) and their steps overlap where they can.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from noa_core.config import NoaSettings
from noa_core.manifest import NoaManifest
from noa_core.stages.analysis import analyse_tree
from tasks.reporting import artifact_key
from tasks.retry import retry_unless_bad_input

__all__ = ["analyse_tree_task", "build_task", "change_log_task", "python_benchmarks_task",
           "record_change", "semgrep_task", "stage_table", "write_json"]


def write_json(path: Path, doc: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as fh:
        json.dump(doc, fh, indent=2, default=str)
    os.replace(fh.name, path)
    return path


@task(name="analyse-tree", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=1,
      retry_condition_fn=retry_unless_bad_input)
async def analyse_tree_task(project_dir: str) -> dict[str, Any]:
    """Every analyzer in parallel and the confidence score, for a tree no code drop analysed."""
    return await asyncio.to_thread(analyse_tree, Path(project_dir))


@task(name="semgrep", cache_policy=NO_CACHE)
async def semgrep_task(settings: NoaSettings, project_dir: str) -> dict[str, Any]:
    """semgrep with NOA's shipped rules, isolated and offline."""
    from noa_core.stages.semgrep import run_semgrep

    run = await asyncio.to_thread(run_semgrep, Path(project_dir), settings.exec,
                                  hide_paths=(str(settings.layout().root),))
    get_run_logger().info("semgrep: %s, %d findings %s", run.status, len(run.findings), run.reason)
    return run.as_dict()


@task(name="python-benchmarks", cache_policy=NO_CACHE)
async def python_benchmarks_task(settings: NoaSettings, project_dir: str, manifest: NoaManifest | None,
                                 run_id: str) -> dict[str, Any]:
    from noa_core.pyenv.provider import prepare_python_env
    from noa_core.stages.performance import has_pytest_benchmarks, run_pytest_benchmarks

    layout = settings.layout()
    hide = (str(layout.root),)
    env = None
    if has_pytest_benchmarks(Path(project_dir)):
        env = await asyncio.to_thread(prepare_python_env, Path(project_dir), home=layout.root, limits=settings.exec,
                                      config=manifest.python_env if manifest else None, hide_paths=hide)
    run = await asyncio.to_thread(run_pytest_benchmarks, Path(project_dir), manifest, settings.exec,
                                  layout.tmp / "bench" / run_id, hide_paths=hide, python_env=env)
    return run.as_dict()


@task(name="build", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2,
      retry_condition_fn=retry_unless_bad_input)
async def build_task(settings: NoaSettings, project_dir: str, manifest: NoaManifest, out_dir: str,
                     dependencies: dict[str, list[dict[str, Any]]] | None) -> dict[str, Any]:
    """Wheel + sdist / cargo / go build, isolated; artifacts by BLAKE3; the CycloneDX SBOM."""
    from noa_core.build import build_project
    from noa_core.build.python import is_python_project
    from noa_core.pyenv.provider import prepare_python_env

    layout = settings.layout()
    hide = (str(layout.root),)
    env = None
    if not manifest.build.command and is_python_project(Path(project_dir)):
        env = await asyncio.to_thread(prepare_python_env, Path(project_dir), home=layout.root, limits=settings.exec,
                                      config=manifest.python_env, hide_paths=hide)
    result = await asyncio.to_thread(build_project, Path(project_dir), manifest, Path(out_dir), settings.exec,
                                     dependencies=dependencies, hide_paths=hide,
                                     cache_dir=layout.root / "cache" / "buildenv", python_env=env,
                                     deps_home=layout.root)
    get_run_logger().info("build: %s - %s", result.status, result.reason)
    return result.as_dict()


async def record_change(settings: NoaSettings, kind: str, subject: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One entry in the CL tree (contract 1) and its Prefect event; never raises."""
    from tasks.changelog import record_step

    return await asyncio.to_thread(record_step, settings, kind, subject, payload)


@task(name="change-log", cache_policy=NO_CACHE)
async def change_log_task(settings: NoaSettings, kind: str, subject: str, payload: dict[str, Any]) -> dict[str, Any]:
    """:func:`record_change` as a task (visible in the run graph: the error flow and the pipeline use it)."""
    return await record_change(settings, kind, subject, payload)


async def stage_table(project: str, stage: str, rows: list[dict[str, Any]], description: str) -> None:
    """The stage's table artifact (shown on the stage's subflow run in the Prefect UI)."""
    if not rows:
        rows = [{"note": description}]
    await acreate_table_artifact(rows, key=artifact_key("stage", project, stage), description=description[:500])
