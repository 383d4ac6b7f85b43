"""`noa drop pypi:NAME==VERSION` on real sdists: NOA's test counts equal plain pytest's.

For each sdist the flow fetches it from PyPI, analyses it and runs its tests isolated;
the test then runs pytest by hand (not isolated) on a copy of the same extracted tree
and compares pytest's own summary counts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flows.code_drop import code_drop
from flows.runtime import run_in_process
from noa_core.validation import parse_pytest_summary

pytestmark = [pytest.mark.slow, pytest.mark.network]

SDISTS = [("cachetools", "8.0.2"), ("toolz", "1.2.0"), ("click", "8.5.1")]


def plain_pytest(tree: Path, work: Path) -> str:
    shutil.copytree(tree, work, symlinks=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(work.parent),
           "PYTHONDONTWRITEBYTECODE": "1"}
    if (work / "src").is_dir():
        env["PYTHONPATH"] = str(work / "src")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)
    return proc.stdout + proc.stderr


@pytest.mark.parametrize(("name", "version"), SDISTS, ids=[f"{n}-{v}" for n, v in SDISTS])
def test_drop_counts_equal_plain_pytest(name: str, version: str, prefect_api_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    report = run_in_process(code_drop, source=f"pypi:{name}=={version}", home=str(home), use_ai=False)
    assert report["project"] == name
    assert report["source_kind"] == "pypi"
    assert report["primary_language"] == "Python"
    assert report["licence"] is not None

    by_hand = parse_pytest_summary(plain_pytest(home / "drops" / report["drop_id"] / "src", tmp_path / "plain"))
    tests = report["tests"]
    assert (tests["passed"], tests["failed"], tests["errors"], tests["skipped"]) == \
        (by_hand.passed, by_hand.failed, by_hand.errors, by_hand.skipped), (tests, by_hand)
    assert tests["passed"] > 100
    assert tests["status"] == "passed"
