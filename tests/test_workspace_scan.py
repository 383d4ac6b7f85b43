"""``noa workspace scan``: incremental like git's index, racy timestamps, versions, SOT archive,
the CL tree entry, SQLite and PostgreSQL, and a kill -9 in the middle of a scan."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_helpers import pg_schema_url

from noa_core.cltree import change_entries, verify
from noa_core.config import NoaSettings
from noa_core.storage.database import open_database
from noa_core.workspace.archive import archive_path, read_archived
from noa_core.workspace.index import drop_index
from noa_core.workspace.scan import index_dir, scan
from noa_core.workspace.status import archive_in_use, file_history, roots_status

ROOT = Path(__file__).resolve().parents[1]


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def age(root: Path, *only: str) -> None:
    """Make files (all, or ``only`` these) older than the next index write: none is racily clean."""
    past = time.time() - 5
    paths = [root / rel for rel in only] or [Path(d) / n for d, _dirs, files in os.walk(root) for n in files]
    for path in paths:
        os.utime(path, (past, past))


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NoaSettings]:
    if request.param == "sqlite":
        yield NoaSettings(home=tmp_path / "home")
    else:
        for url in pg_schema_url():
            yield NoaSettings(home=tmp_path / "home", database_url=url)


def db_rows(settings: NoaSettings, query: str) -> list[tuple]:
    from sqlalchemy import text

    engine = open_database(settings)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query))]
    finally:
        engine.dispose()


def test_unchanged_files_are_not_read_again_and_changes_are_versioned(settings: NoaSettings, tmp_path: Path) -> None:
    tree = write(tmp_path / "tree", {"a.py": "print(1)\n", "pkg/b.txt": "b" * 5000, "pkg/c.txt": "c"})
    age(tree)
    first = scan(settings, tree)
    assert (first.added, first.hashed_files, first.files) == (3, 3, 3)
    assert first.database_written and first.cltree_entry

    again = scan(settings, tree)
    assert (again.unchanged, again.hashed_files, again.added, again.modified) == (3, 0, 0, 0)
    assert not again.database_written and again.cltree_entry is None

    (tree / "a.py").write_text("print(2)\n")          # same size, new content
    (tree / "pkg/c.txt").unlink()
    write(tree, {"new.txt": "new"})
    age(tree, "a.py", "new.txt")
    third = scan(settings, tree)
    assert (third.added, third.modified, third.deleted, third.unchanged) == (1, 1, 1, 1)
    assert third.hashed_files == 2                      # only the two files whose stat changed
    write(tree, {"pkg/c.txt": "c again"})
    age(tree, "pkg/c.txt")
    scan(settings, tree)

    history = file_history(settings, tree / "pkg/c.txt")
    assert [(v["version"], v["change"]) for v in history["versions"]] == [(1, "added"), (2, "deleted"), (3, "added")]
    assert [v["change"] for v in file_history(settings, tree / "a.py")["versions"]] == ["added", "modified"]
    entries = change_entries(settings, kind="registry")
    assert len(entries) == 3 and entries[-1].payload["added"] == 1
    assert verify(settings).ok
    [status] = roots_status(settings)
    assert status["root"] == str(tree.resolve()) and status["files"] == 4


def test_racily_clean_files_are_hashed_again(tmp_path: Path) -> None:
    settings = NoaSettings(home=tmp_path / "home")
    tree = write(tmp_path / "tree", {"old.txt": "old", "fresh.txt": "v1"})
    age(tree)
    future = time.time() + 3600  # mtime not older than the index write: may change within the tick
    os.utime(tree / "fresh.txt", (future, future))
    scan(settings, tree)
    second = scan(settings, tree)
    assert (second.racy, second.hashed_files, second.modified) == (1, 1, 0)
    st = os.stat(tree / "fresh.txt")
    (tree / "fresh.txt").write_text("v2")               # same size; put the same mtime back
    os.utime(tree / "fresh.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    third = scan(settings, tree)
    assert third.modified == 1


def test_duplicates_are_archived_once_with_zstd_and_point_at_their_source(settings: NoaSettings,
                                                                            tmp_path: Path) -> None:
    body = ("def f():\n    return 42\n" * 400).encode()
    tree = write(tmp_path / "tree", {"a/mod.py": body, "b/mod.py": body, "c/copy.py": body, "u.txt": "unique"})
    age(tree)
    report = scan(settings, tree)
    assert (report.duplicate_files, report.duplicate_bytes, report.archived_blobs) == (2, 2 * len(body), 1)
    assert 0 < report.archive_bytes < len(body) // 10
    assert report.saved_bytes == 2 * len(body) - report.archive_bytes
    rows = dict((p, s) for p, s in db_rows(settings, "SELECT path, source FROM ws_files"))
    source = str(tree.resolve() / "a/mod.py")
    assert rows == {"a/mod.py": None, "b/mod.py": source, "c/copy.py": source, "u.txt": None}
    from blake3 import blake3

    digest = blake3(body).hexdigest()
    assert archive_path(settings.layout().archive, digest).is_file()
    assert read_archived(settings.layout().archive, digest) == body
    assert len(list(settings.layout().archive.iterdir())) == 1  # stored once

    (tree / "a/mod.py").unlink()                       # the source goes: the oldest copy takes over
    age(tree)
    after = scan(settings, tree)
    rows = dict((p, s) for p, s in db_rows(settings, "SELECT path, source FROM ws_files"))
    assert rows == {"b/mod.py": None, "c/copy.py": str(tree.resolve() / "b/mod.py"), "u.txt": None}
    assert after.duplicate_files == 1
    assert archive_in_use(settings) == {digest}
    (tree / "c/copy.py").unlink()                      # no duplicate left: the archive blob is orphaned
    scan(settings, tree)
    assert archive_in_use(settings) == set()


def test_a_lost_index_is_rebuilt_from_the_registry(tmp_path: Path) -> None:
    settings = NoaSettings(home=tmp_path / "home")
    tree = write(tmp_path / "tree", {f"f{i}.txt": f"{i}" for i in range(20)})
    age(tree)
    scan(settings, tree)
    drop_index(index_dir(settings), str(tree.resolve()))
    again = scan(settings, tree)
    assert (again.added, again.modified, again.hashed_files, again.unchanged) == (0, 0, 0, 20)
    assert len(db_rows(settings, "SELECT * FROM ws_versions")) == 20


def test_symlinks_and_noa_home_inside_the_tree_are_not_registered(tmp_path: Path) -> None:
    tree = write(tmp_path / "tree", {"real.txt": "x", ".git/config": "[core]"})
    (tree / "link.txt").symlink_to(tree / "real.txt")
    settings = NoaSettings(home=tree / ".noa")
    report = scan(settings, tree)
    assert report.files == 1 and report.skipped == ("link.txt",)
    assert scan(settings, tree).hashed_files == 0       # its own registry and index are not "changes"


def test_bad_input(tmp_path: Path) -> None:
    from noa_core.errors import BadInput

    with pytest.raises(BadInput):
        scan(NoaSettings(home=tmp_path / "home"), tmp_path / "missing")


KILL_SCRIPT = """
import sys
from pathlib import Path
from noa_core.config import NoaSettings
from noa_core.workspace.scan import scan
scan(NoaSettings(home=Path(sys.argv[1])), Path(sys.argv[2]))
"""


@pytest.mark.slow
def test_kill_9_during_scan_leaves_a_sound_database_and_the_next_scan_completes(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    chunk = os.urandom(48 * 1024)
    for d in range(30):
        write(tree, {f"d{d}/f{i}.bin": chunk[i:] + bytes([d, i]) for i in range(50)})
        shutil.copytree(tree / f"d{d}", tree / f"copy{d}")  # duplicates: the archive is written too
    home = tmp_path / "home"
    killed_at = []
    for delay in (0.5, 0.9, 1.4):
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(home), str(tree)], cwd=ROOT)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_at.append(delay)
        proc.wait(timeout=60)
        db = home / "registry.db"
        if db.exists():
            with sqlite3.connect(db) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        write(tree, {f"d0/more{delay}.txt": str(delay)})
    assert killed_at, "the scan finished before any kill: make the tree bigger"
    settings = NoaSettings(home=home)
    final = scan(settings, tree)
    expected = sum(len(files) for _d, _s, files in os.walk(tree))
    assert final.files == expected
    again = scan(settings, tree)
    assert again.hashed_files == again.racy and again.added == 0
    assert db_rows(settings, "SELECT count(*) FROM ws_files")[0][0] == expected
    assert final.duplicate_files == 30 * 50
    assert verify(settings).ok
