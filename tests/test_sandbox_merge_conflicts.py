"""Conflict check, integration commits and bisection: noa_core only (real git, no Prefect).

The workspaces are built the way drops land: ``WorkspaceRepo.land_drop`` of small trees
into D, then into A, B, C. Every expectation about git's behaviour is cross-checked
against ``git merge`` run by hand in a scratch clone.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest
from workspace_helpers import INSPECT_ENV, git, write_tree

from noa_core.config import HomeLayout
from noa_core.errors import BadInput
from noa_core.sandbox.bisect import find_culprit
from noa_core.sandbox.conflicts import check_conflicts, classify, parse_merge_tree
from noa_core.sandbox.merge import (
    IntegrationConflict,
    JournalEntry,
    MergeJournal,
    affected_projects,
    build_integration,
    export_project,
    parse_requested,
    plan_merge,
    read_test_plan,
    recover,
)
from noa_core.sandbox.repository import WorkspaceRepo

CORE = "def scale(x):\n    return x\n\n\ndef add(a, b):\n    return a + b\n"
CALC = {
    "noa.yaml": "name: calc\ntest:\n  command: [python, -m, pytest, -q]\n  pythonpath: ['.']\n",
    "calc/__init__.py": "",
    "calc/core.py": CORE,
    "calc/util.py": "def double(x):\n    return 2 * x\n",
    "tests/test_core.py": "from calc.core import add, scale\n\n\ndef test_scale():\n    assert scale(2) == 2\n\n\n"
                          "def test_add():\n    assert add(2, 3) == 5\n",
}


def with_changes(base: Mapping[str, str], **changes: str | None) -> dict[str, str]:
    """``base`` with files replaced (keyword: path with '/' as '__'), or removed when None."""
    out = dict(base)
    for key, value in changes.items():
        path = key.replace("__", "/").replace("_DOT_", ".")
        if value is None:
            out.pop(path, None)
        else:
            out[path] = value
    return out


class Workspace:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.layout = HomeLayout(tmp / "home")
        self.repo = WorkspaceRepo(self.layout)
        self.repo.ensure()
        self.n = 0

    def land(self, sandbox: str, project: str, files: Mapping[str, str], drop_id: str | None = None) -> str:
        self.n += 1
        tree = write_tree(self.tmp / "drops" / f"{self.n}-{project}", dict(files))
        landed = self.repo.land_drop(tree, project, sandbox, f"drop {project} #{self.n}",
                                     drop_id=drop_id or f"drop-{self.n}-{project}")
        return landed.commit


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w = Workspace(tmp_path)
    w.land("D", "calc", CALC)
    return w


def git_merge_by_hand(repo: Path, tmp: Path, ours: str, theirs: str) -> tuple[int, str]:
    """What plain ``git merge`` says, in a scratch clone (the reference the check must match)."""
    clone = tmp / f"by-hand-{ours[:7]}-{theirs[:7]}"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(repo), str(clone)], check=True, env=INSPECT_ENV)
    env = {**INSPECT_ENV, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", "--detach", ours], check=True, env=env)
    proc = subprocess.run(["git", "-C", str(clone), "merge", "--no-edit", theirs], capture_output=True, text=True,
                          env=env, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_parse_merge_tree_output() -> None:
    raw = (b"abc123\0f.txt\0del.txt\0\0"
           b"1\0f.txt\0Auto-merging\0Auto-merging f.txt\n\0"
           b"1\0f.txt\0CONFLICT (contents)\0CONFLICT (add/add): Merge conflict in f.txt\n\0"
           b"1\0del.txt\0CONFLICT (modify/delete)\0CONFLICT (modify/delete): del.txt deleted in B\n\0")
    tree, paths, messages = parse_merge_tree(raw)
    assert tree == "abc123" and paths == ["f.txt", "del.txt"] and len(messages) == 3
    files = {f.path: f for f in classify(paths, messages)}
    assert files["f.txt"].kind == "add/add"  # git's type says contents, its message says add/add
    assert files["del.txt"].kind == "modify/delete"


def test_clean_three_sandboxes_and_octopus_commit(ws: Workspace) -> None:
    d0 = ws.repo.head("D")
    ws.land("A", "strings", {"strings.py": "def up(s):\n    return s.upper()\n"})
    ws.land("B", "calc", with_changes(CALC, calc__util_DOT_py="def double(x):\n    return x + x\n"))
    ws.land("C", "calc", with_changes(CALC, calc__extra_DOT_py="E = 1\n"))
    report = check_conflicts(ws.repo, ["C", "A", "B"])
    assert report.sandboxes == ("A", "B", "C")
    assert not report.has_conflicts and report.mergeable == ("A", "B", "C")
    assert report.merge_tree_calls == 6 + 2  # 6 pairs (D included) + 2 queue steps (D+A reuses D x A)
    assert all(row[col] in ("-", "clean") for row in report.matrix() for col in ("D", "A", "B", "C"))
    heads = {n: ws.repo.head(n) for n in "ABC"}
    integ = build_integration(ws.repo, d0, heads, ["A", "B", "C"])
    assert integ.parents == (d0, heads["A"], heads["B"], heads["C"])
    assert git(ws.layout.repo, "rev-list", "--parents", "-n1", integ.commit).split()[1:] == list(integ.parents)
    assert ws.repo.head("D") == d0  # nothing moved
    files = git(ws.layout.repo, "ls-tree", "-r", "--name-only", integ.commit).split()
    assert "projects/strings/strings.py" in files and "projects/calc/calc/extra.py" in files
    assert git(ws.layout.repo, "show", f"{integ.commit}:projects/calc/calc/util.py") == \
        "def double(x):\n    return x + x\n"
    assert affected_projects(ws.repo.git, d0, integ.commit) == (["calc", "strings"], [])


def test_content_conflict_between_a_and_b_only(ws: Workspace) -> None:
    ws.land("A", "calc", with_changes(CALC, calc__core_DOT_py=CORE.replace("return x\n", "return x * 2\n")))
    ws.land("B", "calc", with_changes(CALC, calc__core_DOT_py=CORE.replace("return x\n", "return x * 3\n")))
    ws.land("C", "notes", {"README.md": "notes\n"})
    report = check_conflicts(ws.repo, ["A", "B", "C"])
    assert [c.as_dict() | {"message": ""} for c in report.conflicts] == [
        {"sandboxes": ["A", "B"], "path": "projects/calc/calc/core.py", "kind": "content", "message": "",
         "found_by": "pair"}]
    assert report.per_sandbox == {"A": ("projects/calc/calc/core.py",), "B": ("projects/calc/calc/core.py",)}
    assert report.mergeable == ("A", "C")  # the queue left B out
    assert [q.clean for q in report.queue] == [True, False, True]
    row_a = next(r for r in report.matrix() if r["sandbox"] == "A")
    assert row_a["B"].startswith("1 file (content)") and row_a["C"] == "clean" and row_a["D"] == "clean"
    code, said = git_merge_by_hand(ws.layout.repo, ws.tmp, ws.repo.head("A"), ws.repo.head("B"))
    assert code == 1 and "CONFLICT (content): Merge conflict in projects/calc/calc/core.py" in said


def test_modify_delete_and_rename_delete_kinds(ws: Workspace) -> None:
    ws.land("A", "calc", with_changes(CALC, calc__util_DOT_py="def double(x):\n    return x * 2  # A\n"))
    ws.land("B", "calc", with_changes(CALC, calc__util_DOT_py=None))
    # C renames core.py (same content), while D's next integration deletes it: rename/delete vs D
    ws.land("C", "calc", with_changes(CALC, calc__core_DOT_py=None, calc__arith_DOT_py=CORE))
    report = check_conflicts(ws.repo, ["A", "B"])
    (conflict,) = report.conflicts
    assert conflict.sandboxes == ("A", "B") and conflict.kind == "modify/delete"
    assert conflict.path == "projects/calc/calc/util.py"
    code, said = git_merge_by_hand(ws.layout.repo, ws.tmp, ws.repo.head("A"), ws.repo.head("B"))
    assert code == 1 and "CONFLICT (modify/delete)" in said

    # D moves on: core.py is removed there (landed straight into D); C's rename now conflicts with D
    ws.land("D", "calc", with_changes(CALC, calc__core_DOT_py=None))
    report = check_conflicts(ws.repo, ["C"])
    kinds = {(c.sandboxes, c.kind) for c in report.conflicts}
    assert (("D", "C"), "rename/delete") in kinds, report.conflicts
    assert report.per_sandbox["C"] and report.conflicting_with("C") == ("D",)
    code, said = git_merge_by_hand(ws.layout.repo, ws.tmp, ws.repo.head("D"), ws.repo.head("C"))
    assert code == 1 and "CONFLICT (rename/delete)" in said


def test_rename_and_modify_merge_cleanly(ws: Workspace) -> None:
    d0 = ws.repo.head("D")
    ws.land("A", "calc", with_changes(CALC, calc__util_DOT_py=None, calc__helpers_DOT_py=CALC["calc/util.py"]))
    ws.land("B", "calc", with_changes(CALC, calc__util_DOT_py="def double(x):\n    return x + x\n"))
    report = check_conflicts(ws.repo, ["A", "B"])
    assert not report.has_conflicts
    integ = build_integration(ws.repo, d0, {n: ws.repo.head(n) for n in "AB"}, ["A", "B"])
    files = git(ws.layout.repo, "ls-tree", "-r", "--name-only", integ.commit).split()
    assert "projects/calc/calc/util.py" not in files
    assert git(ws.layout.repo, "show", f"{integ.commit}:projects/calc/calc/helpers.py") == \
        "def double(x):\n    return x + x\n"  # B's fix followed A's rename


def test_add_add_and_queue_only_conflict(ws: Workspace) -> None:
    ws.land("A", "tool", {"tool.py": "A = 1\n"})
    ws.land("B", "tool", {"tool.py": "B = 2\n"})
    report = check_conflicts(ws.repo, ["A", "B"])
    (conflict,) = report.conflicts
    assert conflict.kind == "add/add" and conflict.path == "projects/tool/tool.py"
    with pytest.raises(IntegrationConflict):
        build_integration(ws.repo, ws.repo.head("D"), {n: ws.repo.head(n) for n in "AB"}, ["A", "B"])


def test_test_plan_and_export(ws: Workspace, tmp_path: Path) -> None:
    d = ws.repo.head("D")
    ws.land("A", "notes", {"README.md": "hi\n", ".gitattributes": "* filter=evil\n"})
    plan = read_test_plan(ws.repo.git, d, "calc")
    assert plan.command == ("python", "-m", "pytest", "-q") and plan.pythonpath == (".",)
    notes = read_test_plan(ws.repo.git, ws.repo.head("A"), "notes")
    assert notes.command is None and "no noa.yaml" in (notes.skip_reason or "")
    out = export_project(ws.repo.git, ws.repo.head("A"), "notes", tmp_path / "export")
    assert sorted(p.name for p in out.iterdir()) == [".gitattributes", "README.md"]
    assert (out / "README.md").read_text() == "hi\n"


def test_plan_merge_and_requested_names(ws: Workspace) -> None:
    assert parse_requested(None) == (("A", "B", "C"), False)
    assert parse_requested(["c", "A", "a"]) == (("A", "C"), True)
    for bad in (["D"], ["Z"], ["A", "nope"]):
        with pytest.raises(BadInput):
            parse_requested(bad)
    ws.land("B", "notes", {"README.md": "x\n"})
    plan = plan_merge(ws.repo, None)
    assert plan.to_merge == ("B",) and plan.not_ahead == ("A", "C")
    drops = ws.repo.drops("B")
    assert [d.drop_id for d in drops] == ["drop-2-notes"] and drops[0].project == "notes"
    assert [d.drop_id for d in ws.repo.drops("D")] == ["drop-1-calc"]


def test_journal_recovery_puts_refs_back(ws: Workspace) -> None:
    d0 = ws.repo.head("D")
    a0 = ws.land("A", "notes", {"README.md": "x\n"})
    integ = build_integration(ws.repo, d0, {"A": a0}, ["A"])
    MergeJournal(ws.repo).begin(JournalEntry("run-1", d0, integ.commit, {"A": a0}, "now"))
    # the process "dies" after moving both refs
    assert ws.repo.move_to("D", integ.commit, expected=d0, reason="test")
    assert ws.repo.move_to("A", integ.commit, expected=a0, reason="test")
    (line,) = recover(ws.repo)
    assert "D put back" in line and "sandbox A put back" in line
    assert ws.repo.head("D") == d0 and ws.repo.head("A") == a0
    assert MergeJournal(ws.repo).read() is None and recover(ws.repo) == []
    assert (ws.layout.sandboxes / "D" / "projects" / "notes").exists() is False
    subprocess.run(["git", f"--git-dir={ws.layout.repo}", "fsck", "--no-progress", "--strict"], check=True,
                   env=INSPECT_ENV, capture_output=True)


def test_move_to_is_compare_and_swap(ws: Workspace) -> None:
    d0 = ws.repo.head("D")
    a1 = ws.land("A", "notes", {"README.md": "x\n"})
    assert ws.repo.move_to("A", d0, expected="0" * 40, reason="stale") is False
    assert ws.repo.head("A") == a1
    assert ws.repo.move_to("A", d0, expected=a1, reason="reset") is True
    assert ws.repo.head("A") == d0 and not (ws.layout.sandboxes / "A" / "projects" / "notes").exists()


# bisection (the algorithm alone) ---------------------------------------------------------------


def _probe(bad: set[frozenset[str]]) -> tuple[list[tuple[str, ...]], object]:
    seen: list[tuple[str, ...]] = []

    def fails(subset: tuple[str, ...]) -> bool:
        seen.append(subset)
        return any(b <= set(subset) for b in bad)
    return seen, fails


@pytest.mark.parametrize("bad, expected", [
    ({frozenset("B")}, ("B",)),
    ({frozenset("A")}, ("A",)),
    ({frozenset("C")}, ("C",)),
    ({frozenset("AC")}, ("A", "C")),
    ({frozenset("AB")}, ("A", "B")),
    ({frozenset("BC")}, ("B", "C")),
    ({frozenset("ABC")}, ("A", "B", "C")),
])
def test_bisection_names_single_culprit_or_pair(bad: set[frozenset[str]], expected: tuple[str, ...]) -> None:
    seen, fails = _probe(bad)
    culprit = find_culprit(["A", "B", "C"], fails)  # type: ignore[arg-type]
    assert culprit.sandboxes == expected
    assert seen[0] == ()  # D alone first
    assert len(seen) == len(set(seen)) <= 7  # never a subset twice, never the whole batch again
    if len(expected) == 2:
        assert "fail together" in culprit.reason


def test_bisection_blames_nobody_when_d_already_fails() -> None:
    culprit = find_culprit(["A", "B"], lambda subset: True)
    assert culprit.sandboxes == () and "already fail on D" in culprit.reason


def test_bisection_in_a_larger_batch_is_logarithmic() -> None:
    names = [f"S{i}" for i in range(16)]
    seen, fails = _probe({frozenset({"S11"})})
    culprit = find_culprit(names, fails)  # type: ignore[arg-type]
    assert culprit.sandboxes == ("S11",) and len(seen) <= 1 + 2 * 4


# real code: released versions of one PyPI project -----------------------------------------------


def pypi_tree(name: str, version: str, dest: Path) -> Path:
    import sys
    import tarfile

    dl = dest / "dl"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                    f"{name}=={version}", "-d", str(dl)], check=True, capture_output=True, timeout=300)
    (sdist,) = dl.glob("*.tar.gz")
    with tarfile.open(sdist) as tf:
        tf.extractall(dest / "x", filter="data")
    (root,) = (dest / "x").iterdir()
    return root


def git_merge_conflicts(repo: Path, tmp: Path, ours: str, theirs: str) -> tuple[int, set[str], set[str]]:
    """(exit code, conflicted paths, CONFLICT kinds) of a plain ``git merge`` in a scratch clone."""
    code, said = git_merge_by_hand(repo, tmp, ours, theirs)
    clone = tmp / f"by-hand-{ours[:7]}-{theirs[:7]}"
    unmerged = subprocess.run(["git", "-C", str(clone), "diff", "--name-only", "--diff-filter=U"],
                              capture_output=True, text=True, env=INSPECT_ENV, check=True).stdout.split()
    kinds = {line.split("(", 1)[1].split(")", 1)[0] for line in said.splitlines() if line.startswith("CONFLICT (")}
    return code, set(unmerged), kinds


@pytest.mark.slow
@pytest.mark.network
def test_three_cachetools_releases_match_git_merge_by_hand(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    trees = {v: pypi_tree("cachetools", v, tmp_path / f"pypi-{v}") for v in ("7.3.3", "8.0.0", "8.0.2")}
    ws.repo.land_drop(trees["7.3.3"], "cachetools", "D", "cachetools 7.3.3", drop_id="ct-733")
    ws.repo.land_drop(trees["8.0.0"], "cachetools", "A", "cachetools 8.0.0", drop_id="ct-800")
    ws.repo.land_drop(trees["8.0.2"], "cachetools", "B", "cachetools 8.0.2", drop_id="ct-802")
    ws.land("C", "notes", {"README.md": "unrelated\n"})

    report = check_conflicts(ws.repo, ["A", "B", "C"])

    heads = ws.repo.heads()
    for pair in report.pairs:
        code, paths, kinds = git_merge_conflicts(ws.layout.repo, tmp_path, heads[pair.left], heads[pair.right])
        assert (code != 0) == (not pair.clean), (pair, code)
        assert {f.path for f in pair.files} == paths, (pair.left, pair.right)
        git_kinds = {"content" if k == "content" else k for k in kinds}
        assert {k for f in pair.files for k in f.kinds} <= git_kinds | {"content"}, (pair, kinds)
    ab = next(p for p in report.pairs if {p.left, p.right} == {"A", "B"})
    assert not ab.clean and report.per_sandbox.get("A") and report.per_sandbox.get("B")
    assert "C" not in report.per_sandbox and "C" in report.mergeable
