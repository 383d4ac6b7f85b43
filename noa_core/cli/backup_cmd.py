"""``noa workspace backup|restore|verify|forget|snapshots``: de-duplicated, encrypted snapshots.

::

    noa workspace backup [SOURCE] [--repo SPEC | --block NAME] [--tag T] [--no-encryption] [--flow] [--json]
    noa workspace restore SNAPSHOT TARGET [--repo SPEC] [--overwrite] [--json]
    noa workspace verify [--repo SPEC] [--no-read-data] [--json]      exit 1 naming each bad blob
    noa workspace forget --keep-last N --keep-daily N --keep-weekly N [--prune] [--dry-run] [--json]
    noa workspace snapshots [--repo SPEC] [--json]
    noa workspace cleanup [--apply] [--keep-daily 7 --keep-weekly 4] [--drops-days 30] [--json]

SPEC: a directory (default NOA_HOME/backups/repo), ``s3:BUCKET[/PREFIX]`` or
``azure:CONTAINER[/PREFIX]`` (see noa_core/backup/service.py). These commands call
noa_core directly and never import Prefect, except ``--block`` (reads a Prefect block)
and ``backup --flow`` (records the run as the ``backup`` flow in the Prefect UI).
"""

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from noa_core.cli import options as cli
from noa_core.errors import NoaError
from noa_core.results import (
    BackupReport,
    CleanupReport,
    ForgetReport,
    RestoreReport,
    VerifyReport,
)


