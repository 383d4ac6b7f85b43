"""Backup flows: ``backup``, ``restore``, ``verify`` and ``cleanup`` (seed box 5, "backup system" and
"cleanup automation").

All four are async (no per-flow heartbeat thread) and leave artifacts a person reads:
a progress artifact while bytes move, a markdown summary, and for ``verify`` and
``cleanup`` a table naming every bad blob / every candidate. Credentials never travel
as parameters: a flow names a ``noa-backup-repository`` block or a repository spec,
and the tasks resolve them (``NOA_BACKUP_PASSWORD`` and cloud credentials from the
worker's environment otherwise).

``cleanup`` always lists first (table artifact) and removes only with ``dry_run=False``;
the scheduled deployment (prefect.yaml ``noa-cleanup``) runs it nightly. The ``backup``
flow is what ``noa workspace backup --flow`` and a scheduled ``noa-backup`` deployment run;
writes through NOA start backups with ``noa_core.backup.trigger.schedule_backup``
(a detached process, no server needed).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from prefect import flow
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from flows.run_names import (
    backup_run_name,
    cleanup_run_name,
    forget_run_name,
    restore_run_name,
    verify_run_name,
)
from noa_core.config import NoaSettings
from noa_core.results import (
    BackupReport,
    CleanupReport,
    ForgetReport,
    RestoreReport,
    VerifyReport,
)
from tasks.backup import (
    backup_task,
    forget_task,
    prune_task,
    resolve_config,
    restore_task,
    verify_task,
)


def _settings(home: str | None) -> NoaSettings:
    s = NoaSettings()
    return s.model_copy(update={"home": Path(home)}) if home else s


@flow(name="backup", flow_run_name=backup_run_name, log_prints=False)
async def backup(source: str | None = None, repo: str | None = None, block: str | None = None,
                 home: str | None = None, tags: list[str] | None = None, no_encryption: bool = False) -> BackupReport:
    """Snapshot SOURCE (default NOA_HOME) into the repository; the CL tree head goes in the snapshot.

    The repository is ``repo`` (a path, ``s3://...`` or ``azure://...``), a saved
    ``noa-backup-repository`` block, or NOA_HOME/backups; it is created on first use.
    Encrypted unless ``no_encryption``: the password comes from the block or
    ``NOA_BACKUP_PASSWORD``. Raises :class:`~noa_core.backup.interface.BackupError`
    (a bad repository spec or a missing password is its ``BackupBadInput``).
    """
    settings = _settings(home)
    doc = await backup_task(settings, repo, block, source, list(tags or []), no_encryption)
    snap = doc["snapshot"]
    await acreate_markdown_artifact(
        f"## Backup snapshot `{snap['id'][:12]}`\n\n"
        f"| | |\n|---|---|\n| repository | {doc['repository']} |\n| source | {', '.join(snap['paths'])} |\n"
        f"| files | {doc['files']:,} ({doc['files_reused']:,} unchanged, not re-read) |\n"
        f"| size | {doc['bytes'] / 1e6:,.1f} MB |\n| new blobs | {doc['blobs_new']:,} |\n"
        f"| stored | {doc['bytes_stored'] / 1e6:,.2f} MB in {doc['packs_new']} packs |\n"
        f"| encrypted | {doc['encrypted']} |\n| CL tree head | {doc['cltree_checkpoint']} |\n"
        f"| seconds | {doc['seconds']} |\n", key="backup-summary", description="backup snapshot")
    return BackupReport.model_validate(doc)


@flow(name="restore", flow_run_name=restore_run_name, log_prints=False)
async def restore(snapshot: str, target: str, repo: str | None = None, block: str | None = None,
                  home: str | None = None, overwrite: bool = False) -> RestoreReport:
    """Restore a snapshot byte for byte with permissions and mtimes.

    ``snapshot`` is an id or a unique prefix; ``target`` must be empty unless ``overwrite``.
    Raises ``BackupBadInput`` for an unknown snapshot or a non-empty target.
    """
    doc = await restore_task(_settings(home), repo, block, snapshot, target, overwrite)
    await acreate_markdown_artifact(
        f"## Restore of `{doc['snapshot'][:12]}`\n\n{doc['files']:,} files, {doc['bytes'] / 1e6:,.1f} MB into "
        f"`{doc['target']}` in {doc['seconds']} s\n", key="restore-summary", description="restore")
    return RestoreReport.model_validate(doc)


@flow(name="verify", flow_run_name=verify_run_name, log_prints=False)
async def verify(repo: str | None = None, block: str | None = None, home: str | None = None,
                 read_data: bool = True) -> VerifyReport:
    """Re-hash every blob; a table names each corrupted or missing one (``ok`` false then: an
    outcome, not an error)."""
    doc = await verify_task(_settings(home), repo, block, read_data)
    bad = [{"blob": i["blob"], "pack": i["pack"], "problem": "corrupted", "reason": i["reason"]}
           for i in doc["corrupted"]] + [{"blob": i["blob"], "pack": i["pack"], "problem": "missing",
                                          "reason": i["reason"]} for i in doc["missing"]]
    if bad:
        await acreate_table_artifact(bad[:500], key="verify-bad-blobs", description=f"{len(bad)} bad blobs")
    await acreate_markdown_artifact(
        f"## Backup verify: {'ok' if doc['ok'] else 'PROBLEMS'}\n\n{doc['packs']} packs, {doc['blobs_checked']:,} "
        f"blobs re-hashed, {len(doc['corrupted'])} corrupted, {len(doc['missing'])} missing\n\n"
        + "".join(f"- `{sid[:12]}`: {state}\n" for sid, state in doc["snapshots"].items()),
        key="verify-summary", description="backup verify")
    return VerifyReport.model_validate(doc)


@flow(name="cleanup", flow_run_name=cleanup_run_name, log_prints=False)
async def cleanup(home: str | None = None, dry_run: bool = True, repo: str | None = None, block: str | None = None,
                  keep_last: int = 0, keep_daily: int = 7, keep_weekly: int = 4, drops_older_than_days: float = 30.0,
                  keep_drops: int = 5, stale_hours: float = 24.0, results_days: float = 30.0) -> CleanupReport:
    """List stale sandboxes, orphaned archive blobs, snapshots out of retention, old drops, tmp, unused
    project environments and stored results older than ``results_days``; then
    (``dry_run=False``) remove exactly those and prune the repository."""
    from noa_core.backup.cleanup import apply_cleanup, plan_cleanup
    from noa_core.backup.maintenance import Policy

    settings = _settings(home)
    cfg = await asyncio.to_thread(resolve_config, settings, repo, block)
    policy = Policy(keep_last=keep_last, keep_daily=keep_daily, keep_weekly=keep_weekly)
    plan = await asyncio.to_thread(plan_cleanup, settings, policy=policy, backend=cfg,
                                   drops_older_than_days=drops_older_than_days, keep_drops=keep_drops,
                                   stale_hours=stale_hours, results_days=results_days)
    doc = plan.to_json()
    rows = [{"kind": i.kind, "target": i.target, "MB": round(i.bytes / 1e6, 3), "reason": i.reason}
            for i in plan.items]
    await acreate_table_artifact(rows or [{"kind": "-", "target": "nothing to clean", "MB": 0, "reason": ""}],
                                 key="cleanup-plan", description=("dry run: " if dry_run else "removing: ")
                                 + f"{len(rows)} items, {plan.bytes / 1e6:,.1f} MB")
    doc["dry_run"] = dry_run
    if not dry_run and plan.items:
        doc["applied"] = await asyncio.to_thread(apply_cleanup, settings, plan, backend=cfg)
    await acreate_markdown_artifact(
        f"## Cleanup ({'dry run' if dry_run else 'applied'})\n\n"
        + "".join(f"- {k}: {n}\n" for k, n in doc["counts"].items())
        + "".join(f"- {k}: {why}\n" for k, why in doc["skipped"].items()), key="cleanup-summary",
        description="workspace cleanup")
    return CleanupReport.model_validate(doc)


@flow(name="backup-forget", flow_run_name=forget_run_name, log_prints=False)
async def forget(repo: str | None = None, block: str | None = None, home: str | None = None, keep_last: int = 0,
                 keep_daily: int = 0, keep_weekly: int = 0, prune: bool = True, dry_run: bool = False) -> ForgetReport:
    """Retention like restic forget, then prune (``dry_run``: only say what would go)."""
    settings = _settings(home)
    policy = {"keep_last": keep_last, "keep_daily": keep_daily, "keep_weekly": keep_weekly}
    doc = await forget_task(settings, repo, block, policy, dry_run)
    if prune:
        doc["prune"] = await prune_task(settings, repo, block, dry_run)
    return ForgetReport.model_validate(doc)
