"""The CL tree: an append-only hash-chained DAG in the registry database (SQLite and PostgreSQL),
Merkle checkpoints outside it, and verification that names what was tampered with."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from storage_helpers import pg_schema_url

from noa_core.cltree import (
    ChangeEntry,
    change_entries,
    checkpoint,
    export_jsonl,
    load_jsonl,
    record_change,
    verify,
)
from noa_core.cltree.entry import entry_id
from noa_core.cltree.merkle import mth
from noa_core.config import NoaSettings
from noa_core.errors import BadInput
from noa_core.storage.database import open_database

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NoaSettings]:
    if request.param == "sqlite":
        yield NoaSettings(home=tmp_path / "home")
    else:
        for url in pg_schema_url():
            yield NoaSettings(home=tmp_path / "home", database_url=url)


def sql(settings: NoaSettings, statement: str, **params: object) -> None:
    engine = open_database(settings)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), params)
    finally:
        engine.dispose()


def seed(settings: NoaSettings) -> list[ChangeEntry]:
    record_change(settings, "drop", "cachetools", {"drop_id": "d1", "files": 40})
    record_change(settings, "merge", "sandbox/D", {"from": ["A", "B"]})
    record_change(settings, "drop", "cachetools", {"drop_id": "d2", "files": 41})
    record_change(settings, "build", "cachetools", {"artifact": "x.whl"})
    record_change(settings, "release", "cachetools", {"version": "1.0"})
    return change_entries(settings)


def test_entries_form_a_dag_of_head_and_same_subject_parents(settings: NoaSettings) -> None:
    entries = seed(settings)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    first, merge, second, build, release = entries
    assert first.parents == ()
    assert merge.parents == (first.id,)                  # head only: a new subject
    assert second.parents == (merge.id, first.id)        # head + the subject's previous entry
    assert build.parents == (second.id,)                 # head is the subject's previous: listed once
    assert release.parents == (build.id,)
    for e in entries:  # content addressed: the id is the hash of the canonical fields
        assert e.id == entry_id(e.seq, e.kind, e.subject, e.payload, e.parents, e.created_at)
    assert [e.seq for e in change_entries(settings, kind="drop")] == [1, 3]
    assert [e.seq for e in change_entries(settings, subject="cachetools", limit=2)] == [4, 5]
    head = checkpoint(settings)
    assert head == {"size": 5, "root": mth([e.id for e in entries])}
    assert verify(settings).ok


def test_payload_secrets_are_redacted_and_bad_input_refused(tmp_path: Path) -> None:
    settings = NoaSettings(home=tmp_path / "home")
    entry = record_change(settings, "backup", "local", {"bucket": "b", "api_key": "abc", "nested": {"password": "p"}})
    assert entry.payload == {"bucket": "b", "api_key": "[redacted]", "nested": {"password": "[redacted]"}}
    with pytest.raises(BadInput):
        record_change(settings, "no-such-kind", "x", {})
    with pytest.raises(BadInput):
        record_change(settings, "drop", "", {})
    assert len(change_entries(settings)) == 1


def problems(settings: NoaSettings) -> list[str]:
    report = verify(settings)
    assert not report.ok
    return [p.line() for p in report.problems]


def test_verify_names_an_edited_entry(settings: NoaSettings) -> None:
    entries = seed(settings)
    sql(settings, "UPDATE cltree_entries SET payload = :p WHERE seq = 3", p='{"drop_id":"d2","files":4100}')
    lines = problems(settings)
    assert any(line.startswith(f"entry seq 3 ({entries[2].id[:12]}): edited") for line in lines)


def test_verify_names_a_removed_entry(settings: NoaSettings) -> None:
    seed(settings)
    sql(settings, "DELETE FROM cltree_entries WHERE seq = 2")
    assert any("entry seq 3" in line and "missing" in line for line in problems(settings))


def test_verify_names_reordered_entries(settings: NoaSettings) -> None:
    seed(settings)
    sql(settings, "UPDATE cltree_entries SET seq = 100 WHERE seq = 4")
    sql(settings, "UPDATE cltree_entries SET seq = 4 WHERE seq = 5")
    sql(settings, "UPDATE cltree_entries SET seq = 5 WHERE seq = 100")
    lines = problems(settings)
    assert any(line.startswith("entry seq 4") and "edited" in line for line in lines)
    assert any(line.startswith("entry seq 5") for line in lines)


def test_truncation_is_caught_by_the_checkpoint_outside_the_log(settings: NoaSettings) -> None:
    seed(settings)
    sql(settings, "DELETE FROM cltree_entries WHERE seq >= 4")  # the chain that is left is intact
    lines = problems(settings)
    assert any("truncated: the log has 3 entries" in line and "seq 4..5" in line for line in lines)


def test_a_rewritten_history_with_valid_hashes_disagrees_with_the_checkpoint(settings: NoaSettings) -> None:
    seed(settings)
    cp = settings.layout().cltree / "checkpoints.jsonl"
    kept = cp.read_text().splitlines()[-1]
    # rebuild the whole log from scratch with a changed first entry: every hash and link is valid
    sql(settings, "DELETE FROM cltree_entries")
    cp.unlink()
    record_change(settings, "drop", "cachetools", {"drop_id": "d1", "files": 666})
    for _ in range(4):
        record_change(settings, "alert", "x", {})
    cp.write_text(kept + "\n")  # the attacker cannot forge the checkpoint the backup kept
    lines = problems(settings)
    assert any("history rewritten: the root of the first 5 entries" in line for line in lines)


def test_every_tree_head_from_the_stored_frontier_equals_a_full_recomputation(settings: NoaSettings) -> None:
    for i in range(37):  # 37 = 100101b: three perfect subtrees in the final frontier
        record_change(settings, "stage", f"s{i % 4}", {"n": i})
    ids = [e.id for e in change_entries(settings)]
    lines = (settings.layout().cltree / "checkpoints.jsonl").read_text().splitlines()
    heads = [json.loads(line) for line in lines]
    assert [h["size"] for h in heads] == list(range(1, 38))
    assert all(h["root"] == mth(ids[:h["size"]]) for h in heads)  # the RFC 6962 definition, recursively


def test_a_log_without_a_stored_frontier_gets_one_on_the_next_append(settings: NoaSettings) -> None:
    entries = seed(settings)
    sql(settings, "DELETE FROM cltree_frontier")  # as a database migrated from before revision 0005
    sixth = record_change(settings, "alert", "x", {})
    assert checkpoint(settings) == {"size": 6, "root": mth([e.id for e in entries] + [sixth.id])}
    assert verify(settings).ok


def test_verify_names_an_edited_frontier(settings: NoaSettings) -> None:
    seed(settings)
    sql(settings, "UPDATE cltree_frontier SET hashes = :h", h="00" * 64)  # size 5 = 101b: two hashes
    assert any("stored Merkle frontier does not match the entries" in line for line in problems(settings))


def test_concurrent_appends_from_processes_never_fork_or_reuse_a_seq(settings: NoaSettings, tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from noa_core.config import NoaSettings;"
            "from noa_core.cltree import record_change;"
            "s = NoaSettings(home=Path(sys.argv[1]), database_url=sys.argv[2] or None);"
            "[record_change(s, 'stage', f'w{sys.argv[3]}', {'n': i}) for i in range(12)]")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(settings.home), settings.database_url or "", str(w)],
                              cwd=ROOT) for w in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    entries = change_entries(settings)
    assert [e.seq for e in entries] == list(range(1, 37))
    assert all(e.parents[0] == prev.id for prev, e in zip(entries, entries[1:]))  # one chain, no fork
    report = verify(settings)
    assert report.ok, report.problems
    assert report.checkpoint is not None and report.checkpoint.size == 36


class Ran:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_noa(home: Path, *args: str, env: dict[str, str] | None = None) -> Ran:
    """``noa cltree ...`` in process (the real Typer commands; Click's runner captures the streams)."""
    import typer
    from typer.testing import CliRunner

    from noa_core.cli.cltree_cmd import register

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, [*args, "--home", str(home)], env=env)
    return Ran(result.exit_code, result.stdout, result.stderr)


