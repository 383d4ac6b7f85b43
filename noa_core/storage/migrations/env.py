"""Alembic environment of the registry database.

Run programmatically by :func:`noa_core.storage.migrate.upgrade` with an open connection
in ``config.attributes["connection"]`` (the caller holds the migration lock and commits);
``alembic -c noa_core/storage/migrations/alembic.ini ...`` works too, with the URL from
``NOA_DATABASE_URL`` or ``-x url=...``.

Only the registry's own tables (``noa_core.storage.models``) are managed here: other
tables in the same database (the swarm hive's ``hive_*``) are left alone.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from noa_core.storage.models import Base

config = context.config
target_metadata = Base.metadata


def include_object(obj, name, type_, reflected, compare_to):
    if type_ == "table":
        return name in target_metadata.tables
    return True


def _configure(connection: Connection) -> None:
    schema = config.attributes.get("version_table_schema")
    context.configure(connection=connection, target_metadata=target_metadata, include_object=include_object,
                      version_table_schema=schema, render_as_batch=connection.dialect.name == "sqlite",
                      compare_type=True)


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from noa_core.storage.database import make_engine

    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("NOA_DATABASE_URL") \
        or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set NOA_DATABASE_URL or pass -x url=...")
    engine = make_engine(url)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
        conn.commit()
    engine.dispose()


def run_migrations_offline() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("NOA_DATABASE_URL") \
        or config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True, include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
