"""``noa deploy`` and ``noa rollback``: registered on the main app by :func:`register`.

::

    noa deploy PATH --env staging|production [--strategy blue-green|canary] [--interval S]
               [--steps 5,25,50,100] [--pause-at 25] [--target NAME] [--json]
    noa rollback APP [--env production] [--json]
    noa deploy-supervisor status|stop

stdout carries the result only (one JSON document with ``--json``: app, env, strategy,
steps (weight, duration, metrics, verdict), outcome, release, reason, endpoint); progress
goes to stderr. Exit 0 promoted (or skipped: nothing to deploy), 1 rolled back or failed,
2 bad input.
"""


import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from noa_core.results import DeployReport


def _print(res: DeployReport, console: Console) -> None:
    t = Table(title=f"{res['app']} -> {res['env']} ({res['strategy']}): {res['outcome']}")
    for col in ("step", "weight", "s", "verdict", "canary", "stable", "reason"):
        t.add_column(col)
    for s in res.get("steps", []):
        m = s.get("metrics") or {}

        def fmt(d: dict[str, Any] | None) -> str:
            if not d:
                return ""
            return f"{d.get('requests', 0)} req, {d.get('failures', 0)} fail, p99 {d.get('p99_ms')} ms"

        t.add_row(str(s["name"]), f"{s['weight']}%", f"{s['duration_s']:.1f}", s["verdict"],
                  fmt(m.get("canary")), fmt(m.get("stable")), s.get("reason", ""))
    console.print(t)
    console.print(f"release: {res.get('release')}   {res.get('reason', '')}")
    if res.get("endpoint"):
        console.print(f"serving on http://{res['endpoint']}/")


def _ints(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}") from None


