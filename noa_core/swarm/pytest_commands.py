"""Reading a test command: is it pytest, and can it be sharded (options only, no paths or
node ids of its own, no ``-c``/``--rootdir`` the shards would have to reproduce)?"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

__all__ = ["Kind", "pytest_base", "suite_kind"]

# pytest options whose value is the next argument (so it is not a path)
_VALUE_OPTS = {
    "-k", "-m", "-p", "-o", "-c", "-W", "-r", "-n", "--rootdir", "--deselect", "--ignore", "--ignore-glob",
    "--tb", "--maxfail", "--import-mode", "--confcutdir", "--basetemp", "--junitxml", "--junit-xml",
    "--durations", "--durations-min", "--log-level", "--log-cli-level", "--override-ini", "--color",
    "--capture", "--show-capture", "--timeout", "--dist", "--maxprocesses", "--verbosity", "--inifile",
    "--config-file", "--cov", "--cov-report", "--cov-config", "--cov-fail-under", "--randomly-seed",
}
_PATH_OPTS = {"--pyargs"}  # options that make the positional arguments mean something else


Kind = Literal["pytest", "pytest-whole", "other"]


def _pytest_args(argv: Sequence[str]) -> list[str] | None:
    if not argv:
        return None
    head = os.path.basename(argv[0])
    if head in ("pytest", "py.test"):
        return list(argv[1:])
    if head.startswith("python") and len(argv) >= 3 and argv[1] == "-m" and argv[2] == "pytest":
        return list(argv[3:])
    return None


def suite_kind(command: Sequence[str]) -> tuple[Kind, str]:
    """``("pytest", "")`` for a shardable pytest command, ``("pytest-whole", why)`` for a pytest
    command that must run whole, ``("other", why)`` for any other test command."""
    base, why = pytest_base(command)
    if base is not None:
        return "pytest", ""
    return ("pytest-whole" if _pytest_args(command) is not None else "other"), why


def pytest_base(command: Sequence[str]) -> tuple[list[str] | None, str]:
    """``(argv, "")`` when ``command`` is a pytest run that can be sharded, else ``(None, why)``.

    Shardable: ``python -m pytest`` / ``pytest`` with options only (no paths or node ids
    of its own, no ``-c``/``--rootdir`` that the shards would have to reproduce).
    """
    argv = list(command)
    if not argv:
        return None, "no test command"
    rest = _pytest_args(argv)
    if rest is None:
        return None, f"not a pytest command ({os.path.basename(argv[0])}): run whole"
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg in _PATH_OPTS:
            return None, f"the command uses {arg}: run whole"
        opt = arg.split("=", 1)[0]
        if opt in ("-c", "--rootdir", "--config-file", "--inifile"):
            return None, f"the command sets {opt}: run whole"
        if arg.startswith("-"):
            if arg in _VALUE_OPTS:
                i += 1
            i += 1
            continue
        return None, f"the command names its own paths ({arg}): run whole"
    return argv, ""
