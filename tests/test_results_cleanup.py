"""`noa workspace cleanup` evicts stored flow results and cached analyzer results after N days.

Prefect keeps every persisted return value under NOA_HOME/prefect/storage and the analysis
cache under NOA_HOME/cache/analysis; neither shrinks by itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from noa_core.backup.cleanup import apply_cleanup, plan_cleanup
from noa_core.config import NoaSettings

REPO_ROOT = Path(__file__).resolve().parents[1]


def _file(path: Path, days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"result": 1}')
    then = time.time() - days * 86400
    os.utime(path, (then, then))
    return path


def test_old_results_are_listed_then_removed_and_recent_ones_kept(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = NoaSettings(home=home)
    old_flow = _file(home / "prefect" / "storage" / "a1b2c3", 45)
    new_flow = _file(home / "prefect" / "storage" / "d4e5f6", 2)
    old_cached = _file(home / "cache" / "analysis" / "noa-analyzer-licenses-1-abc", 60)
    plan = plan_cleanup(settings)
    listed = {Path(i.target).name: i.reason for i in plan.items if i.kind == "results"}
    assert listed == {"a1b2c3": "flow result written 45 days ago",
                      "noa-analyzer-licenses-1-abc": "cached analyzer result written 60 days ago"}
    assert plan.to_json()["counts"]["results"] == 2
    assert old_flow.exists() and old_cached.exists()  # planning removes nothing
    apply_cleanup(settings, plan)
    assert not old_flow.exists() and not old_cached.exists() and new_flow.exists()


def test_the_cli_takes_the_age_and_lists_before_it_removes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    kept = _file(home / "prefect" / "storage" / "recent", 3)
    env = {**os.environ, "NOA_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
    listed = subprocess.run([sys.executable, "-m", "noa_core.cli", "workspace", "cleanup", "--results-days", "1",
                             "--json"], env=env, capture_output=True, text=True, cwd=tmp_path, check=True)
    doc = json.loads(listed.stdout)
    assert doc["dry_run"] and [i["target"] for i in doc["items"] if i["kind"] == "results"] == [str(kept)]
    assert kept.exists()
    subprocess.run([sys.executable, "-m", "noa_core.cli", "workspace", "cleanup", "--results-days", "1", "--apply"],
                   env=env, capture_output=True, text=True, cwd=tmp_path, check=True)
    assert not kept.exists()
