"""The merge queue per drop: a failing drop stays in its sandbox, the other drops reach D.

Real workspaces (drops landed with ``WorkspaceRepo.land_drop``), real flow runs against
the session's Prefect server, real isolated test runs of each project.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_sandbox_merge import (
    CALC,
    CORE,
    MANIFEST,
    STRINGS,
    Workspace,
    artifacts_of,
    changed,
)
from workspace_helpers import git

from noa_core.sandbox.drop_queue import list_drops
from noa_core.sandbox.merge import JournalEntry, MergeJournal, read_verdict, recover

BROKEN = {
    "noa.yaml": MANIFEST.format(name="broken"),
    "broken.py": "def answer():\n    return 41\n",
    "tests/test_broken.py": "from broken import answer\n\n\ndef test_answer():\n    assert answer() == 42\n",
}


def test_failing_drop_stays_in_its_sandbox_while_a_clean_drop_of_the_same_sandbox_merges(tmp_path: Path,
                                                                                          prefect_api_url: str) -> None:
    ws = Workspace(tmp_path)
    d0 = ws.repo.head("D")
    ws.land("A", "broken", BROKEN)      # drop-3-broken: its own test fails
    ws.land("A", "strings", STRINGS)    # drop-4-strings: clean, landed after it in the same sandbox

    report = ws.merge()

    assert report["outcome"] == "partially merged" and report["merged"] is True, report["message"]
    new_d = ws.repo.head("D")
    assert new_d == report["integration_head_after"] != d0
    d_tree = ws.layout.sandboxes / "D" / "projects"
    assert (d_tree / "strings" / "strings_util.py").is_file() and not (d_tree / "broken").exists()
    assert [(d["sandbox"], d["drop_id"], d["project"]) for d in report["drops"]["merged"]] == [
        ("A", "drop-4-strings", "strings")]
    [held] = report["drops"]["held"]
    assert (held["sandbox"], held["drop_id"], held["project"]) == ("A", "drop-3-broken", "broken")
    assert "broken failed (1 failed" in held["reason"], held["reason"]
    assert report["bisection"] == []  # its own project fails: held without bisection
    assert report["validation"]["strings"]["status"] == "passed" and "broken" not in report["validation"]
    assert "Held in their sandbox: drop-3-broken" in report["message"]
    # D's commit says what it took and what it left
    message = git(ws.layout.repo, "log", "-1", "--format=%B", new_d)
    assert "Merged-Drop: drop-4-strings" in message and "Held-Drop: drop-3-broken (A)" in message
    # A now holds only the held drop, on top of the new D (worktree included)
    a_head = ws.repo.head("A")
    assert git(ws.layout.repo, "rev-parse", f"{a_head}^").strip() == new_d
    assert [d.drop_id for d in ws.repo.drops("A")] == ["drop-3-broken"]
    assert "Held-By: merge " in git(ws.layout.repo, "log", "-1", "--format=%B", a_head)
    assert (ws.layout.sandboxes / "A" / "projects" / "broken" / "broken.py").is_file()
    assert (ws.layout.sandboxes / "A" / "projects" / "strings" / "strings_util.py").is_file()
    verdict = read_verdict(ws.layout.reports, "A")
    assert verdict["status"] == "partially merged" and "drop-4-strings" in verdict["message"]
    assert "drop-3-broken (broken, sandbox A)" in verdict["message"]
    # the markdown report and the table artifact show both drops
    artifacts = artifacts_of(report["flow_run_id"])
    assert "| drop-3-broken | A | broken | held |" in artifacts["sandbox-merge"].data
    rows = json.loads(artifacts["sandbox-merge-drops"].data)
    assert [(r["drop"], r["result"]) for r in rows] == [("drop-4-strings", "merged"), ("drop-3-broken", "held")]

    # a second merge with nothing new: the held drop is refused again, nothing moves, nothing merges twice
    heads = ws.heads()
    again = ws.merge()
    assert again["outcome"] == "validation failed" and again["merged"] is False, again["message"]
    assert ws.heads() == heads
    assert again["drops"]["merged"] == [] and [d["drop_id"] for d in again["drops"]["held"]] == ["drop-3-broken"]
    assert again["per_sandbox"]["A"]["status"] == "failed"

    # the fixed drop lands in A and merges; A starts clean on D
    ws.land("A", "broken", {**BROKEN, "broken.py": "def answer():\n    return 42\n"})
    fixed = ws.merge()
    assert fixed["outcome"] == "merged", fixed["message"]
    assert [(d["drop_id"], d["superseded"]) for d in fixed["drops"]["merged"]] == [("drop-5-broken", ["drop-3-broken"])]
    assert ws.repo.head("A") == ws.repo.head("D") and ws.repo.drops("A") == []


def test_interaction_holds_the_pair_and_merges_the_innocent_drops(tmp_path: Path, prefect_api_url: str) -> None:
    ws = Workspace(tmp_path)
    # A changes scale() and updates its own test; C adds a test written against the old scale():
    # each passes on D alone, together calc fails. B's calc drop only adds a README.
    ws.land("A", "calc", changed(CALC, {"calc/core.py": CORE.replace("return x\n", "return 2 * x\n"),
                                        "tests/test_core.py": CALC["tests/test_core.py"].replace("== 2", "== 4")}))
    ws.land("A", "strings", STRINGS)
    ws.land("B", "calc", changed(CALC, {"README.md": "calc\n"}))
    ws.land("C", "calc", changed(CALC, {"tests/test_extra.py": "from calc.core import scale\n\n\n"
                                                               "def test_scale_three():\n    assert scale(3) == 3\n"}))
    before = ws.heads()

    report = ws.merge()

    assert report["outcome"] == "partially merged", report["message"]
    assert sorted(d["drop_id"] for d in report["drops"]["held"]) == ["drop-3-calc", "drop-6-calc"]
    assert all("fail together" in d["reason"] for d in report["drops"]["held"]), report["drops"]["held"]
    assert sorted(d["drop_id"] for d in report["drops"]["merged"]) == ["drop-4-strings", "drop-5-calc"]
    assert report["culprit"] == ["A", "C"]
    probes = {tuple(p["drops"]): p["failed"] for p in report["bisection"]}
    assert probes[("drop-3-calc",)] is False and probes[("drop-6-calc",)] is False
    assert probes[("drop-3-calc", "drop-6-calc")] is True and probes[()] is False
    assert all(p["project"] == "calc" for p in report["bisection"])
    # D got B's README and A's strings, not A's scale() change nor C's extra test
    calc = ws.layout.sandboxes / "D" / "projects" / "calc"
    assert (calc / "README.md").read_text() == "calc\n" and "2 * x" not in (calc / "calc" / "core.py").read_text()
    assert not (calc / "tests" / "test_extra.py").exists()
    assert (ws.layout.sandboxes / "D" / "projects" / "strings").is_dir()
    assert report["validation"]["calc"]["status"] == "passed"
    # B merged whole and starts on the new D; A keeps only its calc drop, rebuilt on the new D
    # (so it carries B's README now); C, all held, is untouched
    new_d = ws.repo.head("D")
    assert ws.repo.head("B") == new_d and ws.repo.head("C") == before["C"]
    assert [d.drop_id for d in ws.repo.drops("A")] == ["drop-3-calc"]
    a_calc = ws.layout.sandboxes / "A" / "projects" / "calc"
    assert "2 * x" in (a_calc / "calc" / "core.py").read_text() and (a_calc / "README.md").is_file()
    assert {n: report["per_sandbox"][n]["status"] for n in "ABC"} == {
        "A": "partially merged", "B": "merged", "C": "failed"}


def test_journal_puts_back_a_sandbox_rebuilt_with_its_held_drops(tmp_path: Path) -> None:
    """A merge killed after moving D and rebuilding A: the next run's recovery restores both."""
    from noa_core.sandbox.drop_queue import (
        HeldDrop,
        build_drop_integration,
        rebuild_sandbox,
    )

    ws = Workspace(tmp_path)
    ws.land("A", "broken", BROKEN)
    a_old = ws.land("A", "strings", STRINGS)
    d0 = ws.repo.head("D")
    units = list_drops(ws.repo.git, d0, {"A": a_old}, ["A"])
    assert [(u.drop_id, u.project) for u in units] == [("drop-3-broken", "broken"), ("drop-4-strings", "strings")]
    integ = build_drop_integration(ws.repo.git, d0, {"A": a_old}, ["A"], units, ["drop-4-strings"])
    rebuilt = rebuild_sandbox(ws.repo.git, integ.commit, [HeldDrop(units[0], "test", "broken")], "dead-run")
    MergeJournal(ws.repo).begin(JournalEntry("dead-run", d0, integ.commit, {"A": a_old}, "then",
                                             targets={"A": rebuilt}))
    assert ws.repo.move_to("D", integ.commit, expected=d0, reason="merge that will die")
    assert ws.repo.move_to("A", rebuilt, expected=a_old, reason="merge that will die")

    actions = recover(ws.repo)

    assert ws.repo.head("D") == d0 and ws.repo.head("A") == a_old, actions
    assert "sandbox A put back" in actions[0] and "D put back" in actions[0]
    assert MergeJournal(ws.repo).read() is None


