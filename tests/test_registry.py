"""The registry on SQLite (embedded default) and on PostgreSQL (the real server on 127.0.0.1:5432)."""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from blake3 import blake3
from sqlalchemy import Engine, delete, func, select, text

from noa_core.storage import Registry, RegistryError, UnknownDrop, create_schema, make_drop_id, make_engine
from noa_core.storage.models import Drop, File
from workspace_helpers import write_tree

PG_URL = os.environ.get("NOA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_engine() -> Iterator[Engine]:
    pytest.importorskip("psycopg", reason="psycopg (v3) is not installed: pip install 'psycopg[binary]'")
    admin = make_engine(PG_URL + ("&" if "?" in PG_URL else "?") + "connect_timeout=3")
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "not here"
        admin.dispose()
        pytest.skip(f"PostgreSQL is unreachable at {PG_URL}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    schema = f"noa_test_{secrets.token_hex(4)}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = admin.execution_options(schema_translate_map={None: schema})
    try:
        yield engine
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = make_engine(tmp_path / "home" / "registry.db")
        yield eng
        eng.dispose()
    else:
        yield from _postgres_engine()


@pytest.fixture
def registry(engine: Engine) -> Registry:
    create_schema(engine)
    return Registry(engine)


def test_sqlite_engine_uses_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    eng = make_engine(tmp_path / "deep" / "registry.db")
    with eng.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert (conn.execute(text("PRAGMA busy_timeout")).scalar() or 0) >= 1000
    assert (tmp_path / "deep" / "registry.db").exists()
    assert make_engine(f"sqlite:///{tmp_path / 'other.db'}").dialect.name == "sqlite"
    assert make_engine(":memory:").dialect.name == "sqlite"


def test_create_schema_is_idempotent(registry: Registry) -> None:
    create_schema(registry.engine)
    create_schema(registry.engine)
    assert registry.list_projects() == []


def test_projects_match_by_root_commit_first_then_name(registry: Registry) -> None:
    first = registry.upsert_project("cachetools", ["aaa", "bbb"])
    assert first.root_commits == ("aaa", "bbb")
    assert registry.find_project(name="cachetools") == first
    assert registry.find_project(root_commits=["zzz", "bbb"]) == first
    assert registry.find_project(name="unknown") is None
    assert registry.find_project() is None
    # a fork under another name shares a root commit: same project, name kept, roots merged
    fork = registry.upsert_project("cachetools-fork", ["bbb", "ccc"])
    assert fork.id == first.id and fork.name == "cachetools" and fork.root_commits == ("aaa", "bbb", "ccc")
    # root commits win over a name match
    other = registry.upsert_project("toolz", ["ttt"])
    found = registry.find_project(name="toolz", root_commits=["aaa"])
    assert found is not None and found.id == first.id
    assert registry.upsert_project("toolz").id == other.id
    assert [p.name for p in registry.list_projects()] == ["cachetools", "toolz"]


def test_drop_lifecycle(registry: Registry) -> None:
    project = registry.upsert_project("cachetools")
    now = datetime(2026, 11, 25, 14, 41, 0, tzinfo=timezone.utc)
    drop = registry.new_drop("pypi:cachetools==8.0.2", "pypi", name="cachetools", project_id=project.id, now=now)
    assert re.fullmatch(r"20261125-144100-cachetools-[0-9a-f]{6}", drop.id)
    assert drop.status == "received" and drop.created == now and drop.created.tzinfo is not None
    assert registry.get_drop(drop.id) == drop

    done = registry.finish_drop(drop.id, status="landed", sandbox="B", commit="c0ffee", confidence_raw=0.7,
                                confidence=0.65, report_path=Path("/tmp/report.json"))
    assert (done.status, done.sandbox, done.commit, done.confidence_raw, done.confidence, done.report_path) == \
        ("landed", "B", "c0ffee", 0.7, 0.65, "/tmp/report.json")
    assert done.finished is not None and done.finished.tzinfo is not None
    again = registry.finish_drop(drop.id, status="validated")
    assert again.sandbox == "B" and again.commit == "c0ffee"  # left-out fields keep their values
    assert registry.finish_drop(drop.id, status="validated", commit=None).commit is None

    later = registry.new_drop("dir:/src/x", "dir", name="x y!", now=now + timedelta(seconds=5))
    assert "-x-y-" in later.id and later.project_id is None
    assert [d.id for d in registry.list_drops()] == [later.id, drop.id]
    assert [d.id for d in registry.list_drops(project_id=project.id)] == [drop.id]
    assert [d.id for d in registry.list_drops(limit=1)] == [later.id]

    with pytest.raises(UnknownDrop):
        registry.get_drop("nope")
    with pytest.raises(UnknownDrop):
        registry.finish_drop("nope", status="failed")
    with pytest.raises(ValueError):
        registry.finish_drop(drop.id, status="exploded")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        registry.new_drop("x", "ftp", name="x")  # type: ignore[arg-type]
    with pytest.raises(RegistryError):
        registry.new_drop("again", "dir", name="x", drop_id=drop.id)


def test_make_drop_id() -> None:
    when = datetime(2026, 11, 25, 15, 41, 0, tzinfo=timezone(timedelta(hours=1)))
    assert make_drop_id("CacheTools", now=when, suffix="1a2b3c") == "20261125-144100-cachetools-1a2b3c"
    assert make_drop_id("../../etc", now=when, suffix="000000") == "20261125-144100-etc-000000"
    assert make_drop_id("", now=when, suffix="000000") == "20261125-144100-drop-000000"


def test_register_files_hashes_walks_and_is_idempotent(registry: Registry, tmp_path: Path) -> None:
    files: dict[str, bytes | str] = {
        "README.md": "# demo\n", "src/demo/__init__.py": "x = 1\n", "empty.txt": b"",
        "big.bin": os.urandom(9 * 1024 * 1024), ".git/config": "[core]\n", "a/.git/HEAD": "x"}
    tree = write_tree(tmp_path / "drop", files)
    (tree / "link").symlink_to("README.md")
    os.mkfifo(tree / "fifo")
    bad_name = os.fsencode(tree) + b"/caf\xe9.txt"  # not UTF-8
    with open(bad_name, "wb") as fh:
        fh.write(b"latin-1 name\n")

    drop = registry.new_drop("dir:drop", "dir", name="demo")
    stats = registry.register_files(drop.id, tree)
    expected = {"README.md", "src/demo/__init__.py", "empty.txt", "big.bin", "caf\\xe9.txt"}
    assert stats.count == len(expected)
    assert stats.bytes == sum(len(v) for k, v in files.items() if ".git" not in k) + len(b"latin-1 name\n")
    assert set(stats.skipped) == {"link", "fifo"}
    rows = {path: (size, digest) for path, size, digest in registry.drop_files(drop.id)}
    assert set(rows) == expected
    big = files["big.bin"]
    assert isinstance(big, bytes) and rows["big.bin"] == (len(big), blake3(big).hexdigest())
    assert rows["README.md"][1] == blake3(b"# demo\n").hexdigest()
    stored = registry.get_drop(drop.id)
    assert (stored.file_count, stored.total_bytes, stored.tree_hash) == (stats.count, stats.bytes, stats.tree_hash)

    # registering again replaces the rows (Prefect task retries)
    assert registry.register_files(drop.id, tree) == stats
    assert len(registry.drop_files(drop.id)) == len(expected)

    # the tree hash is the analysis cache key: same content elsewhere -> same hash; any change -> new hash
    copy = write_tree(tmp_path / "copy", {k: v for k, v in files.items() if ".git" not in k})
    with open(os.fsencode(copy) + b"/caf\xe9.txt", "wb") as fh:
        fh.write(b"latin-1 name\n")
    second = registry.new_drop("dir:copy", "dir", name="demo")
    assert registry.register_files(second.id, copy).tree_hash == stats.tree_hash
    assert {d.id for d in registry.drops_with_tree_hash(stats.tree_hash)} == {drop.id, second.id}
    (copy / "README.md").write_text("# changed\n")
    assert registry.register_files(second.id, copy).tree_hash != stats.tree_hash
    (copy / "README.md").write_text("# demo\n")
    (copy / "README.md").rename(copy / "README.txt")
    assert registry.register_files(second.id, copy).tree_hash != stats.tree_hash


def test_files_and_validations_go_with_their_drop(registry: Registry, tmp_path: Path) -> None:
    drop = registry.new_drop("dir:x", "dir", name="x")
    registry.register_files(drop.id, write_tree(tmp_path / "x", {"a": "1", "b": "2"}))
    registry.record_validation(drop.id, 0.8, True, {"passed": 10})
    with registry.engine.begin() as conn:
        conn.execute(delete(Drop).where(Drop.id == drop.id))
        assert conn.execute(select(func.count()).select_from(File)).scalar() == 0
    assert registry.validation_history() == []


def test_validation_feedback_history(registry: Registry) -> None:
    drop = registry.new_drop("dir:x", "dir", name="x")
    first = registry.record_validation(drop.id, 0.9, True, {"passed": 476, "failed": 0})
    assert first.counts == {"passed": 476, "failed": 0} and first.created.tzinfo is not None
    registry.record_validation(drop.id, 0.3, False, {"passed": 1, "failed": 9})
    registry.record_validation(drop.id, 0.6, True)
    assert registry.validation_history() == [(0.9, True), (0.3, False), (0.6, True)]
    assert registry.validation_history(limit=2) == [(0.3, False), (0.6, True)]
    with pytest.raises(UnknownDrop):
        registry.record_validation("missing", 0.5, True)
    with pytest.raises(ValueError):
        registry.record_validation(drop.id, 1.5, True)


def test_register_files_timing_on_a_real_tree(registry: Registry) -> None:
    """A real source tree (the installed SQLAlchemy package); prints the time, asserts none."""
    import sqlalchemy

    tree = Path(sqlalchemy.__file__).parent
    drop = registry.new_drop(f"dir:{tree}", "dir", name="sqlalchemy")
    started = time.perf_counter()
    stats = registry.register_files(drop.id, tree)
    elapsed = time.perf_counter() - started
    print(f"\nregister_files({tree.name}) on {registry.engine.dialect.name}: {stats.count} files, "
          f"{stats.bytes / 1e6:.1f} MB in {elapsed:.3f} s", file=sys.stderr)
    assert stats.count > 100


def test_concurrent_writers_share_the_database(registry: Registry) -> None:
    import threading

    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(10):
                project = registry.upsert_project("shared", [f"root-{n}"])
                drop = registry.new_drop(f"dir:{n}/{i}", "dir", name="shared", project_id=project.id)
                registry.record_validation(drop.id, 0.5, i % 2 == 0, {"passed": i})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    projects = registry.list_projects()
    assert len(projects) == 1 and set(projects[0].root_commits) == {f"root-{n}" for n in range(4)}
    assert len(registry.list_drops()) == 40 and len(registry.validation_history()) == 40
