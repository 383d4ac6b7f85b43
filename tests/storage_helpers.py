"""PostgreSQL helpers for the CL tree, workspace and migration tests: a fresh schema per test."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

PG_URL = os.environ.get("NOA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_schema_url() -> Iterator[str]:
    """Yield a URL whose connections use a new, empty schema (search_path); drop it afterwards.

    Skips the test when PostgreSQL is not reachable (the message says where it looked).
    """
    pytest.importorskip("psycopg", reason="psycopg (v3) is not installed")
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_URL + ("&" if "?" in PG_URL else "?") + "connect_timeout=3")
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL is unreachable at {PG_URL}: {type(exc).__name__}")
    schema = f"noa_t_{secrets.token_hex(5)}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
