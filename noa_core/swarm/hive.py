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

The tables are in :mod:`~noa_core.swarm.hive_schema`, the keys in
:mod:`~noa_core.swarm.hive_keys`; :class:`Hive` joins the results and leases
(:mod:`~noa_core.swarm.hive_results`) and what is learnt about test suites
(:mod:`~noa_core.swarm.hive_knowledge`), and keeps the swarm reports.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from noa_core.storage.database import make_engine
from noa_core.storage.models import utcnow
from noa_core.swarm.hive_knowledge import SuiteKnowledge
from noa_core.swarm.hive_results import ResultStore
from noa_core.swarm.hive_schema import (
    durations_table,
    flaky_table,
    reports_table,
    results_table,
)

__all__ = ["Hive", "HiveStats", "open_hive"]


@dataclass(frozen=True)
class HiveStats:
    results: int
    hits: int
    durations: int
    flaky: int
    reports: int


class Hive(ResultStore, SuiteKnowledge):
    """The shared knowledge store over one SQLAlchemy engine (thread- and process-safe)."""

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
