"""Checkpoints: Merkle tree heads kept OUTSIDE the log, in ``NOA_HOME/cltree/checkpoints.jsonl``.

A hash chain alone cannot show that its newest entries were cut off; a tree head
recorded elsewhere can. Each line is ``{"size", "root", "at"}``. Lines are appended with
one ``write`` on an ``O_APPEND`` descriptor (whole lines, even from several processes).
The head written after every append is not fsynced: it is exactly as durable as the
SQLite commit it follows (WAL with ``synchronous=NORMAL`` survives a crashed process,
not a power cut), so a power cut can never leave a checkpoint naming entries the database
lost, which would read as a truncation. An explicit checkpoint (``noa cltree checkpoint``)
is fsynced. Backups store the newest one in every snapshot.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

FILE_NAME = "checkpoints.jsonl"


@dataclass(frozen=True)
class Checkpoint:
    size: int
    root: str
    at: str
    line: int  # 1-based line in the file (0: not from the file)


def checkpoint_file(cltree_dir: Path) -> Path:
    return cltree_dir / FILE_NAME


def append_checkpoint(cltree_dir: Path, size: int, root: str, *, fsync: bool = False) -> Checkpoint:
    cltree_dir.mkdir(parents=True, exist_ok=True)
    at = datetime.now(UTC).isoformat(timespec="microseconds")
    line = json.dumps({"size": size, "root": root, "at": at}, separators=(",", ":")) + "\n"
    fd = os.open(checkpoint_file(cltree_dir), os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                 0o644)
    try:
        os.write(fd, line.encode("ascii"))
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return Checkpoint(size=size, root=root, at=at, line=0)


def read_checkpoints(cltree_dir: Path) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints in the file, and a problem line for each unreadable line."""
    path = checkpoint_file(cltree_dir)
    found: list[Checkpoint] = []
    problems: list[str] = []
    if not path.is_file():
        return found, problems
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                doc = json.loads(raw)
                cp = Checkpoint(size=int(doc["size"]), root=str(doc["root"]), at=str(doc.get("at", "")), line=number)
                bytes.fromhex(cp.root)
                if cp.size < 0 or len(cp.root) != 64:
                    raise ValueError("bad size or root")
            except (ValueError, KeyError, TypeError) as exc:
                # a torn last line (crash mid-append) is harmless; anything else is reported
                problems.append(f"{path.name} line {number}: unreadable checkpoint ({exc})")
                continue
            found.append(cp)
    return found, problems


def last_checkpoint(cltree_dir: Path) -> Checkpoint | None:
    """The checkpoint with the largest size (lines from racing writers may be out of order)."""
    found, _ = read_checkpoints(cltree_dir)
    return max(found, key=lambda c: (c.size, c.line)) if found else None
