"""`noa merge` and `noa sandbox list|reset` as a user runs them: subprocesses against the session's Prefect server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from result_schema_helpers import assert_matches_schema
from test_cli_drop import run_noa
from test_sandbox_merge import CALC, CORE, GREET, MANIFEST, STRINGS, Workspace, changed
from workspace_helpers import INSPECT_ENV


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("noa: error:")]


@pytest.fixture(scope="module")
def conflicted(prefect_api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A conflicts with B in calc/core.py; C changes greet cleanly."""
    ws = Workspace(tmp_path_factory.mktemp("merge-cli"))
    ws.land("A", "calc", changed(CALC, {"calc/core.py": CORE.replace("return x\n", "return x  # A\n")}))
    ws.land("B", "calc", changed(CALC, {"calc/core.py": CORE.replace("return x\n", "return x  # B\n")}))
    ws.land("C", "greet", changed(GREET, {"README.md": "greet\n"}))
    return ws


def noa(ws: Workspace, api: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_noa(list(args), ws.home, api, ws.tmp)


def test_bad_input_is_exit_2_with_one_line(conflicted: Workspace, prefect_api_url: str) -> None:
    before = conflicted.heads()
    for args, expected in ((["merge", "Z", "--json"], "unknown sandbox 'Z'"),
                           (["merge", "A", "D", "--json"], "D is the integration sandbox"),
                           (["sandbox", "reset", "D"], "cannot be reset"),
                           (["sandbox", "reset", "nope"], "unknown sandbox 'nope'")):
        proc = noa(conflicted, prefect_api_url, *args)
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert proc.stdout == ""
        (line,) = error_lines(proc.stderr)
        assert expected in line, line
    assert conflicted.heads() == before


def test_merge_holds_the_conflicting_drop_then_list_and_reset(conflicted: Workspace, prefect_api_url: str) -> None:
    ws, api = conflicted, prefect_api_url
    d0 = ws.repo.head("D")
    b0 = ws.repo.head("B")

    proc = noa(ws, api, "merge", "--json")
    assert proc.returncode == 1, proc.stderr[-3000:]  # not everything merged
    report = json.loads(proc.stdout)  # one JSON document, nothing else on stdout
    assert_matches_schema(report, "MergeReport")
    for key in ("requested", "conflicts", "merged", "integration_head_before", "integration_head_after",
                "validation", "culprit", "per_sandbox", "drops"):
        assert key in report, key
    assert report["outcome"] == "partially merged" and report["merged"] is True
    assert report["conflicts"][0]["sandboxes"] == ["A", "B"] and report["conflicts"][0]["kind"] == "content"
    assert [(d["sandbox"], d["project"]) for d in report["drops"]["merged"]] == [("A", "calc"), ("C", "greet")]
    assert [(d["sandbox"], d["project"]) for d in report["drops"]["held"]] == [("B", "calc")]
    assert report["culprit"] == ["B"] and report["validation"]["calc"]["status"] == "passed"
    assert report["per_sandbox"]["B"]["status"] == "manual resolution needed"
    assert ws.repo.head("D") == report["integration_head_after"] != d0

    listed = json.loads(noa(ws, api, "sandbox", "list", "--json").stdout)
    rows = {r["name"]: r for r in listed["sandboxes"]}
    assert rows["B"]["head"] == b0 and rows["B"]["drops"][0]["project"] == "calc"
    assert rows["B"]["last_merge"]["status"] == "manual resolution needed"
    assert rows["A"]["head"] == rows["D"]["head"] == ws.repo.head("D")
    assert set(rows["D"]["projects"]) == {"calc", "greet"}

    proc = noa(ws, api, "sandbox", "reset", "B", "--json")
    assert proc.returncode == 0, proc.stderr
    reset = json.loads(proc.stdout)
    assert reset["new_head"] == ws.repo.head("D") == ws.repo.head("B") and reset["drops_removed"] == 1

    proc = noa(ws, api, "merge")  # human output; nothing is ahead of D any more
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "nothing to merge" in proc.stdout


def test_failed_validation_is_exit_1(prefect_api_url: str, tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.land("B", "calc", changed(CALC, {"calc/core.py": CORE.replace("return x\n", "return x * 10\n")}))
    d0 = ws.repo.head("D")
    proc = run_noa(["merge", "--json"], ws.home, prefect_api_url, tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["outcome"] == "validation failed" and report["culprit"] == ["B"]
    assert ws.repo.head("D") == d0


def test_partial_merge_json_lists_merged_and_held_drops_and_exits_1(prefect_api_url: str, tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.land("A", "calc", changed(CALC, {"calc/core.py": CORE.replace("return x\n", "return x * 10\n")}))
    ws.land("A", "strings", STRINGS)
    d0 = ws.repo.head("D")
    proc = run_noa(["merge", "--json"], ws.home, prefect_api_url, tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["outcome"] == "partially merged" and report["merged"] is True
    assert ws.repo.head("D") == report["integration_head_after"] != d0
    assert [(d["sandbox"], d["drop_id"], d["project"]) for d in report["drops"]["merged"]] == [
        ("A", "drop-4-strings", "strings")]
    [held] = report["drops"]["held"]
    assert (held["sandbox"], held["drop_id"], held["project"]) == ("A", "drop-3-calc", "calc")
    assert held["reason"].startswith("its project's tests fail with it: calc failed")

    human = run_noa(["merge"], ws.home, prefect_api_url, tmp_path)  # only the held drop is left: refused again
    assert human.returncode == 1, human.stderr[-3000:]
    assert "validation failed" in human.stdout and "drop-3-calc" in human.stdout and "held" in human.stdout


SLOW_TEST = ("import os, time\n\n\ndef test_slow():\n    if os.path.exists('SLOW'):\n        time.sleep(60)\n"
             "    assert True\n")


@pytest.mark.slow
def test_killed_between_merge_and_validation_leaves_d_and_next_run_completes(prefect_api_url: str,
                                                                            tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    slow = {"noa.yaml": MANIFEST.format(name="slowpoke"), "SLOW": "1\n", "tests/test_slow.py": SLOW_TEST}
    ws.land("A", "slowpoke", slow)
    ws.land("C", "strings", STRINGS)
    before = ws.heads()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NOA_"))}
    env.update(PREFECT_API_URL=prefect_api_url, NOA_HOME=str(ws.home), PREFECT_LOGGING_LEVEL="WARNING",
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    proc = subprocess.Popen([sys.executable, "-m", "noa_core.cli", "merge", "--json"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    merge_tmp = ws.layout.tmp / "merge"
    deadline = time.monotonic() + 120
    try:
        # the integration commit exists and validation has started once a work copy appears
        while not any(p.name.startswith("slowpoke-") and not p.name.endswith(".log")
                      for p in merge_tmp.glob("*/*")):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "validation never started"
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert ws.heads() == before
    fsck = subprocess.run(["git", f"--git-dir={ws.layout.repo}", "fsck", "--strict", "--no-progress"],
                          env=INSPECT_ENV, capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr

    ws.land("A", "slowpoke", {k: v for k, v in slow.items() if k != "SLOW"})
    done = run_noa(["merge", "--json"], ws.home, prefect_api_url, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["merged"] is True and report["validation"]["slowpoke"]["status"] == "passed"
