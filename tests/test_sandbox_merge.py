"""The sandbox_merge flow, in-process against the session's real Prefect server.

Each test builds a workspace with real drops (small Python projects with pytest suites,
landed with ``WorkspaceRepo.land_drop``), runs the flow, and checks D, the sandboxes, the
report and each sandbox's verdict. Validation really runs the projects' tests, isolated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from workspace_helpers import git, write_tree

from noa_core.config import NoaSettings
from noa_core.sandbox.merge import MergeJournal, MergeRolledBack, read_verdict
from noa_core.sandbox.repository import WorkspaceRepo

MANIFEST = "name: {name}\ntest:\n  command: [python, -m, pytest, -q]\n  pythonpath: ['.']\n"
CORE = "def scale(x):\n    return x\n\n\ndef add(a, b):\n    return a + b\n"
CALC = {
    "noa.yaml": MANIFEST.format(name="calc"),
    "calc/__init__.py": "",
    "calc/core.py": CORE,
    "tests/test_core.py": "from calc.core import add, scale\n\n\ndef test_scale():\n    assert scale(2) == 2\n\n\n"
                          "def test_add():\n    assert add(2, 3) == 5\n",
}
GREET = {
    "noa.yaml": MANIFEST.format(name="greet"),
    "greet.py": "def hello(name):\n    return f'hello {name}'\n",
    "tests/test_greet.py": "from greet import hello\n\n\ndef test_hello():\n    assert hello('x') == 'hello x'\n",
}
STRINGS = {
    "noa.yaml": MANIFEST.format(name="strings"),
    "strings_util.py": "def shout(s):\n    return s.upper() + '!'\n",
    "tests/test_strings.py": "from strings_util import shout\n\n\ndef test_shout():\n    assert shout('a') == 'A!'\n",
}


def changed(base: Mapping[str, str], files: Mapping[str, str | None]) -> dict[str, str]:
    """``base`` with files replaced, added, or removed (None)."""
    out = dict(base)
    for path, value in files.items():
        if value is None:
            out.pop(path, None)
        else:
            out[path] = value
    return out


class Workspace:
    """A NOA_HOME whose D holds ``calc`` and ``greet``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        self.layout = NoaSettings(home=self.home).layout()
        self.repo = WorkspaceRepo(self.layout)
        self.repo.ensure()
        self.n = 0
        self.land("D", "calc", CALC)
        self.land("D", "greet", GREET)

    def land(self, sandbox: str, project: str, files: Mapping[str, str]) -> str:
        self.n += 1
        tree = write_tree(self.tmp / "drops" / f"{self.n}-{project}", dict(files))
        return self.repo.land_drop(tree, project, sandbox, f"drop {project} #{self.n}",
                                   drop_id=f"drop-{self.n}-{project}").commit

    def heads(self) -> dict[str, str]:
        return {n: self.repo.head(n) for n in "ABCD"}

    def merge(self, sandboxes: list[str] | None = None) -> dict[str, Any]:
        from flows.runtime import run_in_process
        from flows.sandbox_merge import sandbox_merge

        return run_in_process(sandbox_merge, sandboxes=sandboxes, home=str(self.home))


@pytest.fixture
def ws(tmp_path: Path, prefect_api_url: str) -> Workspace:
    return Workspace(tmp_path)


