"""What the hive learns about a project's test suite: durations per test file (a moving
average, ``hive_durations``), failures and flaky tests (``hive_failures``, ``hive_flaky``)
and facts about single tests (``hive_test_facts``: order-dependent, whole-run-failure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select, update

from noa_core.storage.models import utcnow
from noa_core.swarm.hive_keys import short_hash
from noa_core.swarm.hive_schema import (
    HiveStore,
    durations_table,
    facts_table,
    failures_table,
    flaky_table,
)

__all__ = ["DURATION_ALPHA", "SuiteKnowledge"]

DURATION_ALPHA = 0.5  # weight of the newest observation in the moving average


class SuiteKnowledge(HiveStore):
    """Durations, failures, flaky tests and test facts, per project."""

    # durations --------------------------------------------------------------------------

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
            ph = short_hash(path)
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
            self._try_insert(failures_table, project=project, content_hash=content, node_hash=short_hash(node),
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
            nh = short_hash(node)
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
            nh = short_hash(node)
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
