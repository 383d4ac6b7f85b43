"""``noa``: the command line face of NOA ARK OS.

stdout carries results only (one JSON document with ``--json``); progress, logs and
errors go to stderr. Exit codes: 0 done, 1 ran and said no, 2 bad input.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from noa_core.cli.options import HomeOption, JsonOption, _bad, _err, _fail, _settings
from noa_core.errors import NoaError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="NOA ARK OS: drop in a codebase, take it to production.")
prefect_app = typer.Typer(no_args_is_help=True, help="The embedded Prefect server of NOA_HOME.")
app.add_typer(prefect_app, name="prefect")

def _print_drop_summary(report: dict, console: Console) -> None:
    table = Table(title=f"code drop {report['drop_id']}", show_header=False)
    t = report["tests"]
    rows = [
        ("project", f"{report['project']}{' (update)' if report.get('is_update') else ''}"),
        ("languages", ", ".join(f"{k} {v:,} B" for k, v in list(report["languages"].items())[:4])),
        ("build", str(report.get("build_system"))),
        ("licence", str(report.get("licence"))),
        ("tests", f"{t['status']}: {t['passed']} passed, {t['failed']} failed, {t['errors']} errors"
                  + (f", {t['subtests_passed']} subtests passed" if t.get("subtests_passed") else "")),
        ("findings", str(len(report["findings"]))),
        ("confidence", f"{report['confidence']:.2f}"),
        ("sandbox", f"{report['sandbox']} - {report['sandbox_reason']}"),
        ("commit", report["commit"][:12]),
        ("report", str(report.get("report_path"))),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    skipped = {k: v for k, v in report["analyzers"].items() if v["status"] != "ok"}
    for name, info in skipped.items():
        console.print(f"[yellow]{name}: {info['status']}[/yellow] - {info['reason']}")


def _drop_exit_code(report: dict) -> int:
    return 1 if report["tests"]["status"] in ("failed", "error", "timeout", "unknown") else 0


@app.command()
def drop(
    source: Annotated[str, typer.Argument(help="directory, git URL, .tar.gz/.zip, or pypi:NAME==VERSION")],
    sandbox: Annotated[str, typer.Option(help="A, B, C or auto")] = "auto",
    as_json: JsonOption = False,
    home: HomeOption = None,
    no_ai: Annotated[bool, typer.Option("--no-ai", help="skip the local LLM opinion")] = False,
) -> None:
    """Fetch SOURCE, analyse it, score it, land it in a sandbox and validate it."""
    settings = _settings(home)
    console = _err()
    if sandbox.upper() not in ("A", "B", "C", "AUTO"):
        raise _bad(f"--sandbox must be A, B, C or auto, not {sandbox!r}")
    try:
        from noa_core.cli.connect import connect_prefect

        server = connect_prefect(settings, console)
        from flows.code_drop import code_drop
        from flows.runtime import run_in_process

        with console.status(f"code drop: {source}"):
            report = run_in_process(code_drop, source=source, sandbox=sandbox.upper(),
                                    home=str(settings.home), use_ai=not no_ai)
    except NoaError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _print_drop_summary(report, Console())
        if report.get("flow_run_id"):
            console.print(f"Prefect UI: {server.ui_url.rstrip('/')}/runs/flow-run/{report['flow_run_id']}")
    raise typer.Exit(_drop_exit_code(report))


def example_service_path() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "examples" / "hello-service"
        if (candidate / "noa.yaml").is_file():
            return candidate
    raise NoaError("the bundled example service (examples/hello-service) is not present in this installation")


@app.command()
def demo(
    home: HomeOption = None,
    as_json: JsonOption = False,
    no_ai: Annotated[bool, typer.Option("--no-ai", help="skip the local LLM opinion")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Prefect's log lines on stderr too")] = False,
) -> None:
    """Run the main job on the bundled example service: drop, merge, swarms, the seven stages,
    blue-green to staging and a canary to production behind Caddy (embedded defaults, no set-up)."""
    from noa_core.cli.pipeline_cmd import run_pipeline_command

    try:
        example = example_service_path()
    except NoaError as exc:
        raise _fail(exc) from None
    _err().print(f"[bold]NOA demo[/bold]: the whole pipeline on the bundled example service {example}")
    run_pipeline_command(str(example), as_json=as_json, home=home, no_ai=no_ai, verbose=verbose)


@prefect_app.command("status")
def prefect_status(home: HomeOption = None) -> None:
    """Say whether the embedded Prefect server runs, and where its UI is."""
    from noa_core.orchestration.prefect_server import EmbeddedPrefectServer

    settings = _settings(home)
    found = EmbeddedPrefectServer(settings.layout().prefect, settings.prefect_port).running()
    if found is None:
        typer.echo("not running")
        raise typer.Exit(1)
    typer.echo(f"running: pid {found.pid}, UI {found.ui_url}, API {found.api_url}")


@prefect_app.command("start")
def prefect_start(home: HomeOption = None) -> None:
    """Start (or reuse) the embedded Prefect server and print its UI address."""
    from noa_core.orchestration.prefect_server import EmbeddedPrefectServer

    settings = _settings(home)
    settings.layout().ensure()
    try:
        with _err().status("starting Prefect server"):
            found = EmbeddedPrefectServer(settings.layout().prefect, settings.prefect_port).ensure()
    except NoaError as exc:
        raise _fail(exc) from None
    typer.echo(f"running: pid {found.pid}, UI {found.ui_url}, API {found.api_url}")


@prefect_app.command("stop")
def prefect_stop(home: HomeOption = None) -> None:
    """Stop the embedded Prefect server of NOA_HOME."""
    from noa_core.orchestration.prefect_server import EmbeddedPrefectServer

    settings = _settings(home)
    stopped = EmbeddedPrefectServer(settings.layout().prefect, settings.prefect_port).stop()
    typer.echo("stopped" if stopped else "was not running")


def main() -> None:  # pragma: no cover - console entry point
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    app()


# --- sub-commands registered by their own modules (one line each) ---------------------
from noa_core.cli.merge_cmd import register as _register_merge; _register_merge(app)  # noqa: E402
from noa_core.cli.watch_cmd import register as _register_watch; _register_watch(app)  # noqa: E402
from noa_core.cli.swarm_cmd import register as _register_swarm; _register_swarm(app)  # noqa: E402
from noa_core.cli.workspace_cmd import register as _register_workspace, workspace_app as _workspace_app  # noqa: E402
_register_workspace(app)
from noa_core.cli.backup_cmd import register as _register_backup; _register_backup(_workspace_app)  # noqa: E402
from noa_core.cli.cltree_cmd import register as _register_cltree; _register_cltree(app)  # noqa: E402
from noa_core.cli.pipeline_cmd import register as _register_pipeline; _register_pipeline(app)  # noqa: E402
from noa_core.cli.expose_cmd import register as _register_expose; _register_expose(app)  # noqa: E402
from noa_core.cli.deploy_cmd import register as _register_deploy; _register_deploy(app)  # noqa: E402
from noa_core.cli.webhook_cmd import register as _register_webhook; _register_webhook(app)  # noqa: E402
from noa_core.cli.cicd_cmd import register as _register_cicd; _register_cicd(app)  # noqa: E402
from noa_core.cli.apps_cmd import register as _register_apps; _register_apps(app)  # noqa: E402
from noa_core.cli.server_cmd import register as _register_server; _register_server(app)  # noqa: E402
from noa_core.cli.doctor_cmd import register as _register_doctor; _register_doctor(app)  # noqa: E402
from noa_core.cli.docker_cmd import register as _register_docker; _register_docker(app)  # noqa: E402
