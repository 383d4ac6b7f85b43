"""``noa pipeline SOURCE``: code drop -> sandbox -> merge -> swarm -> seven stages -> deploy.

::

    noa pipeline SOURCE [--json] [--no-ai] [--sandbox A|B|C|auto] [--distributed]
                        [--shards N] [--no-deploy] [--alert-block TYPE/NAME] [--home DIR] [-v]

``--json`` prints one JSON document (``stages``: each ``name``, ``status``,
``duration_s``, ``details``; ``verdict``) on stdout; progress goes to stderr. Exit 0 when
every gate passed, 1 when a gate failed (or the merge refused), 2 on bad input.
stderr shows the steps and stages as they run (:mod:`noa_core.cli.pipeline_view`: a live
view on a terminal, plain lines elsewhere); Prefect's log lines go to the Prefect UI and
NOA_HOME/logs, and to the terminal too with ``-v/--verbose``.
``--distributed`` runs the swarms on the work pools' workers (start them with
``noa swarm up``); a swarm no worker picks up falls back to an embedded run.
"""


from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from noa_core.results import PipelineReport


def _print(doc: PipelineReport, console: Console) -> None:
    table = Table(title=f"pipeline {doc['project']}: {doc['verdict']}")
    for col in ("#", "stage", "status", "seconds", "details"):
        table.add_column(col)
    style = {"passed": "green", "failed": "red", "skipped": "yellow"}
    for i, s in enumerate(doc["stages"], 1):
        table.add_row(str(i), s["name"], f"[{style.get(s['status'], '')}]{s['status']}[/]", f"{s['duration_s']:.1f}",
                      str(s["details"])[:140])
    console.print(table)
    steps = doc.get("steps", {})
    drop, merge = steps.get("code_drop", {}), steps.get("sandbox_merge", {})
    console.print(f"drop {drop.get('drop_id')} -> sandbox {drop.get('sandbox')} (confidence "
                  f"{drop.get('confidence', 0):.2f}); merge: {merge.get('outcome')}; "
                  f"swarm: {steps.get('swarm', {}).get('status', 'not run')}")
    for s in doc["stages"]:
        deployed = ((s.get("data") or {}).get("deploy") or {})
        if deployed.get("outcome") == "promoted" and deployed.get("url"):
            console.print(f"{deployed.get('env')}: {deployed.get('app')} serving at {deployed['url']} "
                          f"(stop with `noa deploy-supervisor stop`)")
    console.print(f"report: {doc.get('report_path')}")


VerboseOption = Annotated[bool, typer.Option("--verbose", "-v",
                                            help="Prefect's log lines on stderr too (they always go to the "
                                                 "Prefect UI and NOA_HOME/logs)")]


def register(app: typer.Typer) -> None:
    """Add ``noa pipeline`` to the ``noa`` application."""
    from noa_core.cli import options as cli

    @app.command("pipeline")
    def pipeline(
        source: Annotated[str, typer.Argument(help="directory, git URL, .tar.gz/.zip, or pypi:NAME==VERSION")],
        as_json: cli.JsonOption = False,
        home: cli.HomeOption = None,
        no_ai: Annotated[bool, typer.Option("--no-ai", help="skip the local LLM opinion")] = False,
        sandbox: Annotated[str, typer.Option("--sandbox", help="A, B, C or auto")] = "auto",
        distributed: Annotated[bool, typer.Option("--distributed",
                                                  help="run the swarms on the work pools' workers")] = False,
        shards: Annotated[int, typer.Option("--shards", help="test shards (agents) of the Python swarm")] = 2,
        no_deploy: Annotated[bool, typer.Option("--no-deploy", help="stop before staging and production")] = False,
        alert_block: Annotated[str | None, typer.Option(
            "--alert-block", help="Prefect notification block for alerts, TYPE/NAME (default $NOA_ALERT_BLOCK)")] = None,
        verbose: VerboseOption = False,
    ) -> None:
        """Run the whole job on SOURCE: drop, merge, swarms, the seven stages and their gates."""
        run_pipeline_command(source, as_json=as_json, home=home, no_ai=no_ai, sandbox=sandbox,
                             distributed=distributed, shards=shards, no_deploy=no_deploy, alert_block=alert_block,
                             verbose=verbose)


def run_pipeline_command(source: str, *, as_json: bool = False, home: Path | None = None, no_ai: bool = False,
                         sandbox: str = "auto", distributed: bool = False, shards: int = 2, no_deploy: bool = False,
                         alert_block: str | None = None, verbose: bool = False) -> None:
    """The body of ``noa pipeline`` (``noa demo`` runs it on the example service); raises typer.Exit."""
    from noa_core.cli import options as cli
    from noa_core.errors import NoaError

    console = cli._err()
    if sandbox.upper() not in ("A", "B", "C", "AUTO"):
        raise cli._bad(f"--sandbox must be A, B, C or auto, not {sandbox!r}")
    if not 1 <= shards <= 64:
        raise cli._bad("--shards must be between 1 and 64")
    if "://" not in source and not source.startswith(("pypi:", "git@")) and not Path(source).exists():
        raise cli._bad(f"{source} does not exist")
    settings = cli._settings(home)
    try:
        from noa_core.cli.connect import connect_prefect

        server = connect_prefect(settings, console)
        from prefect import tags

        from flows.pipeline import run_pipeline
        from noa_core.cli.pipeline_view import pipeline_view

        with pipeline_view(console, title=f"pipeline {source}", verbose=verbose) as view:
            with tags(view.tag):  # every run of this pipeline carries it: the view reads them back
                doc = run_pipeline(source=source, home=str(settings.home), sandbox=sandbox.upper(),
                                   use_ai=not no_ai, mode="distributed" if distributed else "embedded",
                                   shards=shards, deploy=not no_deploy, alert_block=alert_block)
            view.finish(doc)
    except NoaError as exc:
        raise cli._fail(exc) from None
    doc.ui_url = f"{server.ui_url.rstrip('/')}/runs/flow-run/{doc.pipeline_run_id}"
    if as_json:
        typer.echo(doc.model_dump_json(indent=2))
    else:
        _print(doc, Console())
        console.print(f"Prefect UI: {doc['ui_url']}", soft_wrap=True)
    raise typer.Exit(0 if doc["verdict"] == "passed" else 1)