def test_cli_log_verify_export_and_graph(tmp_path: Path) -> None:
    settings = NoaSettings(home=tmp_path / "home")
    entries = seed(settings)
    log = run_noa(settings.home, "cltree", "log", "--kind", "drop", "--json")
    assert log.returncode == 0, log.stderr
    assert [e["seq"] for e in json.loads(log.stdout)] == [1, 3]
    ok = run_noa(settings.home, "cltree", "verify")
    assert ok.returncode == 0 and ok.stdout.startswith("ok: 5 entries")
    export = tmp_path / "out" / "cl.jsonl"
    assert run_noa(settings.home, "cltree", "export", str(export)).returncode == 0
    assert load_jsonl(export) == entries
    assert export_jsonl(settings, tmp_path / "again.jsonl") == 5
    svg = tmp_path / "cl.svg"
    drawn = run_noa(settings.home, "cltree", "graph", "--out", str(svg))
    assert drawn.returncode == 0, drawn.stderr
    assert svg.read_text().startswith("<svg") and "#3 drop cachetools" in svg.read_text()
    bad = run_noa(settings.home, "cltree", "graph", "--out", str(tmp_path / "cl.gif"))
    assert bad.returncode == 2 and bad.stderr.startswith("noa: error:")

    sql(settings, "UPDATE cltree_entries SET subject = 'other' WHERE seq = 2")
    tampered = run_noa(settings.home, "cltree", "verify", "--json")
    assert tampered.returncode == 1
    doc = json.loads(tampered.stdout)
    assert doc["ok"] is False and doc["problems"][0]["seq"] == 2 and doc["problems"][0]["id"] == entries[1].id


