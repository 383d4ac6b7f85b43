"""``noa apps``: the app registry and app switching, registered on the main app by :func:`register`.

::

    noa apps register NAME owned|external URL-or-DIR [--health /health] [--owner WHO]
                      [--service S] [--serve] [--json]
    noa apps list [--service S] [--json]
    noa apps switch APP [--from APP] [--health-timeout S] [--drain-timeout S] [--json]
    noa apps status NAME [--json]
    noa apps unregister NAME

An *owned* app is a project directory with a ``noa.yaml`` (``run.command``) that NOA
starts on its local deploy target; an *external* app is an ``http://host:port`` that NOA
routes to and never starts or stops. ``--serve`` makes a just-registered app the one
serving its service (its Caddy route) when nothing serves it yet. ``switch`` runs the
``app_switch`` flow. Exit 0 done, 1 the switch failed (traffic stays where it was),
2 bad input.
"""


import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from noa_core.results import FlowResult


def _emit(data: Any, as_json: bool) -> bool:
    if as_json:
        typer.echo(data.model_dump_json(indent=2) if isinstance(data, FlowResult)
                   else json.dumps(data, indent=2, default=str))
    return as_json


def _route_info(home: Any, service: str) -> dict[str, Any] | None:
    """The service's route in the running supervisor (None when no supervisor runs: nothing is started)."""
    from noa_core.apps.switch import route_of
    from noa_core.deploy.supervisor_client import read_client

    c = read_client(home)
    if c is None:
        return None
    r = c.call("status")["routes"].get(route_of(service))
    return None if r is None else {"listen": r["listen"], "upstreams": r["upstreams"]}