def test_clean_merge_of_a_b_c_moves_d_after_running_the_tests(ws: Workspace) -> None:
    d0 = ws.repo.head("D")
    ws.land("A", "strings", STRINGS)
    ws.land("B", "calc", changed(CALC, {"calc/core.py": CORE.replace("return a + b", "return b + a")}))
    ws.land("C", "greet", changed(GREET, {"greet.py": "def hello(name):\n    return 'hello ' + name\n"}))
    before = ws.heads()
    assert [d.drop_id for d in ws.repo.drops("A")] == ["drop-3-strings"]

    report = ws.merge()

    assert report["outcome"] == "merged" and report["merged"] is True, report["message"]
    assert report["requested"] == ["A", "B", "C"] and report["conflicts"] == []
    assert report["integration_head_before"] == d0
    new_d = report["integration_head_after"]
    assert new_d != d0 and ws.repo.head("D") == new_d
    parents = git(ws.layout.repo, "rev-list", "--parents", "-n1", new_d).split()[1:]
    assert parents == [d0, before["A"], before["B"], before["C"]]
    message = git(ws.layout.repo, "log", "-1", "--format=%B", new_d)
    assert "Merged-Drop: drop-3-strings" in message and f"Merged-Sandbox: B {before['B']}" in message
    # every changed project's tests ran, isolated, on the integration tree
    assert set(report["validation"]) == {"calc", "greet", "strings"}
    for v in report["validation"].values():
        assert v["status"] == "passed" and v["passed"] >= 1 and v["failed"] == 0, v
    # the sandboxes start clean on the new D, worktrees included
    assert all(ws.repo.head(n) == new_d for n in "ABC")
    assert (ws.layout.sandboxes / "D" / "projects" / "strings" / "strings_util.py").is_file()
    assert (ws.layout.sandboxes / "A" / "projects" / "strings" / "strings_util.py").is_file()
    assert ws.repo.drops("A") == [] and "drop-3-strings" in {d.drop_id for d in ws.repo.drops("D")}
    for name in "ABC":
        assert report["per_sandbox"][name]["status"] == "merged"
        assert read_verdict(ws.layout.reports, name)["status"] == "merged"
    saved = json.loads(Path(report["report_path"]).read_text())
    assert saved["outcome"] == "merged" and Path(report["report_path"]).name.startswith("merge-")
    assert "does not exist yet" in report["cltree"]["reason"]
    assert MergeJournal(ws.repo).read() is None
    assert not git(ws.layout.repo, "for-each-ref", "refs/noa/tmp/").strip()  # the candidate pin is gone

    artifacts = artifacts_of(report["flow_run_id"])
    assert set(artifacts) == {"sandbox-merge", "sandbox-merge-conflicts", "sandbox-merge-validation",
                              "sandbox-merge-drops"}
    assert [(d["drop_id"], d["sandbox"]) for d in report["drops"]["merged"]] == [
        ("drop-3-strings", "A"), ("drop-4-calc", "B"), ("drop-5-greet", "C")] and report["drops"]["held"] == []
    assert artifacts["sandbox-merge"].type == "markdown" and "merged" in artifacts["sandbox-merge"].data
    matrix = json.loads(artifacts["sandbox-merge-conflicts"].data)
    assert [row["sandbox"] for row in matrix] == ["D", "A", "B", "C"] and matrix[1]["B"] == "clean"

    again = ws.merge()
    assert again["outcome"] == "nothing to merge" and again["merged"] is False

    # the CL tree holds the merge (and not the no-op), pointing at D's old and new heads
    from noa_core.cltree import change_entries

    merges = change_entries(NoaSettings(home=ws.home), kind="merge")
    assert [m.payload["outcome"] for m in merges] == ["merged"]
    assert merges[0].payload["head_before"] == d0 and merges[0].payload["head_after"] == ws.repo.head("D")


def artifacts_of(flow_run_id: str) -> dict[str, Any]:
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)])))
    return {a.key: a for a in found if a.key}


def test_conflicting_drops_first_landed_merges_the_later_is_held_with_the_rest_merged(ws: Workspace) -> None:
    ws.land("A", "calc", changed(CALC, {"calc/core.py": CORE.replace("return x\n", "return x  # A\n")}))
    ws.land("B", "calc", changed(CALC, {"calc/core.py": CORE.replace("return x\n", "return x  # B\n")}))
    ws.land("C", "greet", changed(GREET, {"README.md": "greet\n"}))
    before = ws.heads()

    report = ws.merge()

    # like a merge queue: A's drop of calc landed first and merges with C's; B's conflicting drop is held
    assert report["outcome"] == "partially merged" and report["merged"] is True, report["message"]
    assert [(c["sandboxes"], c["path"], c["kind"]) for c in report["conflicts"]] == [
        (["A", "B"], "projects/calc/calc/core.py", "content")]
    new_d = ws.repo.head("D")
    assert new_d == report["integration_head_after"] != before["D"]
    assert ws.repo.git.out("show", f"{new_d}:projects/calc/calc/core.py").count("# A") == 1
    assert ws.repo.git.out("show", f"{new_d}:projects/greet/README.md") == "greet"
    assert [d["sandbox"] for d in report["drops"]["merged"]] == ["A", "C"]
    (held,) = report["drops"]["held"]
    assert held["sandbox"] == "B" and held["project"] == "calc"
    assert "conflicts with drop" in held["reason"] and "landed first" in held["reason"]
    verdict = report["per_sandbox"]["B"]
    assert verdict["status"] == "manual resolution needed"
    assert verdict["files"] == ["projects/calc/calc/core.py"]
    assert report["per_sandbox"]["A"]["status"] == report["per_sandbox"]["C"]["status"] == "merged"
    assert ws.repo.head("B") == before["B"]  # B keeps its drop, untouched
    assert report["validation"]["calc"]["status"] == "passed"
    row_a = next(r for r in report["matrix"] if r["sandbox"] == "A")
    assert "content" in row_a["B"] and row_a["C"] == "clean"
    table = json.loads(artifacts_of(report["flow_run_id"])["sandbox-merge-conflicts"].data)
    assert next(r for r in table if r["sandbox"] == "B")["A"].startswith("1 file (content)")

    again = ws.merge(["B"])  # B now conflicts with the D that took A's change: nothing else to merge
    assert again["outcome"] == "conflict" and again["merged"] is False
    assert [(c["sandboxes"], c["kind"]) for c in again["conflicts"]] == [(["D", "B"], "content")]
    assert "D changed the same files" in again["per_sandbox"]["B"]["message"]
    assert ws.repo.head("D") == new_d and ws.repo.head("B") == before["B"]


