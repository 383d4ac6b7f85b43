"""``noa expose``: put one app on the internet through a Cloudflare Tunnel.

::

    noa expose APP --port N [--hostname H] [--tunnel NAME] [--credentials-file PATH] [--no-run] [--json]

Writes ``NOA_HOME/cloudflared/APP/config.yml`` (tunnel, credentials-file, one ingress rule
for H -> http://127.0.0.1:N, then the catch-all ``http_status:404``) and runs
``cloudflared tunnel --config <file> run`` in the foreground until interrupted. Without
cloudflared it writes the file, says ``cloudflared is not installed; wrote <path>`` and
exits 1. The tunnel itself (``cloudflared tunnel create NAME``; ``cloudflared tunnel route
dns NAME H``) is made once by hand, with a Cloudflare login NOA never sees.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``noa expose`` to the ``noa`` application."""
    from noa_core.cli import options as cli
    from noa_core.errors import NoaError

    @app.command("expose")
    def expose(
        app_name: Annotated[str, typer.Argument(metavar="APP", help="the app to expose")],
        port: Annotated[int, typer.Option("--port", help="local port the app listens on (127.0.0.1)")],
        hostname: Annotated[str | None, typer.Option(
            "--hostname", help="public hostname (default APP.$NOA_EXPOSE_DOMAIN)")] = None,
        tunnel: Annotated[str | None, typer.Option("--tunnel", help="tunnel name or UUID (default noa-APP)")] = None,
        credentials_file: Annotated[Path | None, typer.Option(
            "--credentials-file", help="the tunnel's credentials JSON (from `cloudflared tunnel create`)")] = None,
        no_run: Annotated[bool, typer.Option("--no-run", help="only write the configuration")] = False,
        home: cli.HomeOption = None,
        as_json: cli.JsonOption = False,
    ) -> None:
        """Write a cloudflared tunnel configuration for APP and run cloudflared when it is installed."""
        from noa_core.integrations.cloudflare import find_cloudflared, plan_tunnel, write_config

        settings = cli._settings(home)
        try:
            plan = plan_tunnel(settings.home, app_name, port, hostname=hostname, tunnel=tunnel,
                               credentials_file=credentials_file)
            path = write_config(plan)
        except NoaError as exc:
            raise cli._fail(exc) from None
        except OSError as exc:
            raise cli._bad(f"cannot write the tunnel configuration: {exc}") from None
        binary = find_cloudflared()
        doc = {"app": plan.app, "config_path": str(path), "tunnel": plan.tunnel, "hostname": plan.hostname,
               "service": plan.service, "credentials_file": str(plan.credentials_file),
               "credentials_present": plan.credentials_file.is_file(), "cloudflared": binary,
               "command": plan.command(binary or "cloudflared"), "ran": False, "exit_code": None}

        def finish(status: str, code: int) -> None:
            doc["status"] = status
            if as_json:
                typer.echo(json.dumps(doc, indent=2))
            raise typer.Exit(code)

        if no_run:
            if not as_json:
                typer.echo(f"wrote {path}")
            finish("written", 0)
        if binary is None:
            sys.stderr.write(f"cloudflared is not installed; wrote {path}\n")
            finish("skipped: cloudflared is not installed", 1)
        console = cli._err()
        if not doc["credentials_present"]:
            console.print(f"[yellow]credentials file {plan.credentials_file} not found[/yellow]: cloudflared will "
                          f"look for it through its origin certificate (`cloudflared tunnel create {plan.tunnel}` "
                          "makes one)")
        console.print(f"exposing {plan.app} ({plan.service}) as https://{plan.hostname} - Ctrl-C stops")
        proc = subprocess.Popen(plan.command(binary), stdin=subprocess.DEVNULL,
                                stdout=2 if as_json else None)  # keep stdout for the JSON document
        try:
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            try:
                rc = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
        doc.update(ran=True, exit_code=rc)
        if rc != 0 and not as_json:
            cli._error_line(f"cloudflared exited with code {rc} (configuration: {path})")
        finish("ran" if rc == 0 else f"cloudflared exited with code {rc}", 0 if rc == 0 else 1)
