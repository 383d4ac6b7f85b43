"""Which process owns an in-process flow run, and whether that process is still there.

A ``noa`` process that runs flows in its own process (``flows/runtime.py``) tags every
flow, subflow and task run it starts with two Prefect tags: :data:`IN_PROCESS_TAG` (one
fixed tag, so the API can filter on it) and an owner mark,
``noa-owner:HOST:MACHINE:PID:START:BOOT``. ``HOST`` and ``MACHINE`` (the head of
``/etc/machine-id``) say which machine ran it: two machines with one host name are not
confused. ``START`` is the process start time in clock ticks since boot (field 22 of
``/proc/PID/stat``) and ``BOOT`` the head of the kernel's boot id, so a pid reused by
another process, or after a reboot, is not taken for the owner.

Prefect-free: the reconciliation that reads runs from the API is
:mod:`noa_core.orchestration.reconcile`.
"""

from __future__ import annotations

import enum
import os
import socket
from dataclasses import dataclass
from pathlib import Path

IN_PROCESS_TAG = "noa-in-process"
OWNER_TAG_PREFIX = "noa-owner:"
_PROC = Path("/proc")


class OwnerStatus(enum.Enum):
    ALIVE = "alive"          # the owner process runs on this host
    GONE = "gone"            # the owner ran on this host and is no longer there (or its pid was reused)
    ELSEWHERE = "elsewhere"  # another host: nothing can be said from here


def _machine_id() -> str:
    for path in (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id")):
        try:
            text = path.read_text().strip()[:8]
        except OSError:
            continue
        if text:
            return text
    return "-"


def _boot_id() -> str:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8] or "-"
    except OSError:
        return "-"


def process_start_ticks(pid: int) -> int | None:
    """Start time of a live process in clock ticks since boot; None if none runs as ``pid``
    (a zombie counts as gone). On a system without ``/proc``: 0 for a live pid."""
    if pid <= 0:
        return None
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return _start_without_proc(pid)
    fields = stat[stat.rfind(")") + 2:].split()  # the command name may hold spaces and parentheses
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of the whole line: starttime


def _start_without_proc(pid: int) -> int | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return 0
    return 0


@dataclass(frozen=True)
class OwnerMark:
    host: str
    machine: str
    pid: int
    start: int
    boot: str

    @classmethod
    def current(cls) -> OwnerMark:
        pid = os.getpid()
        start = process_start_ticks(pid) if _PROC.is_dir() else 0
        return cls(socket.gethostname(), _machine_id(), pid, start or 0, _boot_id())

    @property
    def tag(self) -> str:
        return f"{OWNER_TAG_PREFIX}{self.host}:{self.machine}:{self.pid}:{self.start}:{self.boot}"

    @classmethod
    def parse(cls, tag: str) -> OwnerMark | None:
        """The mark in a tag, or None if the tag is not an owner mark."""
        if not tag.startswith(OWNER_TAG_PREFIX):
            return None
        parts = tag[len(OWNER_TAG_PREFIX):].rsplit(":", 4)
        if len(parts) != 5 or not parts[0] or not parts[2].isdigit() or not parts[3].isdigit():
            return None
        return cls(parts[0], parts[1], int(parts[2]), int(parts[3]), parts[4])

    def status(self) -> OwnerStatus:
        if self.host != socket.gethostname() or self.machine != _machine_id():
            return OwnerStatus.ELSEWHERE
        if self.boot != _boot_id():
            return OwnerStatus.GONE
        start = process_start_ticks(self.pid)
        if start is None:
            return OwnerStatus.GONE
        if _PROC.is_dir() and self.start and start != self.start:
            return OwnerStatus.GONE  # the pid now belongs to another process
        return OwnerStatus.ALIVE


def owner_marks(tags: list[str] | tuple[str, ...]) -> list[OwnerMark]:
    return [m for m in (OwnerMark.parse(t) for t in tags) if m is not None]


def dead_owner(tags: list[str] | tuple[str, ...]) -> OwnerMark | None:
    """The owner mark whose process is gone, if every owner mark on the run is gone; else None.

    A run with no owner mark, a mark from another host or a live owner is not NOA's to touch.
    """
    marks = owner_marks(tags)
    if not marks:
        return None
    statuses = [m.status() for m in marks]
    if all(s is OwnerStatus.GONE for s in statuses):
        return marks[-1]
    return None


__all__ = ["IN_PROCESS_TAG", "OWNER_TAG_PREFIX", "OwnerMark", "OwnerStatus", "dead_owner", "owner_marks",
           "process_start_ticks"]
