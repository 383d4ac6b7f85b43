"""The hive mind: a knowledge store every swarm agent reads and writes.

It lives in the registry database (SQLite under NOA_HOME, or ``NOA_DATABASE_URL``) in
tables of its own (``hive_*``, created idempotently, their own SQLAlchemy metadata):

* ``hive_results`` - check results keyed by (tool, tool version, content hash of the
  project tree, command). An agent asks the hive before it runs anything: identical work
  is never redone, across runs and across agents. ``hits`` counts the reuses.
* ``hive_claims`` - leases: the first agent to start a key holds it; others asking for
  the same key at the same time wait for its result instead of running it too.
* ``hive_durations`` - seconds per test file and project (a moving average); the next
  run's shards are balanced with them.
* ``hive_failures`` / ``hive_flaky`` - tests that failed on some content, and tests seen
  flaky: failed, then passed on identical content.
* ``hive_test_facts`` - what was learnt about single tests: "order-dependent" (failed
  only when its file ran in a shard without the files before it; the next plans keep
  that prefix together) and "whole-run-failure" (failed in a whole-suite run too).
* ``hive_reports`` - each swarm flow run's report, by flow-run id: how the master reads
  what a swarm run on a worker found (same path in embedded and distributed mode).

Callers get plain dicts and frozen dataclasses, never ORM objects or open sessions.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blake3 import blake3
from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from noa_core.storage.database import make_engine
from noa_core.storage.hashing import digest_tree
from noa_core.storage.models import NAMING_CONVENTION, UTCDateTime, utcnow

__all__ = [
    "Hive",
    "HiveStats",
    "ResultMeta",
    "content_hash",
    "open_hive",
    "result_key",
]

metadata = MetaData(naming_convention=NAMING_CONVENTION)

results_table = Table(
    "hive_results", metadata,
    Column("key", String(64), primary_key=True),
    Column("kind", String(80), nullable=False),
    Column("tool", String(80), nullable=False),
    Column("tool_version", Text, nullable=False),
    Column("content_hash", String(64), nullable=False, index=True),
    Column("command", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("computed_by", String(300), nullable=False),
    Column("created", UTCDateTime, nullable=False, default=utcnow),
    Column("hits", Integer, nullable=False, default=0),
    Column("last_hit", UTCDateTime),
)

claims_table = Table(
    "hive_claims", metadata,
    Column("key", String(64), primary_key=True),
    Column("owner", String(300), nullable=False),
    Column("expires", Float, nullable=False),  # epoch seconds
)

durations_table = Table(
    "hive_durations", metadata,
    Column("id", Integer, primary_key=True),
    Column("project", String(200), nullable=False),
    Column("path_hash", String(32), nullable=False),
    Column("path", Text, nullable=False),
    Column("seconds", Float, nullable=False),  # moving average
    Column("last_seconds", Float, nullable=False),
    Column("runs", Integer, nullable=False, default=1),
    Column("updated", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("project", "path_hash"),
)

failures_table = Table(
    "hive_failures", metadata,
    Column("id", Integer, primary_key=True),
    Column("project", String(200), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("node_hash", String(32), nullable=False),
    Column("node_id", Text, nullable=False),
    Column("created", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("project", "content_hash", "node_hash"),
)

flaky_table = Table(
    "hive_flaky", metadata,
    Column("id", Integer, primary_key=True),
    Column("project", String(200), nullable=False),
    Column("node_hash", String(32), nullable=False),
    Column("node_id", Text, nullable=False),
    Column("times", Integer, nullable=False, default=1),
    Column("last_content_hash", String(64), nullable=False),
    Column("first_seen", UTCDateTime, nullable=False, default=utcnow),
    Column("last_seen", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("project", "node_hash"),
)

facts_table = Table(
    "hive_test_facts", metadata,
    Column("id", Integer, primary_key=True),
    Column("project", String(200), nullable=False),
    Column("fact", String(40), nullable=False),  # "order-dependent", "whole-run-failure"
    Column("node_hash", String(32), nullable=False),
    Column("node_id", Text, nullable=False),
    Column("times", Integer, nullable=False, default=1),
    Column("detail", JSON),  # order-dependent: {"needs_one_of": [files that may provide what it needs]}
    Column("updated", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("project", "fact", "node_hash"),
)

reports_table = Table(
    "hive_reports", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("kind", String(40), nullable=False),  # "python-swarm", "swarm" (master summary), ...
    Column("project", String(200), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created", UTCDateTime, nullable=False, default=utcnow),
)

DURATION_ALPHA = 0.5  # weight of the newest observation in the moving average


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


def _h(text: str, size: int = 16) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=size).hexdigest()


def result_key(tool: str, tool_version: str, content: str, command: Sequence[str], *, kind: str = "") -> str:
    """The hive key of one piece of work: (kind, tool, tool version, content hash, command)."""
    doc = json.dumps([kind, tool, tool_version, content, list(command)], ensure_ascii=False, separators=(",", ":"))
    return _h(doc, 32)


def content_hash(tree: Path) -> str:
    """BLAKE3 over every regular file (path + hash) and every symlink (path + target) of ``tree``;
    ``.git`` is left out. Two trees with the same content get the same hash wherever they are."""
    tree = Path(tree)
    digest = digest_tree(tree)
    hasher = blake3(b"noa-swarm-content-v1\n" + digest.tree_hash.encode())
    for rel in digest.skipped:
        full = tree / rel
        try:
            target = os.readlink(full) if full.is_symlink() else "<special>"
        except OSError:
            target = "<unreadable>"
        hasher.update(b"\n" + rel.encode("utf-8", "surrogateescape") + b"\0" +
                      target.encode("utf-8", "surrogateescape"))
    return hasher.hexdigest()


@dataclass(frozen=True)
class ResultMeta:
    """The searchable columns of a stored result."""

    toolchain: str
    check: str
    tool: str
    tool_version: str
    content_hash: str
    command: tuple[str, ...]


@dataclass(frozen=True)
class HiveStats:
    results: int
    hits: int
    durations: int
    flaky: int
    reports: int


class Hive:
    """The shared knowledge store over one SQLAlchemy engine (thread- and process-safe)."""

    def __init__(self, engine: Engine, *, create: bool = True) -> None:
        self.engine = engine
        if create:
            self.create_schema()

    # schema -----------------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create the ``hive_*`` tables that are missing (several processes may race here)."""
        for attempt in range(5):
            try:
                metadata.create_all(self.engine, checkfirst=True)
                return
            except OperationalError as exc:  # "table ... already exists" from a racing process, or busy
                if attempt == 4:
                    raise
                if "already exists" not in str(exc) and "locked" not in str(exc):
                    raise
                time.sleep(0.1 * (attempt + 1))

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

    # durations --------------------------------------------------------------------------

    def _try_insert(self, table: Table, **values: Any) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(table).values(**values))
            return True
        except IntegrityError:
            return False

    def record_durations(self, project: str, seconds_by_path: Mapping[str, float]) -> int:
        """Fold new per-file durations into the moving averages; returns how many were recorded."""
        n = 0
        now = utcnow()
        for path, secs in seconds_by_path.items():
            try:
                secs = float(secs)
            except (TypeError, ValueError):
                continue
            if not (0.0 <= secs <= 86_400) or not path:
                continue
            ph = _h(path)
            if self._try_insert(durations_table, project=project, path_hash=ph, path=path, seconds=secs,
                                last_seconds=secs, runs=1, updated=now):
                n += 1
                continue
            with self.engine.begin() as conn:
                cur = conn.execute(select(durations_table.c.id, durations_table.c.seconds, durations_table.c.runs)
                                   .where(durations_table.c.project == project)
                                   .where(durations_table.c.path_hash == ph)).first()
                if cur is None:
                    continue
                avg = DURATION_ALPHA * secs + (1 - DURATION_ALPHA) * float(cur.seconds)
                conn.execute(update(durations_table).where(durations_table.c.id == cur.id)
                             .values(seconds=avg, last_seconds=secs, runs=cur.runs + 1, updated=now))
                n += 1
        return n

    def durations(self, project: str) -> dict[str, float]:
        """Recorded seconds per test file of ``project`` (moving averages)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(durations_table.c.path, durations_table.c.seconds)
                                .where(durations_table.c.project == project)).all()
        return {r.path: float(r.seconds) for r in rows}

    # failures and flaky tests -----------------------------------------------------------

    def record_failures(self, project: str, content: str, failed: Iterable[str]) -> None:
        for node in dict.fromkeys(failed):
            self._try_insert(failures_table, project=project, content_hash=content, node_hash=_h(node),
                             node_id=node, created=utcnow())

    def failures(self, project: str, content: str) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(failures_table.c.node_id).where(failures_table.c.project == project)
                                .where(failures_table.c.content_hash == content)).all()
        return {r.node_id for r in rows}

    def passed_after_failing(self, project: str, content: str, ran_files: Iterable[str],
                             failed_now: Iterable[str]) -> list[str]:
        """Tests that failed before on this very content, whose file ran again now and did not
        fail: they are flaky (recorded as such); returned sorted."""
        files = set(ran_files)
        now_failed = set(failed_now)
        flaky = sorted(n for n in self.failures(project, content)
                       if n.split("::", 1)[0] in files and n not in now_failed)
        if flaky:
            self.record_flaky(project, content, flaky)
        return flaky

    def record_flaky(self, project: str, content: str, node_ids: Iterable[str]) -> None:
        now = utcnow()
        for node in dict.fromkeys(node_ids):
            nh = _h(node)
            if self._try_insert(flaky_table, project=project, node_hash=nh, node_id=node, times=1,
                                last_content_hash=content, first_seen=now, last_seen=now):
                continue
            with self.engine.begin() as conn:
                conn.execute(update(flaky_table).where(flaky_table.c.project == project)
                             .where(flaky_table.c.node_hash == nh)
                             .values(times=flaky_table.c.times + 1, last_seen=now, last_content_hash=content))

    def flaky(self, project: str) -> dict[str, int]:
        """Tests of ``project`` seen flaky, with how many times."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(flaky_table.c.node_id, flaky_table.c.times)
                                .where(flaky_table.c.project == project)).all()
        return {r.node_id: int(r.times) for r in rows}

    # test facts -------------------------------------------------------------------------

    def record_facts(self, project: str, fact: str, node_ids: Iterable[str],
                     details: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Note ``fact`` about each test (counted); ``details`` (by node id) replace the stored ones."""
        now = utcnow()
        details = details or {}
        for node in dict.fromkeys(node_ids):
            nh = _h(node)
            detail = dict(details[node]) if node in details else None
            if self._try_insert(facts_table, project=project, fact=fact, node_hash=nh, node_id=node, times=1,
                                detail=detail, updated=now):
                continue
            values: dict[str, Any] = {"times": facts_table.c.times + 1, "updated": now}
            if detail is not None:
                values["detail"] = detail
            with self.engine.begin() as conn:
                conn.execute(update(facts_table).where(facts_table.c.project == project)
                             .where(facts_table.c.fact == fact).where(facts_table.c.node_hash == nh).values(**values))

    def facts(self, project: str, fact: str) -> dict[str, int]:
        """Tests of ``project`` with ``fact`` (``order-dependent``, ``whole-run-failure``), with counts."""
        return {n: int(d["times"]) for n, d in self.fact_details(project, fact).items()}

    def fact_details(self, project: str, fact: str) -> dict[str, dict[str, Any]]:
        """``{node id: {"times": n, **detail}}`` for the tests of ``project`` with ``fact``."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(facts_table.c.node_id, facts_table.c.times, facts_table.c.detail)
                                .where(facts_table.c.project == project).where(facts_table.c.fact == fact)).all()
        return {r.node_id: {**(dict(r.detail) if isinstance(r.detail, dict) else {}), "times": int(r.times)}
                for r in rows}

    # swarm reports ----------------------------------------------------------------------

    def put_report(self, run_id: str, kind: str, project: str, content: str, payload: Mapping[str, Any]) -> None:
        row = {"kind": kind, "project": project, "content_hash": content, "payload": dict(payload), "created": utcnow()}
        if self._try_insert(reports_table, run_id=run_id, **row):
            return
        with self.engine.begin() as conn:
            conn.execute(update(reports_table).where(reports_table.c.run_id == run_id).values(**row))

    def get_report(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(reports_table.c.payload).where(reports_table.c.run_id == run_id)).first()
        return dict(row[0]) if row is not None else None

    # overview ---------------------------------------------------------------------------

    def knowledge(self, project: str, content: str | None = None) -> dict[str, Any]:
        """What the hive knows before a run: durations, flaky tests, results of this content."""
        durations = self.durations(project)
        out: dict[str, Any] = {"project": project, "durations_known": len(durations),
                               "recorded_seconds": round(sum(durations.values()), 3),
                               "flaky_known": len(self.flaky(project)),
                               "order_dependent_known": len(self.facts(project, "order-dependent"))}
        if content is not None:
            out["content_hash"] = content
            out["results_for_content"] = len(self.results_for(content))
        return out

    def stats(self) -> HiveStats:
        with self.engine.connect() as conn:
            n_results, hits = conn.execute(select(func.count(), func.coalesce(func.sum(results_table.c.hits), 0))
                                           .select_from(results_table)).one()
            n_dur = conn.execute(select(func.count()).select_from(durations_table)).scalar_one()
            n_flaky = conn.execute(select(func.count()).select_from(flaky_table)).scalar_one()
            n_rep = conn.execute(select(func.count()).select_from(reports_table)).scalar_one()
        return HiveStats(results=int(n_results), hits=int(hits), durations=int(n_dur), flaky=int(n_flaky),
                         reports=int(n_rep))


_hives: dict[str, Hive] = {}
_hives_lock = threading.Lock()


def open_hive(url_or_path: str | Path) -> Hive:
    """The hive of a registry database (a path for SQLite, or a SQLAlchemy URL); one per
    database in this process."""
    ident = str(url_or_path) if "://" in str(url_or_path) else str(Path(url_or_path).expanduser().resolve())
    with _hives_lock:
        hive = _hives.get(ident)
        if hive is None:
            hive = Hive(make_engine(url_or_path))
            _hives[ident] = hive
        return hive
