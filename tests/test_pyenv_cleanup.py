"""`noa workspace cleanup` evicts project environments nobody used for days, and only those."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from noa_core.backup.cleanup import apply_cleanup, plan_cleanup
from noa_core.config import NoaSettings


def _aged(path: Path, days: float) -> Path:
    path.mkdir(parents=True)
    (path / "marker").write_text("x")
    then = time.time() - days * 86400
    os.utime(path, (then, then))
    return path


def test_unused_environments_are_listed_then_removed_and_fresh_ones_kept(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOA_PYENV_CACHE", raising=False)
    settings = NoaSettings(home=tmp_path / "home")
    envs = tmp_path / "home" / "pyenv" / "envs"
    old = _aged(envs / "aaaa", 30)
    fresh = _aged(envs / "bbbb", 1)
    crashed = _aged(envs / ".build-cccc-1234", 1)
    plan = plan_cleanup(settings)
    listed = {Path(i.target).name: i.reason for i in plan.items if i.kind == "pyenv"}
    assert listed == {"aaaa": "environment not used for 30 days", ".build-cccc-1234": "left half-built by a crashed build"}
    assert old.exists() and crashed.exists()  # planning removes nothing
    apply_cleanup(settings, plan)
    assert not old.exists() and not crashed.exists() and fresh.exists()
