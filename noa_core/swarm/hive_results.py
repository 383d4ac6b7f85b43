"""The hive's results and leases: a check's result stored once per key and reused
(``hive_results``), and the lease that keeps two agents from computing the same key at
the same time (``hive_claims``)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from noa_core.storage.models import utcnow
from noa_core.swarm.hive_keys import ResultMeta
from noa_core.swarm.hive_schema import HiveStore, claims_table, results_table

__all__ = ["ResultStore"]

_HOST = socket.gethostname()


def _lease_owner(agent: str) -> str:
    suffix = f"@{_HOST}:{os.getpid()}"
    return agent[: 300 - len(suffix)] + suffix


def _owner_is_dead(owner: str) -> bool:
    """True when a lease's process ran on this host and is gone."""
    _, _, where = owner.rpartition("@")
    host, _, pid = where.rpartition(":")
    if host != _HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a zombie is dead too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class ResultStore(HiveStore):
    """Results by key, their reuse counts, and the leases on keys being computed."""

    # results ----------------------------------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(results_table.c.payload).where(results_table.c.key == key)).first()
        return dict(row[0]) if row is not None else None

    def record_hit(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(results_table).where(results_table.c.key == key)
                         .values(hits=results_table.c.hits + 1, last_hit=utcnow()))

    def put(self, key: str, meta: ResultMeta, payload: Mapping[str, Any], agent: str) -> bool:
        """Store a result; False when the key was already there (the first one stays)."""
        row = {"key": key, "kind": f"{meta.toolchain}/{meta.check}", "tool": meta.tool,
               "tool_version": meta.tool_version, "content_hash": meta.content_hash,
               "command": list(meta.command), "status": str(payload.get("status", "")),
               "payload": dict(payload), "computed_by": agent[:300], "created": utcnow(), "hits": 0}
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(results_table).values(**row))
            return True
        except IntegrityError:
            return False

    def forget(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(results_table).where(results_table.c.key == key))

    def results_for(self, content: str) -> list[dict[str, Any]]:
        """Every stored result of one content hash (kind, tool, status, hits, computed_by)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(results_table.c.kind, results_table.c.tool, results_table.c.status,
                                       results_table.c.hits, results_table.c.computed_by, results_table.c.key)
                                .where(results_table.c.content_hash == content)
                                .order_by(results_table.c.kind)).all()
        return [dict(r._mapping) for r in rows]

    # claims (leases) --------------------------------------------------------------------

    def claim(self, key: str, owner: str, lease_s: float) -> bool:
        """Take the lease on ``key`` for ``lease_s`` seconds; False while another owner holds it.

        The lease records the owner's process (``agent@host:pid``): a lease whose process is
        gone from this host (a killed worker or CLI) is taken over at once, not waited out.
        """
        now = time.time()
        me = _lease_owner(owner)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(claims_table).values(key=key, owner=me, expires=now + lease_s))
            return True
        except IntegrityError:
            pass
        with self.engine.begin() as conn:
            row = conn.execute(select(claims_table.c.owner).where(claims_table.c.key == key)).first()
            if row is None:
                return False  # released meanwhile: the caller asks again
            holder = row.owner
            cond = (claims_table.c.expires < now) | (claims_table.c.owner == me)
            if _owner_is_dead(holder):
                cond = cond | (claims_table.c.owner == holder)
            res = conn.execute(update(claims_table).where(claims_table.c.key == key).where(cond)
                               .values(owner=me, expires=now + lease_s))
            return bool(res.rowcount)

    def release(self, key: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(claims_table).where(claims_table.c.key == key)
                         .where(claims_table.c.owner == _lease_owner(owner)))

    def claim_owner(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(claims_table.c.owner).where(claims_table.c.key == key)).first()
        return row.owner if row is not None else None

    def begin(self, key: str, agent: str, *, reuse: bool = True, lease_s: float = 3600.0,
              poll_s: float = 0.25) -> dict[str, Any] | None:
        """Start a piece of work: the stored result when there is one (a reuse, counted), else
        ``None`` with the key's lease held by ``agent`` - finish with :meth:`end`.

        While another agent holds the lease, wait for its result (or for the lease to end)
        rather than doing the same work. ``reuse=False`` never reads nor waits.
        """
        if not reuse:
            return None
        hit = self.get(key)
        if hit is None:
            while not self.claim(key, agent, lease_s):
                time.sleep(poll_s)
                hit = self.get(key)
                if hit is not None:
                    break
            else:
                hit = self.get(key)  # stored between our miss and our claim
                if hit is not None:
                    self.release(key, agent)
        if hit is not None:
            self.record_hit(key)
        return hit

    def end(self, key: str, agent: str, payload: Mapping[str, Any] | None, meta: ResultMeta | None = None, *,
            store: bool = True) -> bool:
        """Finish what :meth:`begin` started: store ``payload`` (when given and ``store``) and
        release the lease. Returns whether a new result was stored."""
        try:
            if payload is not None and store and meta is not None:
                return self.put(key, meta, payload, agent)
            return False
        finally:
            self.release(key, agent)

    def run_once(self, key: str, compute: Callable[[], dict[str, Any]], *, meta: ResultMeta, agent: str,
                 reuse: bool = True, lease_s: float = 3600.0, poll_s: float = 0.25,
                 cacheable: Callable[[Mapping[str, Any]], bool] = lambda p: True) -> tuple[dict[str, Any], bool]:
        """``(payload, reused)``: the stored result of ``key``, or ``compute()``'s (then stored
        when ``cacheable``). See :meth:`begin` for how concurrent agents are kept apart."""
        hit = self.begin(key, agent, reuse=reuse, lease_s=lease_s, poll_s=poll_s)
        if hit is not None:
            return hit, True
        payload: dict[str, Any] | None = None
        try:
            payload = compute()
            return payload, False
        finally:
            self.end(key, agent, payload, meta, store=payload is not None and cacheable(payload))