@pytest.mark.slow
def test_pipeline_of_a_clean_project_goes_on_after_a_broken_one_held_in_the_same_sandbox(
        prefect_api_url: str, tmp_path: Path) -> None:
    """The issue's case through ``noa pipeline``: a failing project dropped into A, then an
    unrelated clean one into A; the second reaches D and runs the stages, the first stays held."""
    from test_cli_pipeline_view import BROKEN, PROJECT
    from test_swarm_support import write_tree

    from flows.pipeline import run_pipeline
    from noa_core.config import NoaSettings
    from noa_core.sandbox.repository import WorkspaceRepo

    home = tmp_path / "home"
    broken = run_pipeline(source=str(write_tree(tmp_path / "broken", BROKEN)), home=str(home), sandbox="A",
                          use_ai=False, deploy=False)
    assert broken["verdict"] == "failed" and broken["steps"]["sandbox_merge"]["outcome"] == "validation failed"
    clean_files = {k.replace("tinyproj", "cleanproj"): v.replace("tinyproj", "cleanproj") for k, v in PROJECT.items()}
    clean = run_pipeline(source=str(write_tree(tmp_path / "clean", clean_files)), home=str(home), sandbox="A",
                         use_ai=False, deploy=False)

    assert clean["project"] == "cleanproj"
    assert clean["steps"]["sandbox_merge"]["outcome"] == "partially merged", clean["steps"]["sandbox_merge"]
    assert "tinyproj" in clean["steps"]["sandbox_merge"]["message"]  # says what it held
    assert clean["steps"]["swarm"]["status"] == "ok" and clean["verdict"] == "passed", clean["stages"]
    repo = WorkspaceRepo(NoaSettings(home=home).layout())
    assert repo.projects("D") == ["cleanproj"]
    assert [d.project for d in repo.drops("A")] == ["tinyproj"]
