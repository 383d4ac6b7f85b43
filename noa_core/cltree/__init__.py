"""The CL tree: an append-only, hash-chained change log shaped as a DAG.

Every entry (drop, merge, pipeline, stage, build, release, rollback, backup, registry,
alert) is content-addressed (SHA-256 of its canonical JSON) and names its parents: the
head of the log before it, and the previous entry about the same subject. Entries live
in the registry database (``cltree_entries``); Merkle tree heads (RFC 6962) are kept
outside it, in ``NOA_HOME/cltree/checkpoints.jsonl``, so that truncation shows too.

Prefect-free. Public API (contract 1)::

    record_change(settings, kind, subject, payload) -> ChangeEntry
    change_entries(settings, *, kind=None, subject=None, limit=None) -> list[ChangeEntry]
    checkpoint(settings) -> {"size": int, "root": hex}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noa_core.cltree.checkpoints import (
    Checkpoint,
    append_checkpoint,
    last_checkpoint,
    read_checkpoints,
)
from noa_core.cltree.entry import KINDS, ChangeEntry, canonical_json
from noa_core.cltree.log import (
    ChangeLogError,
    append_entry,
    append_locked,
    current_head,
    is_retryable,
    lock_for_append,
    raw_rows,
    read_entries,
    retry_pause,
    stored_frontier,
)
from noa_core.cltree.verify import Problem, VerifyReport, verify_rows

if TYPE_CHECKING:
    from noa_core.config import NoaSettings

__all__ = ["KINDS", "ChangeEntry", "ChangeLogError", "Checkpoint", "PendingChange", "Problem", "VerifyReport",
           "change_entries", "checkpoint", "export_jsonl", "is_retryable", "last_checkpoint", "lock_for_append",
           "read_checkpoints", "record_change", "record_change_in", "record_checkpoint", "retry_pause",
           "snapshot_heads", "verify"]


def _engine(settings: NoaSettings):
    from noa_core.storage.database import open_database

    return open_database(settings)


def _cltree_dir(settings: NoaSettings) -> Path:
    return settings.layout().cltree


def record_change(settings: NoaSettings, kind: str, subject: str, payload: Mapping[str, Any], *,
                  engine: Any = None) -> ChangeEntry:
    """Append one change; its parents are the log's head and the subject's previous entry.

    The new tree head is appended to the checkpoint file right after the commit. Values
    under secret-looking keys (password, token, secret, api_key, ...) are redacted.
    Raises :class:`~noa_core.errors.BadInput` for an unknown kind or a non-JSON payload.
    A long-lived caller (the API server) passes its own migrated ``engine`` of the registry
    database; otherwise one is opened (and its schema checked) for this call.
    """
    own = engine is None
    engine = _engine(settings) if own else engine
    try:
        entry, head = append_entry(engine, kind, subject, payload)
    finally:
        if own:
            engine.dispose()
    record_checkpoint(settings, PendingChange(entry, head))
    return entry


@dataclass(frozen=True)
class PendingChange:
    """An entry appended inside a caller's transaction, and the tree head to record once it commits."""

    entry: ChangeEntry
    head: dict[str, int | str]


def record_change_in(conn: Any, kind: str, subject: str, payload: Mapping[str, Any]) -> PendingChange:
    """Append inside ``conn``'s open transaction, begun with :func:`lock_for_append`.

    For a writer whose own rows and the CL tree entry must commit together (or not at all).
    After the commit, call :func:`record_checkpoint` with the result.
    """
    entry, head = append_locked(conn, kind, subject, payload)
    return PendingChange(entry, head)


def record_checkpoint(settings: NoaSettings, pending: PendingChange) -> None:
    """Append the committed change's tree head to the checkpoint file."""
    append_checkpoint(_cltree_dir(settings), int(pending.head["size"]), str(pending.head["root"]))


def change_entries(settings: NoaSettings, *, kind: str | None = None, subject: str | None = None,
                   limit: int | None = None) -> list[ChangeEntry]:
    """Entries oldest first (filtered by kind and/or subject); ``limit`` keeps the newest ones."""
    engine = _engine(settings)
    try:
        return read_entries(engine, kind=kind, subject=subject, limit=limit)
    finally:
        engine.dispose()


def checkpoint(settings: NoaSettings) -> dict:
    """The Merkle tree head of the whole log, ``{"size": n, "root": hex}``, recorded in the checkpoint file."""
    engine = _engine(settings)
    try:
        head = current_head(engine)
    finally:
        engine.dispose()
    last = last_checkpoint(_cltree_dir(settings))
    if last is None or last.size != head["size"] or last.root != head["root"]:
        append_checkpoint(_cltree_dir(settings), int(head["size"]), str(head["root"]), fsync=True)
    return {"size": int(head["size"]), "root": str(head["root"])}


def verify(settings: NoaSettings, extra_checkpoints: Sequence[Checkpoint] = ()) -> VerifyReport:
    """Re-hash every entry, check every parent link, and check the log against every checkpoint.

    ``extra_checkpoints`` are heads kept outside NOA_HOME (see :func:`snapshot_heads`): someone
    who can rewrite both the database and the checkpoint file still cannot change those.
    """
    engine = _engine(settings)
    try:
        frontier = stored_frontier(engine)  # first: an append in between only lengthens the rows
        rows = raw_rows(engine)
    finally:
        engine.dispose()
    return verify_rows(rows, _cltree_dir(settings), frontier, extra_checkpoints)


def snapshot_heads(heads: Sequence[Mapping[str, Any]]) -> list[Checkpoint]:
    """Checkpoints from backup snapshots' ``{"snapshot", "time", "size", "root"}`` records."""
    return [Checkpoint(size=int(h["size"]), root=str(h["root"]), at=f"snapshot {str(h['snapshot'])[:12]} "
                                                                    f"({str(h.get('time', ''))[:19]})", line=0)
            for h in heads]


def export_jsonl(settings: NoaSettings, out: Path, *, kind: str | None = None) -> int:
    """Write the entries (oldest first) as JSON lines to ``out`` (atomically); returns how many."""
    entries = change_entries(settings, kind=kind)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for e in entries:
            fh.write(canonical_json(e.as_dict()) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out)
    return len(entries)


def load_jsonl(path: Path) -> list[ChangeEntry]:
    """Entries back from an export (for audits and tests)."""
    entries = []
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                d = json.loads(line)
                entries.append(ChangeEntry(id=d["id"], seq=int(d["seq"]), kind=d["kind"], subject=d["subject"],
                                           payload=d["payload"], parents=tuple(d["parents"]),
                                           created_at=d["created_at"]))
    return entries