def test_a_drop_conflicting_with_d_is_held_while_its_sandboxs_other_drop_merges(ws: Workspace) -> None:
    ws.land("A", "calc", changed(CALC, {"calc/core.py": CORE.replace("return x\n", "return x  # A\n")}))
    ws.land("B", "calc", changed(CALC, {"calc/core.py": CORE.replace("return x\n", "return x  # B\n")}))
    ws.land("B", "strings", STRINGS)
    assert ws.merge(["A"])["outcome"] == "merged"
    d1 = ws.repo.head("D")

    report = ws.merge(["B"])

    assert report["outcome"] == "partially merged", report["message"]
    assert [d["project"] for d in report["drops"]["merged"]] == ["strings"]
    (held,) = report["drops"]["held"]
    assert held["project"] == "calc" and "D changed calc since sandbox B branched" in held["reason"]
    assert ws.repo.head("D") != d1
    assert "strings" in ws.repo.git.out("ls-tree", "--name-only", f"{ws.repo.head('D')}:projects").split()
    assert report["per_sandbox"]["B"]["status"] == "partially merged"


def test_modify_delete_conflict_kind(ws: Workspace) -> None:
    ws.land("A", "greet", changed(GREET, {"greet.py": "def hello(name):\n    return 'hello ' + name\n"}))
    ws.land("B", "greet", changed(GREET, {"greet.py": None, "tests/test_greet.py": None,
                                          "README.md": "retired\n"}))
    d0 = ws.repo.head("D")
    report = ws.merge(["A", "B"])
    kinds = {(c["path"], c["kind"]) for c in report["conflicts"]}
    assert ("projects/greet/greet.py", "modify/delete") in kinds
    # A's drop landed first and merges; B's retirement of greet is held
    assert report["outcome"] == "partially merged" and ws.repo.head("D") != d0
    assert [d["sandbox"] for d in report["drops"]["held"]] == ["B"]
    assert "projects/greet/greet.py" in report["per_sandbox"]["B"]["files"]


def test_failing_drop_is_held_and_the_other_sandboxes_merge(ws: Workspace) -> None:
    ws.land("A", "strings", STRINGS)
    ws.land("B", "calc", changed(CALC, {"calc/core.py": CORE.replace("return x\n", "return x * 10\n")}))
    ws.land("C", "greet", changed(GREET, {"README.md": "greet\n"}))
    before = ws.heads()

    report = ws.merge()

    # B's drop breaks calc (the only drop changing calc: held without bisection); A and C reach D
    assert report["outcome"] == "partially merged" and report["merged"] is True, report["message"]
    new_d = ws.repo.head("D")
    assert new_d == report["integration_head_after"] != before["D"]
    assert report["validation"]["strings"]["status"] == "passed" and "calc" not in report["validation"]
    assert report["culprit"] == ["B"] and "calc failed" in report["culprit_reason"]
    assert report["bisection"] == []
    assert [(d["drop_id"], d["sandbox"], d["project"]) for d in report["drops"]["held"]] == [("drop-4-calc", "B", "calc")]
    assert {d["drop_id"] for d in report["drops"]["merged"]} == {"drop-3-strings", "drop-5-greet"}
    assert report["per_sandbox"]["B"]["status"] == "failed"
    assert report["per_sandbox"]["A"]["status"] == report["per_sandbox"]["C"]["status"] == "merged"
    assert ws.repo.head("A") == ws.repo.head("C") == new_d and ws.repo.head("B") == before["B"]
    assert (ws.layout.sandboxes / "D" / "projects" / "strings" / "strings_util.py").is_file()
    assert "x * 10" not in (ws.layout.sandboxes / "D" / "projects" / "calc" / "calc" / "core.py").read_text()
    assert ws.merge(["A", "C"])["outcome"] == "nothing to merge"


