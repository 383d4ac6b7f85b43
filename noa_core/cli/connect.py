"""Point this process at a Prefect server before Prefect is imported; reconcile runs of gone ``noa``
processes there (one filtered API query; a failure is one warning line, never a failed command)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape

from noa_core.config import NoaSettings
from noa_core.orchestration.prefect_server import EmbeddedPrefectServer, ServerInfo
from noa_core.orchestration.reconcile import (
    PeriodicReconciler,
    interval_from_env,
    reconcile_quietly,
)


def connect_prefect(settings: NoaSettings, console: Console) -> ServerInfo:
    """Use ``PREFECT_API_URL`` if set, else start or reuse the embedded server of NOA_HOME."""
    if "prefect" in sys.modules and not os.environ.get("PREFECT_API_URL"):
        raise RuntimeError("prefect was imported before the API URL was chosen")
    external = os.environ.get("PREFECT_API_URL")
    if external:
        found = ServerInfo(external, external.removesuffix("/api"), None, False)
        _reconcile(found, console)
        return found
    layout = settings.layout().ensure()
    server = EmbeddedPrefectServer(layout.prefect, settings.prefect_port)
    found = server.running()
    if found is None:
        with console.status("starting the embedded Prefect server (first start takes ~10-20 s)"):
            found = server.ensure()
        console.print(f"[dim]Prefect server started: UI {found.ui_url}[/dim]")
    os.environ["PREFECT_API_URL"] = found.api_url
    os.environ.setdefault("PREFECT_HOME", str(layout.prefect))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    _reconcile(found, console)
    return found


def _reconcile(server: ServerInfo, console: Console) -> None:
    """Mark the runs of ``noa`` processes of this host that died mid-flow Crashed."""
    warn, note = console_lines(console)
    reconcile_quietly(server.api_url, warn=warn, note=note)


def console_lines(console: Console) -> tuple[Callable[[str], None], Callable[[str], None]]:
    """(warn, note): one unwrapped stderr line each, for the reconciliation's messages."""
    def warn(line: str) -> None:
        console.print(f"[yellow]noa: warning: {escape(line)}[/yellow]", soft_wrap=True, highlight=False)

    def note(line: str) -> None:
        console.print(f"[dim]{escape(line)}[/dim]", soft_wrap=True, highlight=False)

    return warn, note


def start_periodic_reconciliation(server: ServerInfo, console: Console) -> PeriodicReconciler:
    """Reconcile every ``NOA_RECONCILE_INTERVAL_S`` (default 30 s) while a long-running command is up."""
    warn, note = console_lines(console)
    return PeriodicReconciler(server.api_url, warn, note, interval_s=interval_from_env()).start()
