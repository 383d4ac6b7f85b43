"""What every isolation backend shares: the backend names, the errors and the result of one run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from noa_core.errors import NoaError

Backend = Literal["bwrap", "unshare", "docker"]
BACKENDS: tuple[Backend, ...] = ("bwrap", "unshare")
DOCKER_BACKEND: Backend = "docker"  # only when forced: noa_core.isolation.docker
BACKEND_ENV = "NOA_ISOLATION_BACKEND"


class IsolationError(NoaError):
    """Isolation could not be set up for this run (bad work dir, sandbox setup failed)."""


class IsolationUnavailable(IsolationError):
    """Neither bubblewrap nor unshare can isolate commands on this host."""


@dataclass(frozen=True)
class ExecResult:
    """What happened to one isolated command."""

    returncode: int
    stdout: str  # tail, at most ExecLimits.output_tail_chars
    stderr: str  # tail ("" when stderr was merged into stdout)
    seconds: float
    timed_out: bool
    killed_by: str | None  # signal name ("SIGKILL", "SIGXCPU", ...) or None
    isolation: Backend
    limits_applied: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out