def test_cli_graph_png_is_a_rendered_image(tmp_path: Path) -> None:
    import shutil

    settings = NoaSettings(home=tmp_path / "home")
    seed(settings)
    png = tmp_path / "cl.png"
    drawn = run_noa(settings.home, "cltree", "graph", "--out", str(png))
    if shutil.which("dot") is None and shutil.which("chromium") is None:
        assert drawn.returncode == 2 and "neither is installed" in drawn.stderr
        return
    assert drawn.returncode == 0, drawn.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_forger_who_rewrites_the_log_and_the_checkpoint_file_is_caught_by_the_backup(tmp_path: Path) -> None:
    """Someone with write access to NOA_HOME rebuilds a valid-looking log AND its checkpoint file;
    only the tree head stored in a backup snapshot (elsewhere, encrypted) still tells."""
    from noa_core.backup.service import parse_repo, run_backup, with_env_password

    settings = NoaSettings(home=tmp_path / "home")
    seed(settings)
    repo = tmp_path / "offsite"
    cfg = with_env_password(parse_repo(str(repo), settings), {"NOA_BACKUP_PASSWORD": "pw"})
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("data")
    assert run_backup(settings, cfg, src)["cltree_checkpoint"]["size"] == 5  # the backup itself is entry 6

    sql(settings, "DELETE FROM cltree_entries")
    sql(settings, "DELETE FROM cltree_frontier")
    (settings.layout().cltree / "checkpoints.jsonl").unlink()
    record_change(settings, "drop", "cachetools", {"drop_id": "d1", "files": 666})  # the forged history
    for i in range(6):
        record_change(settings, "alert", "x", {"n": i})
    assert verify(settings).ok  # every hash, link, frontier and checkpoint in NOA_HOME agrees

    env = {"NOA_BACKUP_PASSWORD": "pw"}
    assert run_noa(settings.home, "cltree", "verify").returncode == 0
    caught = run_noa(settings.home, "cltree", "verify", "--repo", str(repo), env=env)
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert "history rewritten: the root of the first 5 entries differs from the checkpoint of snapshot" in caught.stdout
    wrong = run_noa(settings.home, "cltree", "verify", "--repo", str(tmp_path / "none"), env=env)
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1
