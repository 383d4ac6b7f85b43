"""The CL tree's storage: append-only entries in the registry database.

Appending is one transaction that takes the writer lock first (``BEGIN IMMEDIATE`` on
SQLite, a transaction-scoped advisory lock on PostgreSQL), reads the head and the
subject's previous entry, and inserts the new entry at ``head.seq + 1``. ``seq`` is the
primary key, so even without the lock two writers could never share a place in the
chain: the loser of a race gets an integrity error and tries again on the new head.

The tree head comes from the Merkle frontier stored beside the entries
(``cltree_frontier``), updated in the same transaction: O(log n) per append. A frontier
that is missing or does not cover exactly the entries before the new one (a database
from before revision 0005, a row edited by hand) is rebuilt from every id, once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from noa_core.cltree.entry import (
    ChangeEntry,
    canonical_json,
    check_kind_subject,
    entry_id,
    normalize_payload,
)
from noa_core.cltree.merkle import Frontier
from noa_core.errors import NoaError
from noa_core.storage.models import ChangeLogEntry, ChangeLogFrontier

T = ChangeLogEntry.__table__
F = ChangeLogFrontier.__table__
FRONTIER_ROW = "main"

# statements built once (SQLAlchemy then reuses their compiled form; an append is five of them)
_HEAD = select(T.c.seq, T.c.id).order_by(T.c.seq.desc()).limit(1)
_SAME_SUBJECT = select(T.c.id).where(T.c.subject == bindparam("subject")).order_by(T.c.seq.desc()).limit(1)
_FRONTIER = select(F.c.size, F.c.hashes).where(F.c.name == FRONTIER_ROW)
_UPDATE_FRONTIER = update(F).where(F.c.name == FRONTIER_ROW)
PG_LOCK_KEY = 0x6E6F61636C74  # "noaclt": serialises appends on PostgreSQL
ATTEMPTS = 50


class ChangeLogError(NoaError):
    """The change log could not be read or written."""


def _row_entry(row: Any) -> ChangeEntry:
    import json

    return ChangeEntry(id=row.id, seq=int(row.seq), kind=row.kind, subject=row.subject,
                       payload=json.loads(row.payload), parents=tuple(json.loads(row.parents)),
                       created_at=row.created_at)


def _lock(conn: Connection) -> None:
    name = conn.dialect.name
    if name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock before reading the head
    elif name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})


def _frontier_before(conn: Connection, size: int) -> tuple[Frontier, bool]:
    """The frontier of the first ``size`` entries, and whether a row for it is stored already."""
    row = conn.execute(_FRONTIER).first()
    if row is not None and int(row.size) == size:
        try:
            return Frontier.loads(int(row.size), row.hashes), True
        except ValueError:
            pass  # unreadable: rebuild below
    ids = conn.execute(select(T.c.id).where(T.c.seq <= size).order_by(T.c.seq)).scalars().all()
    return Frontier.of(ids), row is not None


def current_head(engine: Engine) -> dict[str, int | str]:
    """The tree head of the whole log: from the stored frontier when it covers every entry (O(log n)),
    else recomputed from every id."""
    with engine.connect() as conn:  # one read transaction: the frontier and the head agree
        row = conn.execute(_FRONTIER).first()
        head = conn.execute(_HEAD).first()
        size = int(head.seq) if head else 0
        if row is not None and int(row.size) == size:
            try:
                return Frontier.loads(size, row.hashes).head()
            except ValueError:
                pass  # unreadable: recompute below
        return Frontier.of(conn.execute(select(T.c.id).order_by(T.c.seq)).scalars().all()).head()


def stored_frontier(engine: Engine) -> tuple[int, str] | None:
    """``(size, hashes)`` as stored (verification compares it with the recomputed one)."""
    with engine.connect() as conn:
        row = conn.execute(select(F.c.size, F.c.hashes).where(F.c.name == FRONTIER_ROW)).first()
    return (int(row.size), str(row.hashes)) if row is not None else None


def _retryable(exc: OperationalError) -> bool:
    message = str(exc.orig if exc.orig is not None else exc).lower()
    return "locked" in message or "busy" in message or "deadlock" in message or "serializ" in message


def lock_for_append(conn: Connection) -> None:
    """Begin ``conn``'s transaction holding the append lock (first thing on a fresh connection)."""
    _lock(conn)


