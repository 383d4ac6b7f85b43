"""Point this process at a Prefect server before Prefect is imported."""

from __future__ import annotations

import os
import sys

from rich.console import Console

from noa_core.config import NoaSettings
from noa_core.orchestration.prefect_server import EmbeddedPrefectServer, ServerInfo


def connect_prefect(settings: NoaSettings, console: Console) -> ServerInfo:
    """Use ``PREFECT_API_URL`` if set, else start or reuse the embedded server of NOA_HOME."""
    if "prefect" in sys.modules and not os.environ.get("PREFECT_API_URL"):
        raise RuntimeError("prefect was imported before the API URL was chosen")
    external = os.environ.get("PREFECT_API_URL")
    if external:
        return ServerInfo(external, external.removesuffix("/api"), None, False)
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
    return found
