"""What the drop-in watcher is told (:class:`WatchOptions`) and what it reports: one
:class:`DropInEvent` per step of an item, one :class:`ItemResult` per item filed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from noa_core.dropin.journal import Outcome
from noa_core.errors import BadInput

MAX_INTERRUPTS = 2  # the first interruption is re-run once; the second files the item as failed


EventKind = Literal["watching", "taken", "running", "done", "failed", "quarantined", "skipped", "waiting",
                    "resumed", "interrupted", "stopping", "error", "warning"]


@dataclass(frozen=True)
class DropInEvent:
    kind: EventKind
    name: str = ""
    message: str = ""
    url: str | None = None
    key: str | None = None
    dest: str | None = None


@dataclass
class ItemResult:
    name: str
    key: str
    outcome: Outcome | Literal["error"]
    reason: str
    dest: str | None
    run_id: str | None
    url: str | None
    attempt: int
    report_path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class WatchOptions:
    settle: float = 3.0
    concurrency: int = 2
    once: bool = False
    use_ai: bool = True
    sandbox: str = "AUTO"
    max_interrupts: int = MAX_INTERRUPTS
    scan_interval: float | None = None  # default: settle / 4, between 0.2 and 1 s
    incomplete_grace: float | None = None  # default: max(30, 10 x settle)
    file_events: bool = True  # wake up on watchfiles events (scanning continues regardless)

    def __post_init__(self) -> None:
        if self.settle < 0:
            raise BadInput(f"--settle must be 0 or more seconds, not {self.settle}")
        if self.concurrency < 1:
            raise BadInput(f"--concurrency must be at least 1, not {self.concurrency}")
        if self.sandbox.upper() not in ("A", "B", "C", "AUTO"):
            raise BadInput(f"--sandbox must be A, B, C or auto, not {self.sandbox!r}")
        self.sandbox = self.sandbox.upper()

    @property
    def interval(self) -> float:
        if self.scan_interval is not None:
            return self.scan_interval
        return min(1.0, max(0.2, self.settle / 4))

    @property
    def grace(self) -> float:
        return self.incomplete_grace if self.incomplete_grace is not None else max(30.0, 10 * self.settle)


__all__ = ["MAX_INTERRUPTS", "DropInEvent", "EventKind", "ItemResult", "WatchOptions"]
