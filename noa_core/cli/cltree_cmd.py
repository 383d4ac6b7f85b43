"""``noa cltree``: the change log (CL tree).

::

    noa cltree log [--kind KIND] [--subject S] [--limit N] [--json]
    noa cltree verify [--repo SPEC] [--json]   exit 1 when an entry was edited, removed, reordered or cut off
    noa cltree graph --out FILE.svg|.png|.dot [--limit N]
    noa cltree export FILE.jsonl
    noa cltree checkpoint [--json]      record the current Merkle tree head

No Prefect here: these commands only read and write the registry database.
"""

import json
from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add ``noa cltree ...`` to the ``noa`` application."""
    from noa_core.cli import options as cli
    from noa_core.errors import NoaError

    cltree_app = typer.Typer(no_args_is_help=True,
                             help="The CL tree: append-only, hash-chained change log with Merkle checkpoints.")
    app.add_typer(cltree_app, name="cltree")
    KindOption = Annotated[Optional[str], typer.Option("--kind", help="only entries of this kind")]
    LimitOption = Annotated[Optional[int], typer.Option("--limit", help="only the newest N entries")]

    @cltree_app.command("log")
    def log(kind: KindOption = None,
            subject: Annotated[Optional[str], typer.Option("--subject", help="only entries about this subject")] = None,
            limit: LimitOption = None, home: cli.HomeOption = None, as_json: cli.JsonOption = False) -> None:
        """The change log, oldest first."""
        from noa_core.cltree import KINDS, change_entries

        if kind is not None and kind not in KINDS:
            raise cli._bad(f"--kind must be one of {', '.join(sorted(KINDS))}")
        if limit is not None and limit < 0:
            raise cli._bad("--limit must be 0 or more")
        try:
            entries = change_entries(cli._settings(home), kind=kind, subject=subject, limit=limit)
        except NoaError as exc:
            raise cli._fail(exc) from None
        if as_json:
            typer.echo(json.dumps([e.as_dict() for e in entries], indent=2))
            return
        for e in entries:
            parents = ",".join(p[:10] for p in e.parents) or "-"
            summary = json.dumps(e.payload, sort_keys=True, separators=(",", ":"))
            if len(summary) > 100:
                summary = summary[:97] + "..."
            typer.echo(f"{e.seq:>6} {e.id[:10]} {e.created_at[:19]} {e.kind:<9} {e.subject}  "
                       f"<- {parents}  {summary}")
        if not entries:
            cli._err().print("the change log is empty")

    @cltree_app.command("verify")
    def verify(home: cli.HomeOption = None, as_json: cli.JsonOption = False,
               repo: Annotated[Optional[str], typer.Option(
                   "--repo", help="also check the tree heads stored in this backup repository's snapshots "
                                  "(DIR, s3:BUCKET[/PREFIX], azure:CONTAINER[/PREFIX]; password from "
                                  "NOA_BACKUP_PASSWORD)")] = None) -> None:
        """Re-hash every entry, check every link and every checkpoint; exit 1 on tampering."""
        from noa_core.cltree import snapshot_heads
        from noa_core.cltree import verify as verify_log

        try:
            settings = cli._settings(home)
            extra = []
            if repo is not None:
                from noa_core.backup.service import (
                    parse_repo,
                    snapshot_checkpoints,
                    with_env_password,
                )

                extra = snapshot_heads(snapshot_checkpoints(with_env_password(parse_repo(repo, settings))))
            report = verify_log(settings, extra)
        except NoaError as exc:
            raise cli._fail(exc) from None
        if as_json:
            typer.echo(json.dumps(report.as_dict(), indent=2))
        else:
            console = cli._err()
            for warning in report.warnings:
                console.print(f"[yellow]warning:[/yellow] {warning}")
            for problem in report.problems:
                typer.echo(f"TAMPERED {problem.line()}")
            cp = report.checkpoint
            where = f"checkpoint size {cp.size}" if cp else "no checkpoint"
            state = "ok" if report.ok else f"{len(report.problems)} problem(s)"
            typer.echo(f"{state}: {report.entries} entries, root {report.root[:16]}, {where}")
        raise typer.Exit(0 if report.ok else 1)

    @cltree_app.command("graph")
    def graph(out: Annotated[Path, typer.Option("--out", help="FILE.svg, FILE.png or FILE.dot")],
              kind: KindOption = None, limit: LimitOption = 200, home: cli.HomeOption = None) -> None:
        """Draw the CL tree (one lane per subject, arrows to parents) as an image."""
        from noa_core.cltree import change_entries
        from noa_core.cltree.graph import drawing
        from noa_core.graphs import render

        try:
            entries = change_entries(cli._settings(home), kind=kind, limit=limit)
            result = render(drawing(entries, title=f"NOA CL tree ({len(entries)} entries)"), out)
        except NoaError as exc:
            raise cli._fail(exc) from None
        typer.echo(str(result.path))
        cli._err().print(f"{len(entries)} entries drawn with {result.renderer}")

    @cltree_app.command("export")
    def export(out: Annotated[Path, typer.Argument(help="FILE.jsonl")], kind: KindOption = None,
               home: cli.HomeOption = None) -> None:
        """Write every entry (oldest first) as JSON lines."""
        from noa_core.cltree import export_jsonl

        try:
            count = export_jsonl(cli._settings(home), out, kind=kind)
        except NoaError as exc:
            raise cli._fail(exc) from None
        typer.echo(str(out))
        cli._err().print(f"{count} entries exported")

    @cltree_app.command("checkpoint")
    def checkpoint_cmd(home: cli.HomeOption = None, as_json: cli.JsonOption = False) -> None:
        """Record the current Merkle tree head (size, root) in NOA_HOME/cltree/checkpoints.jsonl."""
        from noa_core.cltree import checkpoint

        try:
            head = checkpoint(cli._settings(home))
        except NoaError as exc:
            raise cli._fail(exc) from None
        typer.echo(json.dumps(head) if as_json else f"size {head['size']} root {head['root']}")