def append_locked(conn: Connection, kind: str, subject: str,
                  payload: Mapping[str, Any]) -> tuple[ChangeEntry, dict[str, int | str]]:
    """Append one entry inside ``conn``'s transaction, which must hold the lock (:func:`lock_for_append`).

    Nothing is committed: the caller commits it together with its own rows (the API's write
    flow does) or rolls everything back. Returns the entry and the tree head after it.
    """
    check_kind_subject(kind, subject)
    clean = normalize_payload(payload)
    head = conn.execute(_HEAD).first()
    same = conn.execute(_SAME_SUBJECT, {"subject": subject}).first()
    seq = int(head.seq) + 1 if head else 1
    parents: list[str] = [head.id] if head else []
    if same is not None and same.id not in parents:
        parents.append(same.id)
    created_at = datetime.now(UTC).isoformat(timespec="microseconds")
    eid = entry_id(seq, kind, subject, clean, parents, created_at)
    conn.execute(insert(T), {"seq": seq, "id": eid, "kind": kind, "subject": subject,
                             "payload": canonical_json(clean), "parents": canonical_json(parents),
                             "created_at": created_at})
    before, stored = _frontier_before(conn, seq - 1)
    after = before.append(eid)
    values = {"size": after.size, "hashes": after.dumps()}
    if stored:
        conn.execute(_UPDATE_FRONTIER, values)
    else:
        conn.execute(insert(F), {"name": FRONTIER_ROW, **values})
    return (ChangeEntry(id=eid, seq=seq, kind=kind, subject=subject, payload=clean, parents=tuple(parents),
                        created_at=created_at), after.head())


def retry_pause(attempt: int) -> None:
    time.sleep(min(0.5, 0.005 * (attempt + 1)) * (0.5 + random.random()))


def is_retryable(exc: Exception) -> bool:
    """A lost race for the head (integrity error) or a busy/locked database: try the transaction again."""
    if isinstance(exc, IntegrityError):
        return True
    return isinstance(exc, OperationalError) and _retryable(exc)


def append_entry(engine: Engine, kind: str, subject: str,
                 payload: Mapping[str, Any]) -> tuple[ChangeEntry, dict[str, int | str]]:
    """Append one entry in its own transaction; returns it and the tree head right after it."""
    last_error: Exception | None = None
    for attempt in range(ATTEMPTS):
        try:
            with engine.connect() as conn:
                _lock(conn)
                result = append_locked(conn, kind, subject, payload)
                conn.commit()
            return result
        except (IntegrityError, OperationalError) as exc:
            if not is_retryable(exc):
                raise ChangeLogError(f"cannot append to the change log: {getattr(exc, 'orig', None) or exc}") from None
            last_error = exc
        retry_pause(attempt)
    raise ChangeLogError(f"cannot append to the change log after {ATTEMPTS} attempts: {last_error}")


def read_entries(engine: Engine, *, kind: str | None = None, subject: str | None = None,
                 limit: int | None = None) -> list[ChangeEntry]:
    """Entries oldest first; with ``limit`` the newest ``limit`` of them (still oldest first)."""
    query = select(T)
    if kind is not None:
        query = query.where(T.c.kind == kind)
    if subject is not None:
        query = query.where(T.c.subject == subject)
    if limit is not None:
        query = query.order_by(T.c.seq.desc()).limit(max(0, int(limit)))
    else:
        query = query.order_by(T.c.seq)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    entries = [_row_entry(r) for r in rows]
    if limit is not None:
        entries.reverse()
    return entries


def entries_after(engine: Engine, seq: int, kinds: tuple[str, ...], limit: int = 1000) -> tuple[list[ChangeEntry], int]:
    """Entries of ``kinds`` after ``seq`` (oldest first, at most ``limit`` rows read) and the last seq read."""
    with engine.connect() as conn:
        rows = conn.execute(select(T).where(T.c.seq > seq).order_by(T.c.seq).limit(limit)).all()
    last = int(rows[-1].seq) if rows else seq
    return [_row_entry(r) for r in rows if r.kind in kinds], last


def raw_rows(engine: Engine) -> list[Any]:
    """Every stored row as it is, in seq order (verification reads the text, not parsed values)."""
    with engine.connect() as conn:
        return list(conn.execute(select(T).order_by(T.c.seq)).all())


def entry_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(T.c.id).order_by(T.c.seq)).scalars().all())
