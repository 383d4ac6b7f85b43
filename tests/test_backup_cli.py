"""`noa workspace backup|restore|verify|forget|snapshots` as whole processes, and the async trigger.

The commands are run through ``python -m noa_core.cli.backup_app`` (the same Typer commands that
``noa workspace`` registers), so they do not depend on the other command groups.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backup_helpers import REPO_ROOT, assert_same_tree, build_tree
from noa_core.backup.repository import pack_key
from noa_core.config import NoaSettings


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tree(tmp_path_factory.mktemp("cli-src") / "tree")


def noa(*args: str, home: Path, env: dict | None = None, importtime: bool = False,
        process: bool = False) -> subprocess.CompletedProcess:
    """Run the commands in-process (Typer's CliRunner, stdout and stderr apart), or as a whole process."""
    if not (process or importtime):
        from typer.testing import CliRunner

        from noa_core.cli.backup_app import app

        run_env = {"NOA_HOME": str(home), "NOA_BACKUP_REPO": None, "NOA_BACKUP_PASSWORD": None, **(env or {})}
        res = CliRunner().invoke(app, list(args), env=run_env)
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            raise res.exception
        return subprocess.CompletedProcess(list(args), res.exit_code, res.stdout, res.stderr)
    full_env = {**os.environ, "NOA_HOME": str(home), "PYTHONPATH": str(REPO_ROOT),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **(env or {})}
    full_env.pop("NOA_BACKUP_REPO", None)
    if not (env and "NOA_BACKUP_PASSWORD" in env):
        full_env.pop("NOA_BACKUP_PASSWORD", None)
    cmd = [sys.executable] + (["-X", "importtime"] if importtime else []) + ["-m", "noa_core.cli.backup_app", *args]
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)


def test_cli_backup_restore_verify_forget_with_cl_tree(tree: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"NOA_BACKUP_PASSWORD": "cli-pass"}
    first = noa("backup", str(tree), "--json", "--tag", "nightly", home=home, env=env, importtime=True)
    assert first.returncode == 0, first.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in first.stderr.splitlines() if line.startswith("import time")}
    assert not {m for m in imported if m == "prefect" or m.startswith("prefect.")}, "backup imported Prefect"
    doc = json.loads(first.stdout)
    assert doc["encrypted"] is True and doc["snapshot"]["tags"] == ["nightly"]
    assert doc["repository"] == f"local:{home.resolve() / 'backups' / 'repo'}"
    sid = doc["snapshot"]["id"]
    # contract 1: the CL tree head is in the snapshot, and the backup is a CL tree entry
    assert doc["cltree_checkpoint"]["status"] == "ok" and doc["snapshot"]["cltree"]["root"]
    from noa_core.cltree import change_entries

    entries = change_entries(NoaSettings(home=home), kind="backup")
    assert [e.subject for e in entries] == [sid]
    assert "cli-pass" not in json.dumps(entries[0].payload)

    second = noa("backup", str(tree), "--json", home=home, env=env)
    assert json.loads(second.stdout)["files_reused"] == doc["files"]

    snaps = noa("snapshots", "--json", home=home, env=env)
    assert [s["id"] for s in json.loads(snaps.stdout)][0] == sid

    out = tmp_path / "restored"
    rest = noa("restore", sid[:10], str(out), "--json", home=home, env=env)
    assert rest.returncode == 0, rest.stderr
    assert_same_tree(tree, out)

    ok = noa("verify", home=home, env=env)
    assert ok.returncode == 0 and "no errors" in ok.stdout

    # corrupt one blob: verify exits 1 and names it
    from noa_core.backup.local import LocalBackend
    from noa_core.backup.repository import Repository

    repo = Repository.open(LocalBackend(home / "backups" / "repo"), "cli-pass")
    index = repo.load_index()
    snap = repo.find_snapshot(sid)
    blob = next(e for e in repo.load_tree(index, snap) if e[0] == "extra/secret.txt")[5][0]
    ref = index.blobs[blob]
    p = home / "backups" / "repo" / pack_key(ref.pack)
    data = bytearray(p.read_bytes())
    data[ref.offset + 20] ^= 0x55
    p.write_bytes(bytes(data))
    bad = noa("verify", "--json", home=home, env=env, process=True)
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert [c["blob"] for c in report["corrupted"]] == [blob]
    text = noa("verify", home=home, env=env)
    assert f"corrupted blob {blob}" in text.stdout

    dry = noa("forget", "--keep-last", "1", "--prune", "--dry-run", "--json", home=home, env=env)
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert [r["id"] for r in plan["remove"]] == [sid] and plan["prune"]["dry_run"] is True
    assert len(json.loads(noa("snapshots", "--json", home=home, env=env).stdout)) == 2


