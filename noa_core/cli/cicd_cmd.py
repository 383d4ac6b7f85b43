"""``noa cicd run``: the CI/CD pipeline for one source, in this process.

::

    noa cicd run PATH [--commit SHA] [--ref REF] [--env staging|production] [--monitor-s S] [--json]

trigger -> validate -> build -> test -> deploy -> monitor -> CL tree; ``--json`` prints
the stage results as one JSON document. Exit 0: every stage passed or was skipped; 1: a
stage failed (the failing stage is named); 2: bad input.
"""

import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    """Add ``noa cicd ...`` to the ``noa`` application."""
    from noa_core.cli import options as cli
    from noa_core.errors import NoaError

    cicd_app = typer.Typer(no_args_is_help=True, help="CI/CD pipeline: validate, build, test, deploy, monitor.")
    app.add_typer(cicd_app, name="cicd")

    @cicd_app.command("run")
    def run(
        source: Annotated[str, typer.Argument(help="project directory, git URL / repository, archive or pypi:NAME")],
        commit: Annotated[Optional[str], typer.Option("--commit", help="the commit to build (must be HEAD)")] = None,
        ref: Annotated[Optional[str], typer.Option("--ref", help="the ref it came from, e.g. refs/heads/main")] = None,
        env: Annotated[str, typer.Option("--env", help="staging|production")] = "staging",
        monitor_s: Annotated[float, typer.Option("--monitor-s", help="seconds to watch the release")] = 30.0,
        home: cli.HomeOption = None,
        as_json: cli.JsonOption = False,
    ) -> None:
        """Run the CI/CD pipeline on SOURCE and print each stage's result."""
        console = cli._err()
        if env not in ("staging", "production"):
            raise cli._bad("--env must be staging or production")
        if commit is not None and not re.match(r"^[0-9a-fA-F]{4,64}$", commit):
            raise cli._bad(f"--commit {commit!r} is not a commit id")
        if not 0 <= monitor_s <= 86_400:
            raise cli._bad("--monitor-s must be between 0 and 86400")
        path = Path(source).expanduser()
        if "://" not in source and not source.startswith("pypi:") and not path.exists():
            raise cli._bad(f"{source} does not exist")
        if path.exists():
            source = str(path.resolve())
        settings = cli._settings(home)
        try:
            from noa_core.cli.connect import connect_prefect

            connect_prefect(settings, console)
            from flows.cicd_pipeline import run_cicd_pipeline

            with console.status(f"cicd_pipeline: {source}"):
                doc = run_cicd_pipeline(source=source, commit=commit, ref=ref, env=env,
                                        home=str(settings.home), monitor_s=monitor_s)
        except NoaError as exc:
            raise cli._fail(exc) from None
        if as_json:
            typer.echo(doc.model_dump_json(indent=2))
        else:
            _print(doc, Console())
        raise typer.Exit(1 if doc["status"] == "failed" else 0)


def _print(doc: dict, console: Console) -> None:
    table = Table(title=f"cicd_pipeline {doc['project']} @ {(doc.get('commit') or '-')[:12]}: "
                        f"{doc['status']} ({doc['outcome']})")
    for col in ("stage", "status", "s", "reason"):
        table.add_column(col)
    for s in doc["stages"]:
        table.add_row(s["name"], s["status"], f"{s['duration_s']:.1f}", (s.get("reason") or "")[:120])
    console.print(table)
