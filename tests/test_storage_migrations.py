"""Alembic migrations of the registry database, on SQLite and on PostgreSQL (a fresh schema per test)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect
from storage_helpers import pg_schema_url

from noa_core.storage import Registry
from noa_core.storage.database import make_engine, open_database
from noa_core.storage.migrate import (
    BASELINE_TABLES,
    HEAD,
    current_revision,
    downgrade,
    script_head,
    upgrade,
)
from noa_core.storage.models import Base

ROOT = Path(__file__).resolve().parents[1]
NEW_TABLES = {"cltree_entries", "ws_roots", "ws_files", "ws_versions", "ws_blobs"}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        yield from pg_schema_url()


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return current_revision(conn)


def test_head_constant_matches_the_scripts() -> None:
    assert script_head() == HEAD


def test_a_new_database_is_created_at_head(url: str) -> None:
    engine = open_database(url)
    try:
        assert revision(engine) == HEAD
        assert BASELINE_TABLES | NEW_TABLES <= tables(engine)
        assert upgrade(engine) == HEAD  # the fast path: nothing to do
    finally:
        engine.dispose()


def test_a_database_from_the_old_create_all_is_stamped_and_keeps_its_data(url: str) -> None:
    engine = make_engine(url)
    try:
        old = [Base.metadata.tables[name] for name in sorted(BASELINE_TABLES)]
        Base.metadata.create_all(engine, tables=old)  # what create_schema did before migrations
        Registry(engine).upsert_project("cachetools", ["abc"])
        assert revision(engine) is None
        engine.dispose()
        engine = open_database(url)
        assert revision(engine) == HEAD
        assert NEW_TABLES <= tables(engine)
        assert [p.name for p in Registry(engine).list_projects()] == ["cachetools"]
    finally:
        engine.dispose()


def test_models_and_migrations_agree(url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    # every module that puts a table on the shared Base (not only those this process imported)
    import noa_core.apps.models  # noqa: F401
    import noa_core.server.auth  # noqa: F401
    import noa_core.server.writes  # noqa: F401
    import noa_core.webhooks.deliveries  # noqa: F401

    engine = open_database(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={
                "include_object": lambda obj, name, type_, reflected, compare_to:
                    type_ != "table" or name in Base.metadata.tables})
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(url: str) -> None:
    engine = open_database(url)
    try:
        downgrade(engine, "0001")
        assert revision(engine) == "0001" and not (NEW_TABLES & tables(engine))
        downgrade(engine, "base")
        assert not (BASELINE_TABLES & tables(engine))
        assert upgrade(engine) is None
        assert revision(engine) == HEAD
    finally:
        engine.dispose()


def test_schema_translate_map_engines_migrate_into_their_schema() -> None:
    """The registry tests' PostgreSQL engines use a schema_translate_map: migrations follow it."""
    for url in pg_schema_url():
        schema = url.rsplit("%3D", 1)[1]
        admin = make_engine(url.split("?")[0])
        engine = admin.execution_options(schema_translate_map={None: schema})
        try:
            upgrade(engine)
            assert NEW_TABLES | BASELINE_TABLES | {"alembic_version"} <= set(
                inspect(admin).get_table_names(schema=schema))
            assert upgrade(engine) == HEAD
        finally:
            admin.dispose()


def test_concurrent_openers_of_a_new_database_take_turns(url: str) -> None:
    code = "import sys; from noa_core.storage.database import open_database; open_database(sys.argv[1]).dispose()"
    procs = [subprocess.Popen([sys.executable, "-c", code, url], cwd=ROOT, stderr=subprocess.PIPE)
             for _ in range(3)]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    engine = make_engine(url)
    try:
        assert revision(engine) == HEAD
    finally:
        engine.dispose()