def test_cli_bad_input_exits_2_with_one_line(tree: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert noa("backup", str(tree), home=home).returncode == 0       # local, no password: unencrypted
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "f").write_text("x")
    for args in (["restore", "latest", str(busy)], ["forget"], ["backup", str(tmp_path / "nope")],
                 ["restore", "deadbeef", str(tmp_path / "x")], ["snapshots", "--repo", str(tmp_path / "norepo")]):
        proc = noa(*args, home=home)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("noa: error: "), (args, proc.stderr)
    wrong = noa("snapshots", home=home, env={"NOA_BACKUP_PASSWORD": "x"})
    assert wrong.returncode == 0     # an unencrypted repository ignores a password


def test_schedule_backup_runs_detached_and_coalesces_bursts(tree: Path, tmp_path: Path) -> None:
    from noa_core.backup.local import LocalBackend
    from noa_core.backup.repository import Repository
    from noa_core.backup.trigger import schedule_backup, wait_idle

    settings = NoaSettings(home=tmp_path / "home")
    settings.layout().ensure()
    os.environ.pop("NOA_BACKUP_PASSWORD", None)
    results = [schedule_backup(settings, source=tree, debounce_s=0.5) for _ in range(5)]
    assert results[0].status == "started" and results[0].pid
    assert {r.status for r in results[1:]} == {"coalesced"}
    last = wait_idle(settings, timeout_s=120)
    assert last is not None and last["status"] == "ok", last
    snaps = Repository.open(LocalBackend(settings.layout().backups / "repo"), None).snapshots()
    assert 1 <= len(snaps) <= 2 and snaps[-1].id == last["snapshot"]
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and Path(f"/proc/{results[0].pid}").exists():
        if "Z" in Path(f"/proc/{results[0].pid}/stat").read_text().split(")")[-1].split()[0]:
            break    # exited; waiting for init (not us) to reap it
        time.sleep(0.1)
    alive = Path(f"/proc/{results[0].pid}/stat")
    assert not alive.exists() or alive.read_text().split(")")[-1].split()[0] == "Z", "the runner did not exit"


def test_backing_up_noa_home_takes_a_consistent_registry_copy(tmp_path: Path) -> None:
    import sqlite3

    home = tmp_path / "home"
    settings = NoaSettings(home=home)
    layout = settings.layout().ensure()
    (layout.drops / "d1").mkdir()
    (layout.drops / "d1" / "a.py").write_text("print('a')\n")
    (layout.backups / "unrelated").write_text("never backed up\n")
    con = sqlite3.connect(layout.registry_db)
    con.execute("pragma journal_mode=wal")
    con.execute("create table t (x)")
    con.execute("insert into t values (42)")
    con.commit()                        # left open: the WAL still holds the data
    try:
        done = noa("backup", "--json", home=home)
        assert done.returncode == 0, done.stderr
        out = tmp_path / "out"
        assert noa("restore", "latest", str(out), home=home).returncode == 0
    finally:
        con.close()
    assert (out / "drops" / "d1" / "a.py").read_text() == "print('a')\n"
    assert not (out / "backups").exists() and not (out / "tmp").exists()
    copy = sqlite3.connect(out / "registry.db.backup")
    assert copy.execute("select x from t").fetchall() == [(42,)]
    copy.close()
