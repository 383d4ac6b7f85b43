"""The command line of one sandboxed run for the chosen backend."""

from __future__ import annotations

from collections.abc import Sequence

from noa_core.isolation.bwrap import bwrap_argv
from noa_core.isolation.policy import Plan
from noa_core.isolation.result import Backend
from noa_core.isolation.unshare import unshare_argv


def backend_argv(backend: Backend, argv: Sequence[str], plan: Plan, status_fd: int) -> list[str]:
    """``bwrap`` or ``unshare`` (the docker backend does not launch a local process)."""
    if backend == "bwrap":
        return bwrap_argv(argv, plan, status_fd)
    return unshare_argv(argv, plan, status_fd)
