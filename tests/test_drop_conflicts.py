"""Which drops a conflict holds, decided from the conflict check alone (the flow tests run it on real git)."""

from __future__ import annotations

from pathlib import Path

from noa_core.sandbox.conflicts import Conflict, ConflictReport
from noa_core.sandbox.drop_conflicts import hold_conflicting_drops, project_of
from noa_core.sandbox.drop_queue import DropUnit
from noa_core.sandbox.git import Git


def unit(sandbox: str, project: str) -> DropUnit:
    return DropUnit(sandbox=sandbox, project=project, drop_id=f"drop-{sandbox}-{project}", commit="0" * 40,
                    base="0" * 40, tree=None)


def report(*conflicts: Conflict) -> ConflictReport:
    return ConflictReport(sandboxes=("A", "B", "C"), d_head="0" * 40, heads={}, pairs=(), queue=(),
                          conflicts=conflicts, mergeable=(), merge_tree_calls=0, seconds=0.0)


def no_git(tmp_path: Path) -> Git:
    return Git(tmp_path)  # not a repository: every drop's landing time is unknown, sandbox order decides


def test_only_paths_inside_a_project_belong_to_a_drop() -> None:
    assert project_of("projects/calc/calc/core.py") == "calc"
    assert project_of("projects/calc") is None
    assert project_of("README.md") is None


def test_conflicts_outside_projects_or_found_only_by_the_queue_hold_nothing(tmp_path: Path) -> None:
    units = [unit("A", "calc"), unit("B", "calc")]
    assert hold_conflicting_drops(no_git(tmp_path), units, report(Conflict(("A", "B"), "README.md", "content"))) is None
    queue_only = Conflict(("A", "B", "C"), "projects/calc/x.py", "content", found_by="queue")
    assert hold_conflicting_drops(no_git(tmp_path), units, report(queue_only)) is None
    no_drop = Conflict(("A", "C"), "projects/calc/x.py", "content")  # C changed calc without a drop
    assert hold_conflicting_drops(no_git(tmp_path), units, report(no_drop)) is None


def test_stale_drops_are_held_and_of_contested_ones_only_the_first_is_kept(tmp_path: Path) -> None:
    units = [unit("A", "calc"), unit("B", "calc"), unit("C", "calc"), unit("B", "greet"), unit("C", "greet")]
    holds = hold_conflicting_drops(no_git(tmp_path), units, report(
        Conflict(("A", "B"), "projects/calc/core.py", "content"),
        Conflict(("A", "C"), "projects/calc/core.py", "content"),
        Conflict(("D", "B"), "projects/greet/greet.py", "modify/delete"),
    ))
    assert holds is not None
    assert sorted(holds.held) == ["drop-B-calc", "drop-B-greet", "drop-C-calc"]
    assert "conflicts with drop drop-A-calc of sandbox A" in holds.held["drop-C-calc"].reason
    assert holds.held["drop-B-greet"].reason.startswith("D changed greet since sandbox B branched (1 conflicting file")
    assert holds.files["drop-B-greet"] == ("projects/greet/greet.py",)


def test_a_later_drop_conflicting_only_with_a_held_one_is_kept(tmp_path: Path) -> None:
    units = [unit("A", "calc"), unit("B", "calc"), unit("C", "calc")]
    holds = hold_conflicting_drops(no_git(tmp_path), units, report(
        Conflict(("A", "B"), "projects/calc/core.py", "content"),
        Conflict(("B", "C"), "projects/calc/util.py", "content"),
    ))
    assert holds is not None and sorted(holds.held) == ["drop-B-calc"]
