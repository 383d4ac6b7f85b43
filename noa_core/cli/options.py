"""What every ``noa`` command module shares: the ``--home`` and ``--json`` options, the settings
made absolute at the edge, the stderr console and the one-line error exits.

The command modules (``*_cmd.py``) import these from here, and :mod:`noa_core.cli.main` imports
their ``register`` functions: the dependency runs one way (main -> *_cmd -> options), so
``python -m noa_core.cli.backup_app`` can load its commands without loading every other one. The names
keep the leading underscore they had in ``main.py``, where every command module used them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from noa_core.config import NoaSettings
from noa_core.errors import NoaError

HomeOption = Annotated[Optional[Path], typer.Option("--home", envvar="NOA_HOME",
                                                    help="NOA_HOME (default ./.noa)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]


def _settings(home: Path | None) -> NoaSettings:
    """The settings with NOA_HOME made absolute here, at the edge: a relative ``--home`` (or the
    default ``./.noa``) means the current directory of this command, also in the flows, workers
    and background processes it starts, whatever their own working directory."""
    settings = NoaSettings()
    if home is not None:
        settings = settings.model_copy(update={"home": home})
    return settings.model_copy(update={"home": settings.home.resolve()})


def _err() -> Console:
    return Console(stderr=True)


def _error_line(message: str) -> None:
    """One line on stderr, never wrapped (scripts grep for it)."""
    sys.stderr.write("noa: error: " + " ".join(message.split()) + "\n")
    sys.stderr.flush()


def _fail(exc: NoaError) -> typer.Exit:
    """Exit with the error's one line and its exit code (1 said no, 2 bad input)."""
    _error_line(exc.one_line())
    return typer.Exit(exc.exit_code)


def _bad(message: str) -> typer.Exit:
    """Exit 2 (bad input) with one line on stderr."""
    _error_line(message)
    return typer.Exit(2)


__all__ = ["HomeOption", "JsonOption", "_bad", "_err", "_error_line", "_fail", "_settings"]