def register(app: typer.Typer) -> None:
    """Add ``noa apps ...`` to the ``noa`` application."""
    from noa_core.cli import options as cli

    apps_app = typer.Typer(no_args_is_help=True, help="Owned and external apps; switching a service between them.")
    app.add_typer(apps_app, name="apps")

    @apps_app.command("register")
    def register_cmd(
        name: Annotated[str, typer.Argument(help="app name")],
        kind: Annotated[str, typer.Argument(help="owned (NOA runs it) or external (NOA only routes to it)")],
        target: Annotated[str, typer.Argument(metavar="URL-or-DIR",
                                              help="external: http://host:port; owned: project directory")],
        health: Annotated[str | None, typer.Option("--health", help="health path (default: noa.yaml's, "
                                                   "or /health)")] = None,
        owner: Annotated[str, typer.Option("--owner", help="who answers for it")] = "",
        service: Annotated[str | None, typer.Option("--service", help="service (route) it can serve; "
                                                    "default: its name")] = None,
        serve: Annotated[bool, typer.Option("--serve", help="route its service to it now")] = False,
        home: cli.HomeOption = None,
        as_json: cli.JsonOption = False,
    ) -> None:
        """Register an owned or external app."""
        from noa_core.apps.registry import AppRegistry, parse_spec
        from noa_core.errors import NoaError

        if kind not in ("owned", "external"):
            raise cli._bad(f"kind must be owned or external (got {kind!r})")
        settings = cli._settings(home)
        fields: dict[str, Any] = {"name": name, "kind": kind, "health_path": health, "owner": owner,
                                  "service": service}
        fields["endpoint" if kind == "external" else "project_dir"] = target
        try:
            spec = parse_spec(**fields)
            with AppRegistry(settings) as reg:
                rec = reg.register(spec)
            out: dict[str, Any] = {"app": rec.as_dict()}
            if serve:
                from noa_core.apps.switch import SwitchController

                with cli._err().status(f"routing {rec.service} to {name}"):
                    out["serve"] = SwitchController(settings, log=lambda m: cli._err().print(m)).serve(name)
                with AppRegistry(settings) as reg:
                    out["app"] = reg.get(name).as_dict()
        except NoaError as exc:
            raise cli._fail(exc) from None
        if not _emit(out, as_json):
            a = out["app"]
            Console().print(f"registered {a['name']} ({a['kind']}) for service {a['service']}: "
                            f"{a['endpoint'] or a['project_dir']} health {a['health_path']}")
            if "serve" in out:
                s = out["serve"]
                Console().print(f"{s['outcome']}: {s['reason']}; http://{s['endpoint']}/")
        if serve and out["serve"]["outcome"] != "serving":
            raise typer.Exit(1)

    @apps_app.command("list")
    def list_cmd(
        service: Annotated[str | None, typer.Option("--service", help="only this service")] = None,
        home: cli.HomeOption = None,
        as_json: cli.JsonOption = False,
    ) -> None:
        """Registered apps, their endpoints, health checks, owners and status."""
        from noa_core.apps.registry import AppRegistry
        from noa_core.errors import NoaError

        try:
            with AppRegistry(cli._settings(home)) as reg:
                apps = [a.as_dict() for a in reg.list(service=service)]
        except NoaError as exc:
            raise cli._fail(exc) from None
        if _emit({"apps": apps}, as_json):
            return
        t = Table(title="apps")
        for col in ("name", "kind", "service", "endpoint / project", "health", "owner", "status", "reason"):
            t.add_column(col)
        for a in apps:
            t.add_row(a["name"], a["kind"], a["service"], a["endpoint"] or a["project_dir"], a["health_path"],
                      a["owner"], a["status"], a["reason"])
        Console().print(t)

    @apps_app.command("status")
    def status_cmd(
        name: Annotated[str, typer.Argument(help="app name")],
        home: cli.HomeOption = None,
        as_json: cli.JsonOption = False,
    ) -> None:
        """One app: its record, a live health probe, and its service's route."""
        from noa_core.apps.health import probe
        from noa_core.apps.registry import AppRegistry
        from noa_core.errors import NoaError

        settings = cli._settings(home)
        try:
            with AppRegistry(settings) as reg:
                rec = reg.get(name)
            up = rec.upstream
            h = probe(up, rec.health_path) if up else None
            health = ({"ok": h.ok, "status_code": h.status_code, "reason": h.reason} if h else
                      {"ok": False, "status_code": None, "reason": "not running"})
            out = {"app": rec.as_dict(), "health": health, "route": _route_info(settings.home, rec.service)}
        except NoaError as exc:
            raise cli._fail(exc) from None
        if _emit(out, as_json):
            return
        a = out["app"]
        Console().print(f"{a['name']} ({a['kind']}, owner {a['owner'] or '-'}): {a['status']} {a['reason']}")
        Console().print(f"  at {a['upstream'] or '-'}  health {a['health_path']}: "
                        f"{'ok' if health['ok'] else 'failing'} {health['reason']}")
        r = out["route"]
        if r:
            ups = ", ".join(f"{u['endpoint']}={u['weight']}" for u in r["upstreams"])
            Console().print(f"  service {a['service']} on http://{r['listen']}/ -> {ups or 'nothing'}")

    @apps_app.command("switch")
    def switch_cmd(
        name: Annotated[str, typer.Argument(metavar="APP", help="the app to switch the service to")],
        from_app: Annotated[str | None, typer.Option("--from", help="the app serving now (default: "
                                                     "whichever serves the service)")] = None,
        health_timeout: Annotated[float, typer.Option("--health-timeout", help="seconds to become ready")] = 30.0,
        drain_timeout: Annotated[float, typer.Option("--drain-timeout", help="seconds to drain the old app")] = 10.0,
        home: cli.HomeOption = None,
        as_json: cli.JsonOption = False,
    ) -> None:
        """Switch APP's service over to APP: start, ready, route, drain, stop/detach the old one."""
        from noa_core.cli.connect import connect_prefect
        from noa_core.errors import NoaError

        if health_timeout <= 0 or drain_timeout <= 0:
            raise cli._bad("--health-timeout and --drain-timeout must be positive")
        settings = cli._settings(home)
        console = cli._err()
        try:
            connect_prefect(settings, console)
            from flows.app_switch import app_switch
            from flows.runtime import run_in_process

            with console.status(f"switching to {name}"):
                res = run_in_process(app_switch, app=name, from_app=from_app, home=str(settings.home.resolve()),
                                     health_timeout_s=health_timeout, drain_timeout_s=drain_timeout)
        except NoaError as exc:
            raise cli._fail(exc) from None
        if not _emit(res, as_json):
            t = Table(title=f"{res['service']}: {res['from']} -> {res['to']}: {res['outcome']}")
            for col in ("step", "verdict", "s", "detail"):
                t.add_column(col)
            for s in res["steps"]:
                t.add_row(s["name"], s["verdict"], f"{s['duration_s']:.2f}", s["reason"])
            Console().print(t)
            Console().print(f"{res['reason']}; http://{res['endpoint']}/")
        raise typer.Exit(0 if res["outcome"] == "switched" else 1)

    @apps_app.command("unregister")
    def unregister_cmd(name: Annotated[str, typer.Argument(help="app name")], home: cli.HomeOption = None) -> None:
        """Forget an app that does not serve (NOA stops nothing here)."""
        from noa_core.apps.registry import AppRegistry
        from noa_core.errors import NoaError

        try:
            with AppRegistry(cli._settings(home)) as reg:
                reg.unregister(name)
        except NoaError as exc:
            raise cli._fail(exc) from None
