"""``noa workspace scan/status`` as a user runs them, the lean entry point, and watch mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from noa_core.config import NoaSettings
from noa_core.workspace.watch import watch_tree

ROOT = Path(__file__).resolve().parents[1]
CLI = ("from noa_core.cli.main import app; from noa_core.cli.workspace_cmd import register;"
       "import sys; register(app); app(sys.argv[1:], prog_name='noa')")


def noa(*args: str, importtime: bool = False, process: bool = False):
    """``noa workspace ...``: a whole process when asked (import checks), else in process via Click's runner."""
    if process or importtime:
        cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", CLI, *args]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    import typer
    from typer.testing import CliRunner

    from noa_core.cli.workspace_cmd import register

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, list(args))
    result.returncode = result.exit_code
    return result


def make_tree(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("x = 1\n" * 100)
    (root / "pkg" / "b.py").write_text("x = 1\n" * 100)  # a duplicate of a.py
    (root / "README").write_text("hello\n")
    past = time.time() - 5
    for p in (root / "pkg" / "a.py", root / "pkg" / "b.py", root / "README"):
        os.utime(p, (past, past))
    return root


def imported(stderr: str) -> set[str]:
    return {line.split("|")[-1].strip().split(".")[0] for line in stderr.splitlines() if line.startswith("import time")}


def test_scan_json_status_and_history(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    home = str(tmp_path / "home")
    first = noa("workspace", "scan", str(tree), "--home", home, "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert (doc["added"], doc["duplicate_files"], doc["saved_bytes"] > 0) == (3, 1, True)

    again = noa("workspace", "scan", str(tree), "--home", home, "--json", importtime=True)
    assert json.loads(again.stdout)["unchanged"] == 3
    assert not {"prefect", "sqlalchemy", "alembic"} & imported(again.stderr)  # an unchanged rescan stays light

    lean = subprocess.run([sys.executable, "-X", "importtime", "-m", "noa_core.workspace", "scan", str(tree),
                           "--home", home, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert lean.returncode == 0 and json.loads(lean.stdout)["unchanged"] == 3
    assert not {"prefect", "sqlalchemy", "pydantic", "typer"} & imported(lean.stderr)

    human = noa("workspace", "scan", str(tree), "--home", home)
    assert "3 unchanged (not read)" in human.stdout and "1 duplicate files" in human.stdout

    status = noa("workspace", "status", "--home", home, "--json")
    [root] = json.loads(status.stdout)
    assert root["root"] == str(tree.resolve()) and root["files"] == 3 and root["duplicate_files"] == 1
    history = noa("workspace", "status", "--home", home, "--path", str(tree / "pkg" / "a.py"))
    assert history.returncode == 0 and history.stdout.startswith("v1\tadded")
    assert noa("workspace", "scan", str(tmp_path / "nope"), "--home", home).returncode == 2


def test_watch_mode_applies_the_scan_to_each_change(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    settings = NoaSettings(home=tmp_path / "home")
    from noa_core.workspace.scan import scan

    scan(settings, tree)
    reports = []
    stop = threading.Event()
    got = threading.Event()

    def on_report(rep) -> None:
        reports.append(rep)
        if any(r.added for r in reports) and any(r.deleted for r in reports):
            got.set()

    thread = threading.Thread(target=watch_tree, args=(settings, tree),
                              kwargs={"on_report": on_report, "stop": stop, "debounce_ms": 50,
                                      "rust_timeout_ms": 200}, daemon=True)
    thread.start()
    try:
        time.sleep(0.8)  # let the watcher start
        (tree / "pkg" / "c.py").write_text("x = 1\n" * 100)  # a new duplicate
        (tree / "README").unlink()
        assert got.wait(20), [r.as_dict() for r in reports]
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert sum(r.added for r in reports) == 1 and sum(r.deleted for r in reports) == 1
    assert reports[-1].files == 3 and reports[-1].duplicate_files == 2
    assert all(r.hashed_files <= 1 for r in reports)  # only the changed paths were looked at
