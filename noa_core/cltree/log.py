"""The CL tree's storage: append-only entries in the registry database.

Appending is one transaction that takes the writer lock first (``BEGIN IMMEDIATE`` on
SQLite, a transaction-scoped advisory lock on PostgreSQL), reads the head and the
subject's previous entry, and inserts the new entry at ``head.seq + 1``. ``seq`` is the
primary key, so even without the lock two writers could never share a place in the
chain: the loser of a race gets an integrity error and tries again on the new head.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from noa_core.cltree.entry import (
    ChangeEntry,
    canonical_json,
    check_kind_subject,
    entry_id,
    normalize_payload,
)
from noa_core.cltree.merkle import tree_head
from noa_core.errors import NoaError
from noa_core.storage.models import ChangeLogEntry

T = ChangeLogEntry.__table__
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


def _retryable(exc: OperationalError) -> bool:
    message = str(exc.orig if exc.orig is not None else exc).lower()
    return "locked" in message or "busy" in message or "deadlock" in message or "serializ" in message


def append_entry(engine: Engine, kind: str, subject: str,
                 payload: Mapping[str, Any]) -> tuple[ChangeEntry, dict[str, int | str]]:
    """Append one entry; returns it and the tree head right after it (both from one transaction)."""
    check_kind_subject(kind, subject)
    clean = normalize_payload(payload)
    payload_text = canonical_json(clean)
    last_error: Exception | None = None
    for attempt in range(ATTEMPTS):
        try:
            with engine.connect() as conn:
                _lock(conn)
                head = conn.execute(select(T.c.seq, T.c.id).order_by(T.c.seq.desc()).limit(1)).first()
                same = conn.execute(select(T.c.id).where(T.c.subject == subject)
                                    .order_by(T.c.seq.desc()).limit(1)).first()
                seq = int(head.seq) + 1 if head else 1
                parents: list[str] = [head.id] if head else []
                if same is not None and same.id not in parents:
                    parents.append(same.id)
                created_at = datetime.now(UTC).isoformat(timespec="microseconds")
                eid = entry_id(seq, kind, subject, clean, parents, created_at)
                conn.execute(insert(T).values(seq=seq, id=eid, kind=kind, subject=subject, payload=payload_text,
                                              parents=canonical_json(parents), created_at=created_at))
                ids = conn.execute(select(T.c.id).order_by(T.c.seq)).scalars().all()
                conn.commit()
            return (ChangeEntry(id=eid, seq=seq, kind=kind, subject=subject, payload=clean,
                                parents=tuple(parents), created_at=created_at), tree_head(ids))
        except IntegrityError as exc:  # another writer took this seq: read the new head and retry
            last_error = exc
        except OperationalError as exc:
            if not _retryable(exc):
                raise ChangeLogError(f"cannot append to the change log: {exc.orig or exc}") from None
            last_error = exc
        time.sleep(min(0.5, 0.005 * (attempt + 1)) * (0.5 + random.random()))
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


def raw_rows(engine: Engine) -> list[Any]:
    """Every stored row as it is, in seq order (verification reads the text, not parsed values)."""
    with engine.connect() as conn:
        return list(conn.execute(select(T).order_by(T.c.seq)).all())


def entry_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(T.c.id).order_by(T.c.seq)).scalars().all())