def register(workspace_app: typer.Typer) -> None:
    """Add the backup commands to the ``noa workspace`` group."""
    RepoOption = Annotated[Optional[str], typer.Option(
        "--repo", envvar="NOA_BACKUP_REPO", help="repository: DIR, s3:BUCKET[/PREFIX] or azure:CONTAINER[/PREFIX]")]
    BlockOption = Annotated[Optional[str], typer.Option(
        "--block", help="name of a noa-backup-repository Prefect block (backend, credentials, password)")]

    def config(home: Optional[Path], repo: Optional[str], block: Optional[str], no_encryption: bool = False):
        from dataclasses import replace

        from noa_core.backup.service import parse_repo, with_env_password

        settings = cli._settings(home)
        if block:
            from blocks.backup import load_backend_config

            cfg = load_backend_config(block)
        else:
            cfg = parse_repo(repo, settings)
        cfg = with_env_password(cfg)
        if no_encryption:
            cfg = replace(cfg, encrypt=False)
        return settings, cfg

    def progress_printer(console):  # noqa: ANN001, ANN202
        state = {"t": time.monotonic()}

        def show(stage: str, info: dict) -> None:
            if time.monotonic() - state["t"] < 1.0:
                return
            state["t"] = time.monotonic()
            done = info.get("bytes", 0) / 1e6
            extra = f", {info['files']:,} files" if "files" in info else ""
            console.print(f"[dim]{stage}: {done:,.1f} MB{extra}[/dim]")
        return show

    @workspace_app.command("backup")
    def backup_cmd(
        source: Annotated[Optional[Path], typer.Argument(help="directory to back up (default: NOA_HOME)")] = None,
        repo: RepoOption = None, block: BlockOption = None,
        tag: Annotated[Optional[list[str]], typer.Option("--tag", help="tag the snapshot (repeatable)")] = None,
        no_encryption: Annotated[bool, typer.Option("--no-encryption",
                                                    help="create the repository unencrypted")] = False,
        force_read: Annotated[bool, typer.Option("--force-read", help="re-read every file")] = False,
        flow: Annotated[bool, typer.Option("--flow", help="run as the Prefect `backup` flow (UI run history)")] = False,
        home: cli.HomeOption = None, as_json: cli.JsonOption = False,
    ) -> None:
        """Back up SOURCE as a de-duplicated snapshot (manifest written last)."""
        console = cli._err()
        if source is not None and not source.is_dir():
            raise cli._bad(f"{source} is not a directory")
        try:
            settings, cfg = config(home, repo, block, no_encryption)
            if flow:
                from noa_core.cli.connect import connect_prefect

                connect_prefect(settings, console)
                from flows.backup import backup as backup_flow
                from flows.runtime import run_in_process

                doc = run_in_process(backup_flow, source=str(source) if source else None, repo=repo, block=block,
                                     home=str(settings.home), tags=list(tag or []), no_encryption=no_encryption)
            else:
                from noa_core.backup.service import run_backup

                doc = run_backup(settings, cfg, source, tags=tuple(tag or ()), progress=progress_printer(console),
                                 force_read=force_read)
        except NoaError as exc:
            raise cli._fail(exc) from None
        if as_json:
            typer.echo(BackupReport.model_validate(doc).model_dump_json(indent=2))
            return
        snap = doc["snapshot"]
        typer.echo(f"snapshot {snap['id'][:12]} saved in {doc['repository']}")
        console.print(f"{doc['files']:,} files ({doc['files_reused']:,} unchanged), {doc['bytes'] / 1e6:,.1f} MB; "
                      f"new: {doc['blobs_new']:,} blobs, {doc['bytes_stored'] / 1e6:,.2f} MB stored "
                      f"in {doc['packs_new']} packs; {doc['seconds']:.2f} s"
                      + ("" if doc["encrypted"] else " [yellow](unencrypted)[/yellow]"))
        if doc["skipped"]:
            console.print(f"[yellow]skipped {len(doc['skipped'])} special files[/yellow]")

    @workspace_app.command("restore")
    def restore_cmd(
        snapshot: Annotated[str, typer.Argument(help="snapshot id (prefix of 4+ characters) or 'latest'")],
        target: Annotated[Path, typer.Argument(help="directory to restore into")],
        repo: RepoOption = None, block: BlockOption = None,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="restore into a non-empty directory")] = False,
        home: cli.HomeOption = None, as_json: cli.JsonOption = False,
    ) -> None:
        """Restore a snapshot byte for byte, with permissions and mtimes."""
        from noa_core.backup.service import open_repository
        from noa_core.backup.restore import restore

        console = cli._err()
        try:
            _settings, cfg = config(home, repo, block)
            r = open_repository(cfg)
            result = restore(r, snapshot, target, overwrite=overwrite, progress=progress_printer(console))
        except NoaError as exc:
            raise cli._fail(exc) from None
        if as_json:
            typer.echo(RestoreReport.model_validate(result.to_json()).model_dump_json(indent=2))
            return
        typer.echo(f"restored {result.snapshot[:12]} to {result.target}: {result.files:,} files, "
                   f"{result.bytes / 1e6:,.1f} MB in {result.seconds:.2f} s")

    @workspace_app.command("verify")
    def verify_cmd(
        repo: RepoOption = None, block: BlockOption = None,
        read_data: Annotated[bool, typer.Option("--read-data/--no-read-data",
                                                help="re-hash every blob (default) or only check structure")] = True,
        home: cli.HomeOption = None, as_json: cli.JsonOption = False,
    ) -> None:
        """Re-hash every blob; name each corrupted or missing one. Exit 1 if any."""
        from noa_core.backup.maintenance import verify
        from noa_core.backup.service import open_repository

        try:
            _settings, cfg = config(home, repo, block)
            report = verify(open_repository(cfg), read_data=read_data)
        except NoaError as exc:
            raise cli._fail(exc) from None
        if as_json:
            typer.echo(VerifyReport.model_validate(report.to_json()).model_dump_json(indent=2))
        else:
            for item in report.corrupted:
                typer.echo(f"corrupted blob {item['blob']} in pack {item['pack']}: {item['reason']}")
            for item in report.missing:
                typer.echo(f"missing blob {item['blob']}" + (f" (pack {item['pack']})" if item["pack"] else "")
                           + f": {item['reason']}")
            for bad_index in report.bad_index_files:
                typer.echo(f"unreadable index file {bad_index}")
            for sid, state in report.snapshots.items():
                if state != "ok":
                    typer.echo(f"snapshot {sid[:12]}: {state}")
            if report.ok:
                typer.echo(f"no errors: {report.packs} packs, {report.blobs_checked:,} blobs "
                           f"({report.bytes_checked / 1e6:,.1f} MB) re-hashed, {len(report.snapshots)} snapshots")
        raise typer.Exit(0 if report.ok else 1)

    @workspace_app.command("forget")
    def forget_cmd(
        keep_last: Annotated[int, typer.Option("--keep-last", min=0, help="keep the N newest snapshots")] = 0,
        keep_hourly: Annotated[int, typer.Option("--keep-hourly", min=0)] = 0,
        keep_daily: Annotated[int, typer.Option("--keep-daily", min=0, help="newest of each of N days")] = 0,
        keep_weekly: Annotated[int, typer.Option("--keep-weekly", min=0, help="newest of each of N ISO weeks")] = 0,
        keep_monthly: Annotated[int, typer.Option("--keep-monthly", min=0)] = 0,
        prune_data: Annotated[bool, typer.Option("--prune", help="then delete data no snapshot needs")] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="only list what would go")] = False,
        repo: RepoOption = None, block: BlockOption = None,
        home: cli.HomeOption = None, as_json: cli.JsonOption = False,
    ) -> None:
        """Retention like restic forget (grouped by host and paths), optionally with prune."""
        from noa_core.backup.maintenance import Policy, forget, prune
        from noa_core.backup.service import open_repository

        policy = Policy(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly)
        try:
            _settings, cfg = config(home, repo, block)
            r = open_repository(cfg)
            decisions = forget(r, policy, dry_run=dry_run)
            pruned = prune(r, dry_run=dry_run) if prune_data else None
        except NoaError as exc:
            raise cli._fail(exc) from None
        doc = {"dry_run": dry_run,
               "keep": [{"id": s.id, "time": s.time, "reasons": why} for s, why in decisions if why],
               "remove": [{"id": s.id, "time": s.time} for s, why in decisions if not why],
               "prune": pruned.to_json() if pruned else None}
        if as_json:
            typer.echo(ForgetReport.model_validate(doc).model_dump_json(indent=2))
            return
        verb = "would remove" if dry_run else "removed"
        for s, why in decisions:
            typer.echo(f"{'keep  ' if why else verb + ' '} {s.id[:12]} {s.time} {', '.join(why)}")
        if pruned:
            typer.echo(f"prune{' (dry run)' if dry_run else ''}: {pruned.packs_deleted} packs deleted, "
                       f"{pruned.packs_repacked} repacked, {pruned.blobs_removed} blobs unused, "
                       f"{pruned.bytes_freed / 1e6:,.2f} MB freed")

    @workspace_app.command("snapshots")
    def snapshots_cmd(repo: RepoOption = None, block: BlockOption = None,
                      home: cli.HomeOption = None, as_json: cli.JsonOption = False) -> None:
        """List the complete snapshots, oldest first."""
        from noa_core.backup.service import open_repository

        try:
            _settings, cfg = config(home, repo, block)
            snaps = open_repository(cfg).snapshots()
        except NoaError as exc:
            raise cli._fail(exc) from None
        if as_json:
            typer.echo(json.dumps([s.to_json() for s in snaps], indent=2))
            return
        for s in snaps:
            st = s.stats
            typer.echo(f"{s.id[:12]}  {s.time}  {s.hostname}  {','.join(s.paths)}  "
                       f"{st.get('files', 0):,} files  {st.get('bytes', 0) / 1e6:,.1f} MB"
                       + (f"  tags={','.join(s.tags)}" if s.tags else ""))

    @workspace_app.command("cleanup")
    def cleanup_cmd(
        apply: Annotated[bool, typer.Option("--apply", help="remove the listed items (default: list only)")] = False,
        keep_last: Annotated[int, typer.Option("--keep-last", min=0)] = 0,
        keep_daily: Annotated[int, typer.Option("--keep-daily", min=0)] = 7,
        keep_weekly: Annotated[int, typer.Option("--keep-weekly", min=0)] = 4,
        drops_days: Annotated[float, typer.Option("--drops-days", help="drops older than this many days")] = 30.0,
        keep_drops: Annotated[int, typer.Option("--keep-drops", min=0, help="always keep the newest N drops")] = 5,
        stale_hours: Annotated[float, typer.Option("--stale-hours", help="tmp/ and stray sandbox dirs")] = 24.0,
        results_days: Annotated[float, typer.Option("--results-days", help="stored flow results and cached "
                                                    "analyzer results older than this many days")] = 30.0,
        repo: RepoOption = None, block: BlockOption = None,
        home: cli.HomeOption = None, as_json: cli.JsonOption = False,
    ) -> None:
        """List (and with --apply remove) stale sandboxes, orphaned archive blobs, old snapshots, old drops,
        unused project environments and old stored results."""
        from noa_core.backup.cleanup import apply_cleanup, plan_cleanup
        from noa_core.backup.maintenance import Policy

        try:
            settings, cfg = config(home, repo, block)
            plan = plan_cleanup(settings, policy=Policy(keep_last=keep_last, keep_daily=keep_daily,
                                                        keep_weekly=keep_weekly),
                                backend=cfg, drops_older_than_days=drops_days, keep_drops=keep_drops,
                                stale_hours=stale_hours, results_days=results_days)
            applied = apply_cleanup(settings, plan, backend=cfg) if apply and plan.items else None
        except NoaError as exc:
            raise cli._fail(exc) from None
        doc = {**plan.to_json(), "dry_run": not apply, "applied": applied}
        if as_json:
            typer.echo(CleanupReport.model_validate(doc).model_dump_json(indent=2))
            return
        verb = "removed" if apply else "would remove"
        for item in plan.items:
            typer.echo(f"{verb} {item.kind:8s} {item.target}  {item.bytes / 1e6:,.2f} MB  ({item.reason})")
        for kind, why in plan.skipped.items():
            typer.echo(f"{kind}: {why}")
        if not plan.items:
            typer.echo("nothing to clean")
        elif not apply:
            typer.echo(f"{len(plan.items)} items, {plan.bytes / 1e6:,.2f} MB: run again with --apply to remove them")