def test_pair_that_only_fails_together_is_named(ws: Workspace) -> None:
    # A changes scale() and updates its own test; C adds a test written against the old scale()
    ws.land("A", "calc", changed(CALC, {"calc/core.py": CORE.replace("return x\n", "return 2 * x\n"),
                                 "tests/test_core.py": CALC["tests/test_core.py"].replace("== 2", "== 4")}))
    ws.land("C", "calc", changed(CALC, {"tests/test_extra.py": "from calc.core import scale\n\n\n"
                                                            "def test_scale_three():\n    assert scale(3) == 3\n"}))
    before = ws.heads()

    report = ws.merge()

    assert report["outcome"] == "validation failed"
    assert report["culprit"] == ["A", "C"], report["bisection"]
    assert "fail together" in report["culprit_reason"]
    probes = {tuple(p["sandboxes"]): p["failed"] for p in report["bisection"]}
    assert probes[("A",)] is False and probes[("C",)] is False and probes[("A", "C")] is True
    assert ws.heads() == before
    assert report["per_sandbox"]["A"]["status"] == report["per_sandbox"]["C"]["status"] == "failed"


def test_failure_after_d_moved_is_rolled_back_by_the_hooks(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect import task

    import flows.sandbox_merge as module

    ws.land("A", "strings", STRINGS)
    ws.land("B", "greet", changed(GREET, {"README.md": "greet\n"}))
    before = ws.heads()
    seen: dict[str, str] = {}

    @task(name="confirm-integration")
    def exploding_confirm(settings: Any, expected: str) -> str:
        seen["D during the transaction"] = WorkspaceRepo(settings.layout()).head("D")
        seen["A during the transaction"] = WorkspaceRepo(settings.layout()).head("A")
        raise RuntimeError("injected failure after D moved")

    monkeypatch.setattr(module, "confirm_integration_task", exploding_confirm)
    with pytest.raises(MergeRolledBack) as info:
        ws.merge()

    assert seen["D during the transaction"] != before["D"]  # D really had moved ...
    assert seen["A during the transaction"] == seen["D during the transaction"]  # ... and A had been reset
    assert ws.heads() == before  # ... and all of it was put back
    report = info.value.report  # type: ignore[attr-defined]
    assert report["outcome"] == "rolled back" and report["merged"] is False
    assert "(restored by the rollback hooks)" in report["message"]  # not by the journal fallback
    assert report["integration_head_after"] == before["D"]
    assert MergeJournal(ws.repo).read() is None
    assert (ws.layout.sandboxes / "D" / "projects" / "strings").exists() is False

    monkeypatch.undo()
    assert ws.merge()["outcome"] == "merged"


def test_interrupted_merge_is_rolled_back_by_the_next_run(ws: Workspace) -> None:
    """A process killed after D moved leaves a journal; the next merge puts D back first, then merges."""
    from noa_core.sandbox.merge import JournalEntry, build_integration

    a = ws.land("A", "strings", STRINGS)
    d0 = ws.repo.head("D")
    integ = build_integration(ws.repo, d0, {"A": a}, ["A"])
    MergeJournal(ws.repo).begin(JournalEntry("dead-run", d0, integ.commit, {"A": a}, "then"))
    assert ws.repo.move_to("D", integ.commit, expected=d0, reason="merge that will die")

    report = ws.merge()

    assert report["recovered"] and "D put back" in report["recovered"][0]
    assert report["integration_head_before"] == d0  # planned after the recovery
    assert report["outcome"] == "merged"


def test_d_moving_during_the_merge_refuses_without_touching_anything(ws: Workspace,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect import task

    import flows.sandbox_merge as module

    ws.land("A", "notes", {"README.md": "notes\n"})
    before = ws.heads()

    @task(name="read-test-plans")
    def plans_while_someone_lands_in_d(settings: Any, commit: str, projects: list[str]) -> list[Any]:
        ws.land("D", "other", {"README.md": "landed in D meanwhile\n"})
        return []

    monkeypatch.setattr(module, "read_test_plans_task", plans_while_someone_lands_in_d)
    report = ws.merge()

    assert report["outcome"] == "concurrent update" and report["merged"] is False
    moved_d = ws.repo.head("D")
    assert moved_d != before["D"] and report["integration_head_after"] == moved_d
    assert ws.repo.head("A") == before["A"] and report["per_sandbox"]["A"]["status"] == "not merged"
    assert MergeJournal(ws.repo).read() is None
