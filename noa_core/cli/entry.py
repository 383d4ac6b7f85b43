"""The ``noa`` console script: a fast path for commands that must not pay start-up imports.

``noa workspace scan [PATH] [--home DIR] [--json]`` on an unchanged tree should cost about
what ``git status`` costs. Typer, Rich, pydantic-settings and the sub-command modules take
~0.3 s to import, so that one command goes to the lean entry point
(:mod:`noa_core.workspace.__main__`), which answers from the index and falls back to the
full scan itself. Every other command (and any other option) goes to the Typer app.
"""

from __future__ import annotations

import os
import sys

_LEAN_FLAGS = {"--json"}
_LEAN_OPTIONS = {"--home"}


def _lean_scan_args(argv: list[str]) -> list[str] | None:
    """``argv`` for the lean scan if it understands every argument, else None."""
    if argv[:2] != ["workspace", "scan"]:
        return None
    rest = argv[2:]
    positional = 0
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg in _LEAN_FLAGS:
            i += 1
        elif arg in _LEAN_OPTIONS and i + 1 < len(rest):
            i += 2
        elif arg.startswith("-"):
            return None
        else:
            positional += 1
            i += 1
    return ["scan", *rest] if positional <= 1 else None


def main() -> None:  # pragma: no cover - console entry point (tests run it as a process)
    lean = _lean_scan_args(sys.argv[1:])
    if lean is not None:
        from noa_core.workspace.__main__ import main as lean_main

        sys.exit(lean_main(lean))
    from noa_core.cli.main import main as full_main

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    full_main()
