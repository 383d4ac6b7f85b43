"""The run port of the drop-in watcher: how it asks for a ``code_drop`` run and learns how it ended.

The Prefect implementation lives in ``deployments/code_drop.py``; tests use an in-process fake.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Literal, Protocol


class RunStatus(enum.Enum):
    SCHEDULED = "scheduled"  # created, not picked up: the new runner will run it
    ACTIVE = "active"  # pending / running / paused / cancelling
    FINAL = "final"
    MISSING = "missing"  # the orchestrator does not know it (database reset)


@dataclass(frozen=True)
class RunRequest:
    key: str
    attempt: int
    name: str
    kind: str
    source: str
    home: str
    use_ai: bool
    sandbox: str

    @property
    def idempotency_key(self) -> str:
        return f"drop-in:{self.key}:{self.attempt}"


@dataclass(frozen=True)
class RunTicket:
    run_id: str
    url: str | None = None


@dataclass(frozen=True)
class RunOutcome:
    """How a code_drop run ended, as the drop-in needs to know it."""

    state: Literal["completed", "failed", "crashed", "cancelled"]
    report: dict[str, Any] | None = None
    error_type: str | None = None
    hostile: bool = False  # HostileInput or LimitExceeded: quarantine
    bad_input: bool = False  # any BadInput: running it again gives the same answer
    message: str = ""


class RunBackend(Protocol):
    """Runs code drops; the Prefect implementation lives in ``deployments/code_drop.py``."""

    description: str

    async def start(self) -> None:
        """Register the deployment; runs may be created but none is executed yet."""

    async def serve(self) -> None:
        """Begin executing runs (after recovery has looked at the ones left from before)."""

    async def stop(self) -> None: ...

    async def submit(self, request: RunRequest) -> RunTicket: ...

    async def status(self, run_id: str) -> RunStatus: ...

    async def wait(self, run_id: str) -> RunOutcome: ...

    async def mark_crashed(self, run_id: str, message: str) -> None: ...

    def url(self, run_id: str) -> str | None: ...


__all__ = ["RunBackend", "RunOutcome", "RunRequest", "RunStatus", "RunTicket"]
