"""``noa watch``: the drop-in folder door of the code drop.

Watches ``NOA_HOME/drop-in/`` and runs each complete item once through the ``code_drop``
Prefect deployment this process serves (see ``deployments/code_drop.py``); one Rich line per
step on stderr; ``--json`` prints the items handled as one JSON document on stdout at exit.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from typing import TYPE_CHECKING

from noa_core.errors import NoaError

if TYPE_CHECKING:  # the drop-in package pulls in intake (httpx): imported when `noa watch` runs
    from noa_core.config import NoaSettings
    from noa_core.dropin import DropInEvent, DropInService, ItemResult, WatchOptions

_STYLES = {"watching": "bold", "taken": "cyan", "running": "blue", "done": "green", "failed": "red",
           "quarantined": "magenta", "skipped": "dim", "waiting": "yellow", "resumed": "cyan",
           "interrupted": "yellow", "stopping": "yellow", "error": "bold red", "warning": "yellow"}


def event_printer(console: Console):  # type: ignore[no-untyped-def]
    def show(event: DropInEvent) -> None:
        style = _STYLES.get(event.kind, "")
        parts = [f"[{style}]{event.kind:<11}[/{style}]" if style else f"{event.kind:<11}"]
        if event.name:
            parts.append(f"[bold]{escape(event.name)}[/bold]")
        if event.message:
            parts.append(("- " if event.name else "") + escape(event.message))
        if event.dest:
            parts.append(f"-> {escape(event.dest)}")
        if event.url:
            parts.append(escape(event.url))
        console.print(" ".join(parts), soft_wrap=True, highlight=False)

    return show


async def _run_service(service: DropInService) -> list[ItemResult]:
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            service.request_stop()
        else:  # a second Ctrl-C: leave now (flow runs die with this process; a restart re-runs them)
            os._exit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
            pass
    return await service.run()


def run_watch(settings: NoaSettings, options: WatchOptions, console: Console) -> list[ItemResult]:
    """Serve the drop-in deployment and watch until stopped (or, with ``once``, until idle).

    For other faces (``noa server``): call it in a thread of its own or a process.
    """
    console_level = os.environ.get("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    from noa_core.cli.connect import connect_prefect, start_periodic_reconciliation

    server = connect_prefect(settings, console)
    from deployments.code_drop import PrefectDeploymentBackend

    # flow run logs go to the Prefect UI; set PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL to see them here too
    backend = PrefectDeploymentBackend(settings.home, concurrency=options.concurrency, use_ai=options.use_ai,
                                       sandbox=options.sandbox, child_console_level=None if console_level else "CRITICAL")
    from noa_core.dropin import DropInService

    service = DropInService(settings.home, backend, options, on_event=event_printer(console))
    reconciler = start_periodic_reconciliation(server, console)  # runs of killed noa processes -> Crashed
    try:
        return asyncio.run(_run_service(service))
    finally:
        reconciler.stop()


def watch(
    home: Annotated[Path | None, typer.Option("--home", envvar="NOA_HOME", help="NOA_HOME (default ./.noa)")] = None,
    settle: Annotated[float, typer.Option("--settle", help="seconds an item must stay unchanged before it is "
                                                           "taken (a rename into place counts at once)")] = 3.0,
    concurrency: Annotated[int, typer.Option("--concurrency", help="items run at the same time")] = 2,
    once: Annotated[bool, typer.Option("--once", help="process what is there, wait for it, and exit")] = False,
    sandbox: Annotated[str, typer.Option(help="A, B, C or auto")] = "auto",
    no_ai: Annotated[bool, typer.Option("--no-ai", help="skip the local LLM opinion")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the items handled as one JSON document at exit")] = False,
) -> None:
    """Watch NOA_HOME/drop-in/ and run each new item once through the code drop deployment."""
    from noa_core.config import NoaSettings
    from noa_core.dropin import WatchOptions

    settings = NoaSettings()
    if home is not None:
        settings = settings.model_copy(update={"home": home})
    settings = settings.model_copy(update={"home": settings.home.resolve()})  # absolute at the edge
    console = Console(stderr=True)
    try:
        options = WatchOptions(settle=settle, concurrency=concurrency, once=once, use_ai=not no_ai, sandbox=sandbox)
        results = run_watch(settings, options, console)
    except NoaError as exc:
        import sys

        sys.stderr.write("noa: error: " + exc.one_line() + "\n")
        raise typer.Exit(exc.exit_code) from None
    if as_json:
        typer.echo(json.dumps({"drop_in": str(Path(settings.home).resolve() / "drop-in"),
                               "items": [r.as_dict() for r in results]}, indent=2))
    if once and any(r.outcome != "processed" for r in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("watch")(watch)


__all__ = ["event_printer", "register", "run_watch", "watch"]