def register(app: typer.Typer) -> None:
    """Add ``noa deploy``, ``noa rollback`` and ``noa deploy-supervisor`` to the ``noa`` application."""
    from noa_core.cli import options as cli

    @app.command("deploy")
    def deploy_cmd(
        path: Annotated[Path, typer.Argument(help="project directory with a noa.yaml")],
        env: Annotated[str, typer.Option("--env", help="staging (blue-green) or production (canary)")] = "staging",
        strategy: Annotated[str | None, typer.Option("--strategy", help="blue-green or canary")] = None,
        app_name: Annotated[str | None, typer.Option("--app", help="app name (default: noa.yaml name)")] = None,
        interval: Annotated[float | None, typer.Option("--interval", help="seconds per canary step")] = None,
        steps: Annotated[str | None, typer.Option("--steps", help="canary weights, e.g. 5,25,50,100")] = None,
        pause_at: Annotated[str | None, typer.Option("--pause-at", help="weights that wait for approval")] = None,
        monitor: Annotated[float | None, typer.Option("--monitor", help="blue-green: watch seconds")] = None,
        target: Annotated[str | None, typer.Option(
            "--target", help="local (default), docker, kubernetes, or a target a plugin provides")] = None,
        home: cli.HomeOption = None,
        as_json: cli.JsonOption = False,
    ) -> None:
        """Deploy a project: blue-green to staging, canary with analysis to production."""
        from noa_core.cli.connect import connect_prefect
        from noa_core.deploy.run import ENVS, STRATEGIES
        from noa_core.errors import NoaError

        console = cli._err()
        if env not in ENVS:
            raise cli._bad(f"--env must be one of {', '.join(ENVS)} (got {env!r})")
        if strategy is not None and strategy not in STRATEGIES:
            raise cli._bad(f"--strategy must be one of {', '.join(STRATEGIES)} (got {strategy!r})")
        if not (path / "noa.yaml").is_file():
            raise cli._bad(f"{path}: no noa.yaml")
        settings = cli._settings(home)
        options: dict[str, Any] = {}
        if interval is not None:
            options["interval_s"] = interval
        if steps:
            options["steps"] = _ints(steps)
        if pause_at:
            options["pause_at"] = _ints(pause_at)
        if monitor is not None:
            options["monitor_s"] = monitor
        if target:
            options["target"] = target
        try:
            connect_prefect(settings, console)
            from flows.deploy import deploy
            from flows.runtime import run_in_process

            with console.status(f"deploying {path} to {env}"):  # an async flow: no heartbeat thread
                res = run_in_process(deploy, project_dir=str(path.resolve()), env=env, strategy=strategy,
                                     home=str(settings.home.resolve()), app=app_name, **options)
        except NoaError as exc:
            raise cli._fail(exc) from None
        if as_json:
            typer.echo(res.model_dump_json(indent=2))
        else:
            _print(res, Console())
        raise typer.Exit(0 if res.outcome in ("promoted", "skipped") else 1)

    @app.command("rollback")
    def rollback_cmd(
        app_name: Annotated[str, typer.Argument(metavar="APP", help="app name (noa.yaml name)")],
        env: Annotated[str, typer.Option("--env", help="staging or production")] = "production",
        home: cli.HomeOption = None,
        as_json: cli.JsonOption = False,
    ) -> None:
        """Return APP to its previous good release, blue-green style."""
        from noa_core.cli.connect import connect_prefect
        from noa_core.deploy.run import ENVS
        from noa_core.errors import NoaError

        console = cli._err()
        if env not in ENVS:
            raise cli._bad(f"--env must be one of {', '.join(ENVS)} (got {env!r})")
        settings = cli._settings(home)
        try:
            connect_prefect(settings, console)
            from flows.deploy import rollback
            from flows.runtime import run_in_process

            with console.status(f"rolling {app_name} back in {env}"):
                res = run_in_process(rollback, app=app_name, env=env, home=str(settings.home.resolve()))
        except NoaError as exc:
            raise cli._fail(exc) from None
        if as_json:
            typer.echo(res.model_dump_json(indent=2))
        else:
            _print(res, Console())
        raise typer.Exit(0 if res.outcome == "rolled_back" else 1)

    sup = typer.Typer(no_args_is_help=True, help="The deploy supervisor (Caddy + app processes) of NOA_HOME.")
    app.add_typer(sup, name="deploy-supervisor")

    @sup.command("status")
    def sup_status(home: cli.HomeOption = None, as_json: cli.JsonOption = False) -> None:
        """Routes, instances and Caddy processes; exit 1 when no supervisor runs."""
        from noa_core.deploy.supervisor_client import read_client

        c = read_client(cli._settings(home).home)
        if c is None:
            cli._error_line("no deploy supervisor running for this NOA_HOME")
            raise typer.Exit(1)
        st = c.call("status")
        if as_json:
            typer.echo(json.dumps(st, indent=2))
            return
        t = Table(title="routes")
        for col in ("route", "public", "upstreams"):
            t.add_column(col)
        for name, r in st["routes"].items():
            t.add_row(name, r["listen"], ", ".join(f"{u['endpoint']}={u['weight']}" for u in r["upstreams"]))
        Console().print(t)
        t = Table(title="instances")
        for col in ("instance", "port", "state", "restarts", "logs"):
            t.add_column(col)
        for i in st["instances"].values():
            t.add_row(i["instance_id"], str(i["port"]), i["state"], str(i["restarts"]), i["logs"])
        Console().print(t)

    @sup.command("stop")
    def sup_stop(home: cli.HomeOption = None) -> None:
        """Stop the supervisor, its Caddy and its apps (local apps restart with the next supervisor;
        this home's Docker containers are removed)."""
        from noa_core.deploy.docker_housekeeping import remove_containers
        from noa_core.deploy.supervisor_client import stop_supervisor
        from noa_core.errors import NoaError

        settings = cli._settings(home)
        stopped = stop_supervisor(settings.home)
        try:
            removed = remove_containers(settings.home)
        except NoaError as exc:
            raise cli._fail(exc) from None
        if removed:
            cli._err().print(f"removed {len(removed)} Docker container(s): {', '.join(removed)}")
        if not stopped and not removed:
            cli._error_line("no deploy supervisor running for this NOA_HOME")
            raise typer.Exit(1)
