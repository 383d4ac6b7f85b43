"""The hive's tables (``hive_*``, in the registry database, their own SQLAlchemy metadata,
created idempotently) and the store every part of the hive builds on."""

from __future__ import annotations

import time
from typing import Any

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
    insert,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from noa_core.storage.models import NAMING_CONVENTION, UTCDateTime, utcnow

__all__ = [
    "HiveStore",
    "claims_table",
    "durations_table",
    "facts_table",
    "failures_table",
    "flaky_table",
    "metadata",
    "reports_table",
    "results_table",
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


class HiveStore:
    """One SQLAlchemy engine holding the ``hive_*`` tables (thread- and process-safe)."""

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

    def _try_insert(self, table: Table, **values: Any) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(table).values(**values))
            return True
        except IntegrityError:
            return False
