"""Backup tasks: noa_core.backup steps with retries, run off the event loop.

A retried backup is safe: packs uploaded by the failed attempt are found by their
headers and reused, and the snapshot manifest is only written by an attempt that
finished. Prefect's task cache is off (every run must look at the tree again).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.cache_policies import NO_CACHE

from noa_core.backup.service import BackendConfig, open_repository, parse_repo, run_backup, with_env_password
from noa_core.config import NoaSettings


def resolve_config(settings: NoaSettings, repo: str | None, block: str | None,
                   no_encryption: bool = False) -> BackendConfig:
    """Backend + credentials from a block or a spec string; resolved inside the task so secrets
    never travel as task or flow parameters."""
    from dataclasses import replace

    if block:
        from blocks.backup import load_backend_config

        cfg = load_backend_config(block)
    else:
        cfg = parse_repo(repo, settings)
    cfg = with_env_password(cfg)
    return replace(cfg, encrypt=False) if no_encryption else cfg


def tree_bytes(root: Path, exclude: tuple[str, ...] = ()) -> int:
    total = 0
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in exclude]
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


async def _with_progress(fn: Any, key: str, description: str, total: int) -> Any:
    """Run ``fn(progress)`` in a thread; a Prefect progress artifact follows its byte count."""
    state = {"bytes": 0}

    def progress(_stage: str, info: dict) -> None:
        state["bytes"] = info.get("bytes", state["bytes"])

    artifact_id = await acreate_progress_artifact(0.0, key=key, description=description)
    job = asyncio.ensure_future(asyncio.to_thread(fn, progress))
    while not job.done():
        await asyncio.wait({job}, timeout=1.0)
        if total:
            await aupdate_progress_artifact(artifact_id, min(99.0, 100.0 * state["bytes"] / total))
    result = job.result()
    await aupdate_progress_artifact(artifact_id, 100.0)
    return result


@task(name="backup-snapshot", retries=2, retry_delay_seconds=5, timeout_seconds=6 * 3600, cache_policy=NO_CACHE)
async def backup_task(settings: NoaSettings, repo: str | None, block: str | None, source: str | None,
                      tags: list[str], no_encryption: bool = False) -> dict:
    cfg = await asyncio.to_thread(resolve_config, settings, repo, block, no_encryption)
    src = Path(source) if source else settings.layout().root
    total = await asyncio.to_thread(tree_bytes, src, tuple(str(settings.layout().root / d)
                                                          for d in ("backups", "tmp", "prefect")))
    doc = await _with_progress(
        lambda progress: run_backup(settings, cfg, Path(source) if source else None, tags=tuple(tags),
                                    progress=progress),
        "backup-progress", f"backup of {src}", total)
    get_run_logger().info("snapshot %s: %d files, %d new blobs, %.2f MB stored", doc["snapshot"]["id"][:12],
                          doc["files"], doc["blobs_new"], doc["bytes_stored"] / 1e6)
    return doc


@task(name="restore-snapshot", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
async def restore_task(settings: NoaSettings, repo: str | None, block: str | None, snapshot: str, target: str,
                       overwrite: bool) -> dict:
    from noa_core.backup.restore import restore

    cfg = await asyncio.to_thread(resolve_config, settings, repo, block)
    r = await asyncio.to_thread(open_repository, cfg)
    result = await _with_progress(
        lambda progress: restore(r, snapshot, Path(target), overwrite=overwrite, progress=progress),
        "restore-progress", f"restore of {snapshot} into {target}", 0)
    return result.to_json()


@task(name="verify-repository", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
async def verify_task(settings: NoaSettings, repo: str | None, block: str | None, read_data: bool) -> dict:
    from noa_core.backup.maintenance import verify

    cfg = await asyncio.to_thread(resolve_config, settings, repo, block)
    r = await asyncio.to_thread(open_repository, cfg)
    return (await asyncio.to_thread(verify, r, read_data=read_data)).to_json()


@task(name="forget-snapshots", cache_policy=NO_CACHE)
async def forget_task(settings: NoaSettings, repo: str | None, block: str | None, policy: dict, dry_run: bool) -> dict:
    from noa_core.backup.maintenance import Policy, forget

    cfg = await asyncio.to_thread(resolve_config, settings, repo, block)
    r = await asyncio.to_thread(open_repository, cfg)
    decisions = await asyncio.to_thread(forget, r, Policy(**policy), dry_run=dry_run)
    return {"keep": [{"id": s.id, "time": s.time, "reasons": why} for s, why in decisions if why],
            "remove": [{"id": s.id, "time": s.time} for s, why in decisions if not why], "dry_run": dry_run}


@task(name="prune-repository", cache_policy=NO_CACHE)
async def prune_task(settings: NoaSettings, repo: str | None, block: str | None, dry_run: bool) -> dict:
    from noa_core.backup.maintenance import prune

    cfg = await asyncio.to_thread(resolve_config, settings, repo, block)
    r = await asyncio.to_thread(open_repository, cfg)
    return (await asyncio.to_thread(prune, r, dry_run=dry_run)).to_json()
