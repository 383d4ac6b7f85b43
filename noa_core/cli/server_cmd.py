"""``noa server``: the unified API (+ the embedded Prefect server and the drop-in watcher);
``noa server token create|list|revoke``; ``noa dashboard --out FILE.html``.

::

    noa server [--host 127.0.0.1] [--port 8765] [--no-prefect] [--no-watch] [--max-body BYTES] [--rate R]
    noa server token create NAME --scope read|write|admin [--rate R] [--json]
    noa server token list [--json]
    noa server token revoke NAME
    noa dashboard --out FILE.html

Alerts: ``NOA_ALERT_BLOCK`` (a saved Prefect notification block, e.g. ``custom-webhook/noa-alerts``)
or ``NOA_ALERT_WEBHOOK_URL`` (a webhook block built on the fly). Nothing here imports Prefect
before :func:`connect_prefect` has chosen the server.
"""



import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from noa_core.errors import BadInput, NoaError


def _notifier(console: Console, use_prefect: bool) -> Any:
    from noa_core.events.prefect_bridge import PrefectBlockNotifier

    slug, url = os.environ.get("NOA_ALERT_BLOCK"), os.environ.get("NOA_ALERT_WEBHOOK_URL")
    if slug and not use_prefect:
        console.print("[yellow]alerts: NOA_ALERT_BLOCK skipped: loading a saved block needs Prefect[/yellow]")
        slug = None
    try:
        if slug:
            return PrefectBlockNotifier.load(slug)
        if url:
            return PrefectBlockNotifier.webhook(url)
    except Exception as exc:  # noqa: BLE001 - alerts fall back to the log
        console.print(f"[yellow]alerts: skipped: cannot load the notification block ({type(exc).__name__})[/yellow]")
    return None


def _webhook_secret(use_prefect: bool) -> str | None:
    """The env var, else (only with a Prefect API: no ephemeral Prefect server) the Secret block."""
    try:
        from noa_core.server.github_webhook import SECRET_ENV, load_webhook_secret
    except ImportError:
        return None
    if not use_prefect:
        return os.environ.get(SECRET_ENV) or None
    try:
        return load_webhook_secret()
    except NoaError:
        return None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG


