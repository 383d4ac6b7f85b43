"""Engines for the registry database: SQLite (embedded default) or any SQLAlchemy URL.

SQLite engines get WAL, foreign keys and a busy timeout on every new connection, so
several processes (CLI, Prefect workers, the server) can share ``registry.db``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from noa_core.storage.errors import DatabaseError
from noa_core.storage.migrate import upgrade

if TYPE_CHECKING:
    from noa_core.config import NoaSettings

SQLITE_BUSY_TIMEOUT_MS = 10_000


def _is_url(text: str) -> bool:
    return "://" in text or text.startswith("sqlite:")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def make_engine(url_or_path: str | Path, *, echo: bool = False) -> Engine:
    """An engine for a file path (SQLite), ``":memory:"``, or a SQLAlchemy URL.

    ``postgresql+psycopg://user@host:5432/db`` needs the ``psycopg`` (v3) package.
    """
    kwargs: dict[str, Any] = {"echo": echo}
    if isinstance(url_or_path, Path) or not _is_url(str(url_or_path)):
        text = str(url_or_path)
        if text == ":memory:":
            url: URL = URL.create("sqlite+pysqlite", database=":memory:")
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            path = Path(text).expanduser().resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            url = URL.create("sqlite+pysqlite", database=str(path))
    else:
        url = make_url(str(url_or_path))
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        elif url.get_backend_name() != "sqlite":
            kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except Exception as exc:  # missing driver, malformed URL
        raise DatabaseError(f"cannot create engine for {url.render_as_string(hide_password=True)}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
    return engine


def create_schema(engine: Engine) -> None:
    """Bring the registry tables up to date: ``alembic upgrade head`` (idempotent, cheap when current).

    A database made by the old ``create_all`` is stamped at the baseline revision first.
    """
    upgrade(engine)


def database_target(settings: "NoaSettings") -> str | Path:
    """Where the registry database of ``settings`` lives: ``NOA_DATABASE_URL`` or ``NOA_HOME/registry.db``."""
    return settings.database_url or settings.layout().registry_db


def open_database(target: "NoaSettings | str | Path", *, echo: bool = False) -> Engine:
    """An engine on the registry database with its schema brought up to date.

    ``target`` is a :class:`NoaSettings` or anything :func:`make_engine` takes. The
    caller disposes of the engine.
    """
    from noa_core.config import NoaSettings

    engine = make_engine(database_target(target) if isinstance(target, NoaSettings) else target, echo=echo)
    try:
        create_schema(engine)
    except Exception:
        engine.dispose()
        raise
    return engine
