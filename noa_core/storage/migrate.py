"""Bringing the registry database up to date with Alembic, programmatically.

:func:`upgrade` is what "opening the database" runs. Fast path: one query of
``alembic_version``; when it already says :data:`HEAD`, nothing else happens (Alembic
is not even imported). Otherwise, under a lock (``BEGIN IMMEDIATE`` on SQLite, a
transaction-scoped advisory lock on PostgreSQL, so concurrent openers take turns), a
database made by the old ``create_all`` (registry tables present, no version table) is
stamped at the baseline first, then ``alembic upgrade head`` runs on the same
connection and everything commits at once.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError, OperationalError

from noa_core.storage.errors import DatabaseError

HEAD = "0005"          # the newest revision in migrations/versions (a test keeps them equal)
BASELINE = "0001"
BASELINE_TABLES = frozenset({"projects", "drops", "files", "validations"})
VERSION_TABLE = "alembic_version"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
PG_LOCK_KEY = 0x6E6F616D6967  # "noamig"


def _schema(conn: Connection) -> str | None:
    """The schema the connection's unqualified tables go to, when a translate map names one."""
    mapping = conn.get_execution_options().get("schema_translate_map") or {}
    return mapping.get(None)


def current_revision(conn: Connection) -> str | None:
    schema = _schema(conn)
    if not inspect(conn).has_table(VERSION_TABLE, schema=schema):
        return None
    table = f'"{schema}".{VERSION_TABLE}' if schema else VERSION_TABLE
    row = conn.execute(text(f"SELECT version_num FROM {table}")).first()
    return row[0] if row else None


def _fast_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return current_revision(conn)
    except (OperationalError, DBAPIError) as exc:
        raise DatabaseError(f"cannot open the registry database: {exc.orig or exc}") from None


def _config(conn: Connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    cfg.attributes["version_table_schema"] = _schema(conn)
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Migrate to ``revision`` (default head); returns the revision before (None: a new database)."""
    if revision == "head" and _fast_revision(engine) == HEAD:
        return HEAD
    from alembic import command

    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
            before = current_revision(conn)  # again, under the lock: another process may have done it
            cfg = _config(conn)
            if before is None:
                existing = set(inspect(conn).get_table_names(schema=_schema(conn)))
                if BASELINE_TABLES <= existing:
                    command.stamp(cfg, BASELINE)  # made by the old create_all: the baseline is there
            command.upgrade(cfg, revision)
            conn.commit()
            return before
    except (OperationalError, DBAPIError) as exc:
        raise DatabaseError(f"cannot migrate the registry database: {exc.orig or exc}") from None


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate down to ``revision`` (``"base"`` removes every managed table)."""
    from alembic import command

    with engine.connect() as conn:
        command.downgrade(_config(conn), revision)
        conn.commit()


def script_head() -> str:
    """The head revision of the scripts on disk (for checks and tests)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head