def _start_watcher(home: Path, console: Console) -> "subprocess.Popen[bytes]":
    log = open(home / "logs" / "watch.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen([sys.executable, "-m", "noa_core.cli", "watch", "--home", str(home)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_with_parent)
    finally:
        log.close()
    console.print(f"drop-in watcher: {home / 'drop-in'} (pid {proc.pid}, log {home / 'logs' / 'watch.log'})")
    return proc


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _stop(proc: "subprocess.Popen[bytes] | None") -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def register(app: typer.Typer) -> None:
    """Add ``noa server ...`` and ``noa dashboard`` to the ``noa`` application."""
    from noa_core.cli import options as cli

    server_app = typer.Typer(help="The unified NOA API (+ Prefect UI and the drop-in watcher).",
                             invoke_without_command=True)
    token_app = typer.Typer(no_args_is_help=True, help="API bearer tokens (stored hashed in the registry).")
    server_app.add_typer(token_app, name="token")
    app.add_typer(server_app, name="server")

    @server_app.callback()
    def server(
        ctx: typer.Context,
        host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="API port")] = 8765,
        no_prefect: Annotated[bool, typer.Option("--no-prefect", help="do not start or use Prefect")] = False,
        no_watch: Annotated[bool, typer.Option("--no-watch", help="do not start the drop-in watcher")] = False,
        max_body: Annotated[int, typer.Option("--max-body", help="largest request body, bytes")] = 1024 * 1024,
        rate: Annotated[float, typer.Option("--rate", help="default requests/s per token")] = 50.0,
        home: cli.HomeOption = None,
    ) -> None:
        """Start the NOA API on uvicorn (and, unless told otherwise, Prefect and the watcher)."""
        if ctx.invoked_subcommand is not None:
            return
        if not 0 < port < 65536:
            raise cli._bad(f"--port must be 1-65535, not {port}")
        settings = cli._settings(home)
        layout = settings.layout().ensure()
        (layout.root / "logs").mkdir(exist_ok=True)
        console = cli._err()
        orchestrator = None
        watcher = None
        reconciler = None
        try:
            if not no_prefect:
                from noa_core.cli.connect import (
                    connect_prefect,
                    start_periodic_reconciliation,
                )

                found = connect_prefect(settings, console)
                console.print(f"Prefect UI:  {found.ui_url}")
                from noa_core.server.orchestrator import PrefectOrchestrator

                orchestrator = PrefectOrchestrator(layout.root, serve=True)
                if not no_watch:
                    watcher = _start_watcher(layout.root, console)
                # after the watcher's fork: runs of a killed noa -> Crashed within ~30 s
                reconciler = start_periodic_reconciliation(found, console)
            elif not no_watch:
                console.print("[yellow]drop-in watcher: skipped: it needs Prefect (--no-prefect)[/yellow]")
            import uvicorn

            from noa_core.server.app import create_app
            from noa_core.server.ratelimit import RateLimit

            api = create_app(settings, orchestrator=orchestrator, max_body_bytes=max_body,
                             rate_limit=RateLimit(rate, max(rate * 2, 10)), notifier=_notifier(console, not no_prefect),
                             webhook_secret=_webhook_secret(not no_prefect), gc_freeze=True)
            state = api.state.noa
            console.print(f"NOA API:     http://{host}:{port}/  (OpenAPI docs http://{host}:{port}/docs)")
            console.print(f"metrics:     http://{host}:{port}/metrics   cache: {state.cache.backend}   "
                          f"traces: {state.tracing.file}   OTLP: {state.tracing.otlp_status}")
            console.print(f"webhook:     {state.webhook_status}")
            # uvicorn re-raises the signal that stopped it once it has shut down: turn SIGTERM into an
            # exception so the watcher is stopped below (SIGINT already is one)
            signal.signal(signal.SIGTERM, _terminate)
            uvicorn.run(api, host=host, port=port, log_level="warning", access_log=False)
        except NoaError as exc:
            raise cli._fail(exc) from None
        finally:
            _stop(watcher)
            if reconciler is not None:
                reconciler.stop()
            if orchestrator is not None:
                console.print("the Prefect server keeps running (run history persists); `noa prefect stop` stops it")

    @token_app.command("create")
    def token_create(
        name: Annotated[str, typer.Argument(help="a name for the token (letters, digits, . _ -)")],
        scope: Annotated[str, typer.Option("--scope", help="read, write or admin")] = "read",
        rate: Annotated[float | None, typer.Option("--rate", help="requests/s for this token")] = None,
        home: cli.HomeOption = None,
        as_json: cli.JsonOption = False,
    ) -> None:
        """Create a token; it is printed once (only its hash is stored)."""
        from noa_core.server.auth import TokenStore
        from noa_core.storage.database import open_database

        engine = open_database(cli._settings(home))
        try:
            text, info = TokenStore(engine).create(name, scope, rate_per_s=rate)
        except BadInput as exc:
            raise cli._fail(exc) from None
        finally:
            engine.dispose()
        if as_json:
            typer.echo(json.dumps({"token": text, **info.as_dict()}))
        else:
            cli._err().print(f"token {info.name!r} ({info.scope}); shown once, keep it:")
            typer.echo(text)

    @token_app.command("list")
    def token_list(home: cli.HomeOption = None, as_json: cli.JsonOption = False) -> None:
        """Tokens (names, scopes, dates; never secrets)."""
        from noa_core.server.auth import TokenStore
        from noa_core.storage.database import open_database

        engine = open_database(cli._settings(home))
        try:
            infos = TokenStore(engine).list()
        finally:
            engine.dispose()
        if as_json:
            typer.echo(json.dumps([i.as_dict() for i in infos], indent=2))
            return
        table = Table("name", "scope", "key id", "rate/s", "created", "revoked")
        for i in infos:
            table.add_row(i.name, i.scope, i.key_id, str(i.rate_per_s or "default"), i.created.isoformat(timespec="seconds"),
                          i.revoked.isoformat(timespec="seconds") if i.revoked else "")
        Console().print(table)

    @token_app.command("revoke")
    def token_revoke(name: Annotated[str, typer.Argument(help="token name or key id")],
                     home: cli.HomeOption = None) -> None:
        """Revoke a token (servers stop accepting it within 2 s)."""
        from noa_core.server.auth import TokenStore
        from noa_core.storage.database import open_database

        engine = open_database(cli._settings(home))
        try:
            info = TokenStore(engine).revoke(name)
        except BadInput as exc:
            raise cli._fail(exc) from None
        finally:
            engine.dispose()
        typer.echo(f"revoked {info.name}")

    @app.command("dashboard")
    def dashboard(
        out: Annotated[Path, typer.Option("--out", help="the HTML file to write")] = Path("noa-dashboard.html"),
        home: cli.HomeOption = None,
        as_json: cli.JsonOption = False,
    ) -> None:
        """Write a self-contained HTML dashboard (stage timings, pass rates, deploys, rollbacks) from the reports."""
        from noa_core.observability.dashboard import collect, render_html

        settings = cli._settings(home)
        data = collect(settings.layout().reports)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(render_html(data), encoding="utf-8")
        except OSError as exc:
            raise cli._bad(f"cannot write {out}: {exc.strerror}") from None
        summary = {"out": str(out.resolve()), "reports": data.reports, "stages": len(data.stage_seconds),
                   "deploys": sum(data.deploys.values()), "rollbacks": data.rollbacks}
        if as_json:
            typer.echo(json.dumps(summary))
        else:
            cli._err().print(f"dashboard: {out} ({data.reports} reports)")


__all__ = ["register"]
