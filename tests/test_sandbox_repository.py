"""The workspace repository: real git, branches A-D, worktrees, landing drops safely and fast."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from noa_core.config import HomeLayout
from noa_core.errors import BadInput
from noa_core.sandbox import LandedDrop, Sandbox, WorkspaceRepo, is_git_name
from noa_core.sandbox.git import NOA_EMAIL, NOA_NAME
from workspace_helpers import files_on_disk, git, ls_files, write_tree

V1 = {
    "README.md": "# demo\n",
    "setup.cfg": "[metadata]\nname = demo\n",
    "demo/__init__.py": "VERSION = '1.0'\n",
    "demo/core.py": "def add(a, b):\n    return a + b\n",
    "demo/old.py": "LEGACY = True\n",
}
V2 = {k: v for k, v in V1.items() if k != "demo/old.py"}
V2["demo/core.py"] = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
V2["demo/new.py"] = "NEW = 'feature'\n"


@pytest.fixture
def layout(tmp_path: Path) -> HomeLayout:
    return HomeLayout(tmp_path / "home")


@pytest.fixture
def repo(layout: HomeLayout) -> WorkspaceRepo:
    workspace = WorkspaceRepo(layout)
    workspace.ensure()
    return workspace


def heads(layout: HomeLayout) -> dict[str, str]:
    out = git(layout.repo, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads/")
    return dict(line.split() for line in out.splitlines())


def test_ensure_creates_branches_worktrees_and_is_idempotent(layout: HomeLayout) -> None:
    WorkspaceRepo(layout).ensure()
    first = heads(layout)
    assert set(first) == {s.branch for s in Sandbox}
    assert len(set(first.values())) == 1  # A, B, C all at D's initial commit
    d_head = first[Sandbox.D.branch]
    assert git(layout.repo, "log", "--format=%s|%an <%ae>", d_head).strip() == \
        f"workspace created|{NOA_NAME} <{NOA_EMAIL}>"
    assert git(layout.repo, "rev-parse", "--is-bare-repository").strip() == "true"
    for key, value in [("core.hooksPath", "/dev/null"), ("core.fsmonitor", "false"), ("core.symlinks", "false"),
                       ("user.name", NOA_NAME), ("user.email", NOA_EMAIL)]:
        assert git(layout.repo, "config", "--local", key).strip() == value
    assert "!filter" in (layout.repo / "info" / "attributes").read_text()
    for sandbox in Sandbox:
        wt = layout.sandboxes / sandbox.value
        assert (wt / ".git").is_file()
        branch = subprocess.run(["git", "-C", str(wt), "symbolic-ref", "HEAD"], capture_output=True, text=True,
                                env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull}).stdout.strip()
        assert branch == sandbox.ref

    config_before = (layout.repo / "config").read_bytes()
    WorkspaceRepo(layout).ensure()  # a new instance: nothing changes
    WorkspaceRepo(layout).ensure()
    assert heads(layout) == first
    assert (layout.repo / "config").read_bytes() == config_before
    assert git(layout.repo, "rev-list", "--all", "--count").strip() == "1"


def test_ensure_repairs_a_deleted_worktree(repo: WorkspaceRepo, layout: HomeLayout, tmp_path: Path) -> None:
    repo.land_drop(write_tree(tmp_path / "v1", V1), "demo", "C", "v1")
    import shutil

    shutil.rmtree(layout.sandboxes / "C")
    WorkspaceRepo(layout).ensure()
    assert files_on_disk(layout.sandboxes / "C") == {f"projects/demo/{p}" for p in V1}


def test_land_new_project_into_a(repo: WorkspaceRepo, layout: HomeLayout, tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "drop", V1, executable=("demo/core.py",))
    landed = repo.land_drop(tree, "demo", Sandbox.A, "Land demo 1.0", drop_id="20261125-144100-demo-1a2b3c",
                            source="pypi:demo==1.0")
    assert isinstance(landed, LandedDrop)
    assert landed.branch == "sandbox/A-feature" and landed.sandbox is Sandbox.A
    assert not landed.is_update and not landed.fast_forwarded and not landed.unchanged
    assert (landed.files_changed, landed.insertions, landed.deletions) == (5, 7, 0)
    assert landed.file_count == 5 and landed.skipped == ()
    assert landed.parent == heads(layout)[Sandbox.D.branch]

    a_wt, d_wt = layout.sandboxes / "A", layout.sandboxes / "D"
    assert files_on_disk(a_wt) == {f"projects/demo/{p}" for p in V1}
    assert (a_wt / "projects/demo/demo/core.py").read_text() == V1["demo/core.py"]
    assert os.access(a_wt / "projects/demo/demo/core.py", os.X_OK)
    assert files_on_disk(d_wt) == set()
    assert ls_files(layout.repo, Sandbox.D.branch) == {}
    modes = ls_files(layout.repo, Sandbox.A.branch)
    assert modes["projects/demo/demo/core.py"] == "100755" and modes["projects/demo/README.md"] == "100644"

    message = git(layout.repo, "log", "-1", "--format=%B", landed.commit)
    assert message.startswith("Land demo 1.0\n")
    assert "Drop-Id: 20261125-144100-demo-1a2b3c" in message and "Source: pypi:demo==1.0" in message
    assert git(layout.repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", landed.commit).strip() == \
        f"{NOA_NAME} <{NOA_EMAIL}>|{NOA_NAME} <{NOA_EMAIL}>"

    status = {s.sandbox: s for s in repo.status()}
    assert status[Sandbox.A].projects == ("demo",) and status[Sandbox.A].ahead_of_D == 1
    assert status[Sandbox.A].behind_D == 0 and status[Sandbox.A].head == landed.commit
    assert status[Sandbox.D].projects == () and status[Sandbox.B].ahead_of_D == 0
    assert repo.projects("A") == ["demo"] and repo.projects("D") == []


def test_second_version_shows_exactly_the_real_change_against_d(repo: WorkspaceRepo, layout: HomeLayout,
                                                                tmp_path: Path) -> None:
    first = repo.land_drop(write_tree(tmp_path / "v1", V1), "demo", "D", "demo 1.0 integrated")
    assert files_on_disk(layout.sandboxes / "D") == {f"projects/demo/{p}" for p in V1}
    # another project on D, which the update must keep
    repo.land_drop(write_tree(tmp_path / "other", {"x.py": "x = 1\n"}), "other", "D", "other")

    landed = repo.land_drop(write_tree(tmp_path / "v2", V2), "demo", "B", "demo 2.0", drop_id="d2",
                            source="git:https://example.invalid/demo.git")
    d_head = heads(layout)[Sandbox.D.branch]
    assert landed.is_update and landed.fast_forwarded  # B was behind D with no commits of its own
    assert landed.parent == d_head and first.commit != d_head
    name_status = git(layout.repo, "diff", "--name-status", "--no-renames", Sandbox.D.branch, Sandbox.B.branch,
                      "--", "projects/demo")
    assert sorted(name_status.splitlines()) == ["A\tprojects/demo/demo/new.py", "D\tprojects/demo/demo/old.py",
                                                "M\tprojects/demo/demo/core.py"]
    assert git(layout.repo, "diff", "--name-only", Sandbox.D.branch, Sandbox.B.branch).split() == \
        ["projects/demo/demo/core.py", "projects/demo/demo/new.py", "projects/demo/demo/old.py"]
    assert (landed.files_changed, landed.insertions, landed.deletions) == (3, 5, 1)

    stat = repo.diffstat("B", "demo")
    assert {(c.status, c.path) for c in stat.changes} == {("M", "demo/core.py"), ("D", "demo/old.py"),
                                                           ("A", "demo/new.py")}
    assert (stat.files_changed, stat.insertions, stat.deletions) == (3, 5, 1)
    b_wt = layout.sandboxes / "B"
    assert not (b_wt / "projects/demo/demo/old.py").exists()
    assert (b_wt / "projects/demo/demo/new.py").read_text() == V2["demo/new.py"]
    assert (b_wt / "projects/other/x.py").exists()
    assert {s.sandbox: (s.ahead_of_D, s.behind_D) for s in repo.status()}[Sandbox.B] == (1, 0)

    # the preview used for assignment gives the same numbers before landing anywhere
    preview = repo.compare_with_d(tmp_path / "v2", "demo")
    assert preview is not None and (preview.files_changed, preview.insertions, preview.deletions) == (3, 5, 1)
    assert repo.compare_with_d(tmp_path / "v2", "never-landed") is None


def test_landing_keeps_sandbox_commits_unless_base_is_d(repo: WorkspaceRepo, layout: HomeLayout,
                                                        tmp_path: Path) -> None:
    own = repo.land_drop(write_tree(tmp_path / "p", {"p.py": "p = 1\n"}), "p", "A", "p into A")
    repo.land_drop(write_tree(tmp_path / "v1", V1), "demo", "D", "demo into D")  # D moves on
    v2 = write_tree(tmp_path / "v2", V2)

    kept = repo.land_drop(v2, "demo", "A", "demo 2 into A")
    assert kept.parent == own.commit and not kept.fast_forwarded  # own commits: no fast-forward, no merge
    assert repo.projects("A") == ["demo", "p"]
    # the project directory is replaced, so the diff against D is still the real change
    assert {(c.status, c.path) for c in repo.diffstat("A", "demo").changes} == \
        {("M", "demo/core.py"), ("D", "demo/old.py"), ("A", "demo/new.py")}

    again = repo.land_drop(v2, "demo", "A", "same content again")
    assert again.unchanged and again.commit == kept.commit

    replaced = repo.land_drop(v2, "demo", "A", "demo 2 on top of D", base="D")
    assert replaced.parent == heads(layout)[Sandbox.D.branch]
    assert repo.projects("A") == ["demo"]  # the sandbox's own commit with p left the branch
    assert not (layout.sandboxes / "A" / "projects" / "p").exists()

    assert repo.reset_to_d("A") == heads(layout)[Sandbox.D.branch]
    assert heads(layout)[Sandbox.A.branch] == heads(layout)[Sandbox.D.branch]
    assert files_on_disk(layout.sandboxes / "A") == {f"projects/demo/{p}" for p in V1}
    with pytest.raises(BadInput):
        repo.reset_to_d("D")


def test_hostile_drop_runs_no_filter_and_lands_no_git_metadata(repo: WorkspaceRepo, layout: HomeLayout,
                                                               tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "FILTER-RAN"
    evil = f"sh -c 'touch {marker}; cat'"
    # a filter driver configured globally (as git-lfs does) and in the repository itself
    global_config = tmp_path / "evil.gitconfig"
    global_config.write_text(f'[filter "evil"]\n\tclean = {evil}\n\tsmudge = {evil}\n\trequired = true\n'
                             f"[core]\n\tfsmonitor = {evil}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(global_config))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "not-this-repo"))
    git(layout.repo, "config", "filter.evil.clean", evil)
    git(layout.repo, "config", "filter.evil.smudge", evil)

    crlf_free = b"line one\nline two\n"
    tree = write_tree(tmp_path / "hostile", {
        ".gitattributes": "* filter=evil text eol=crlf ident\n[attr]sneaky filter=evil\n*.py sneaky\n",
        "pkg/.gitattributes": "*.txt filter=evil working-tree-encoding=UTF-16\n",
        "pkg/data.txt": crlf_free,
        "pkg/mod.py": "# $Id$\nx = 1\n",
        ".git/config": "[core]\n\thooksPath = /tmp\n",
        ".git/hooks/post-checkout": "#!/bin/sh\ntouch /tmp/pwned\n",
        "sub/.git": "gitdir: /etc\n",
        "sub/.GIT/HEAD": "ref: refs/heads/x\n",
        "sub/git~1/x": "short name\n",
        "sub/.git. /x": "trailing dot and space\n",
        "sub/.git::$INDEX_ALLOCATION/x": "ntfs stream\n",
        "sub/.g\u200cit/x": "hfs ignorable\n",
        "sub/ok.py": "ok = True\n",
        ".gitmodules": '[submodule "x"]\n\tpath = x\n\turl = ../../../etc\n',
    })
    (tree / "sub" / "escape").symlink_to("/etc/passwd")
    (tree / "sub" / "dirlink").symlink_to(tree / "pkg", target_is_directory=True)

    landed = repo.land_drop(tree, "evil", "C", "hostile drop")
    assert not marker.exists(), "a filter driver or fsmonitor ran"
    skipped = {s.rel: s.reason for s in landed.skipped}
    assert skipped == {".git": "git metadata name", "sub/.git": "git metadata name",
                       "sub/.GIT": "git metadata name", "sub/git~1": "git metadata name",
                       "sub/.git. ": "git metadata name", "sub/.git::$INDEX_ALLOCATION": "git metadata name",
                       "sub/.g\u200cit": "git metadata name", "sub/escape": "symlink", "sub/dirlink": "symlink"}
    landed_paths = ls_files(layout.repo, Sandbox.C.branch)
    assert set(landed_paths) == {f"projects/evil/{p}" for p in
                                 (".gitattributes", "pkg/.gitattributes", "pkg/data.txt", "pkg/mod.py",
                                  "sub/ok.py", ".gitmodules")}
    assert set(landed_paths.values()) == {"100644"}  # no symlink (120000), no submodule (160000)
    # bytes stored and checked out as dropped: no clean/smudge, no eol, ident or encoding conversion
    assert git(layout.repo, "cat-file", "blob", f"{Sandbox.C.branch}:projects/evil/pkg/data.txt").encode() \
        == crlf_free
    c_wt = layout.sandboxes / "C" / "projects" / "evil"
    assert (c_wt / "pkg/data.txt").read_bytes() == crlf_free
    assert (c_wt / "pkg/mod.py").read_bytes() == b"# $Id$\nx = 1\n"
    assert not marker.exists()
    for dirpath, dirnames, filenames in os.walk(layout.sandboxes):
        for name in dirnames + filenames:
            assert not os.path.islink(os.path.join(dirpath, name))
    assert files_on_disk(layout.sandboxes / "C") == {p for p in landed_paths}
    assert not (tmp_path / "not-this-repo").exists()


def test_git_names_are_recognised() -> None:
    for name in [".git", ".GIT", ".Git", ".git.", ".git ", ".git. .", "git~1", "GIT~1", ".git::$INDEX_ALLOCATION",
                 ".g\u200dit", "\ufeff.git"]:
        assert is_git_name(name), name
    for name in [".gitignore", ".gitattributes", ".github", "git", "git~2", ".gitx", "x.git"]:
        assert not is_git_name(name), name


def test_odd_file_names_land_byte_exact(repo: WorkspaceRepo, layout: HomeLayout, tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "odd", {"with space.txt": "a\n", 'quote"d.txt': "b\n", "back\\slash.txt": "c\n",
                                         "new\nline.txt": "d\n", "tab\tname.txt": "e\n", "ünïcode.txt": "f\n",
                                         "-dash.txt": "g\n"})
    with open(os.fsencode(tree) + b"/latin\xe9.txt", "wb") as fh:
        fh.write(b"h\n")
    landed = repo.land_drop(tree, "odd", "A", "odd names")
    assert landed.file_count == 8
    on_disk = {os.fsencode(p) for p in files_on_disk(layout.sandboxes / "A" / "projects" / "odd")}
    assert on_disk == {os.fsencode(p) for p in files_on_disk(tree)}
    assert (layout.sandboxes / "A" / "projects" / "odd" / "new\nline.txt").read_text() == "d\n"


def test_bad_input_is_refused(repo: WorkspaceRepo, tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "t", {"a": "1"})
    for name in ["../x", ".hidden", "a/b", "", "x" * 101, "name\n", "-x"]:
        with pytest.raises(BadInput):
            repo.land_drop(tree, name, "A", "bad name")
    with pytest.raises(BadInput):
        repo.land_drop(tree, "ok", "E", "bad sandbox")
    with pytest.raises(BadInput):
        repo.land_drop(tmp_path / "missing", "ok", "A", "no tree")
    (tmp_path / "only-links").mkdir()
    (tmp_path / "only-links" / "l").symlink_to("/etc/passwd")
    with pytest.raises(BadInput, match="no regular files"):
        repo.land_drop(tmp_path / "only-links", "ok", "A", "nothing to land")
    with pytest.raises(BadInput):
        repo.land_drop(tree, "ok", "A", "bad base", base="main")  # type: ignore[arg-type]
    assert Sandbox.parse("a") is Sandbox.A and Sandbox.parse("sandbox/D-integration") is Sandbox.D


def test_thousand_file_drop_is_fast(repo: WorkspaceRepo, layout: HomeLayout, tmp_path: Path) -> None:
    files = {f"pkg{i % 25}/sub{i % 7}/module_{i}.py": f"VALUE_{i} = {i}\n" * (1 + i % 40) for i in range(1000)}
    tree = write_tree(tmp_path / "big", files)
    started = time.perf_counter()
    landed = repo.land_drop(tree, "big", "A", "1,000 files")
    elapsed = time.perf_counter() - started
    print(f"\nland_drop: 1,000 files in {elapsed:.3f} s (git objects + commit + worktree checkout)",
          file=sys.stderr)
    assert landed.files_changed == 1000
    assert len(files_on_disk(layout.sandboxes / "A")) == 1000

    files["pkg0/sub0/module_0.py"] = "changed = True\n"
    tree = write_tree(tmp_path / "big", files)
    started = time.perf_counter()
    update = repo.land_drop(tree, "big", "A", "one file changed")
    print(f"land_drop: 1,000 files, 1 changed, in {time.perf_counter() - started:.3f} s", file=sys.stderr)
    assert update.parent == landed.commit


def test_concurrent_landings_into_two_sandboxes(repo: WorkspaceRepo, layout: HomeLayout, tmp_path: Path) -> None:
    trees = {sb: write_tree(tmp_path / sb, {f"{sb}/f{i}.py": f"x = {i}\n" for i in range(200)}) for sb in "ABC"}
    results: dict[str, LandedDrop] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def land(sb: str, project: str, sandbox: str) -> None:
        try:
            barrier.wait()
            results[project] = WorkspaceRepo(layout).land_drop(trees[sb], project, sandbox, f"{project}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=land, args=args) for args in
               [("A", "alpha", "A"), ("B", "beta", "B"), ("C", "gamma", "A"), ("A", "delta", "A")]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert repo.projects("A") == ["alpha", "delta", "gamma"] and repo.projects("B") == ["beta"]
    assert {s.sandbox: s.ahead_of_D for s in repo.status()}[Sandbox.A] == 3
    assert len(files_on_disk(layout.sandboxes / "A")) == 600


def test_ref_update_is_compare_and_swap(repo: WorkspaceRepo, layout: HomeLayout, tmp_path: Path) -> None:
    """Another writer moves the branch between NOA's read and its update: NOA retries on top of it."""
    other = repo.land_drop(write_tree(tmp_path / "o", {"o.py": "o = 1\n"}), "other", "D", "other on D")
    real = repo._update_ref
    calls: list[str] = []

    def racing(ref: str, new: str, old: str | None, reason: str) -> bool:
        if not calls:
            git(layout.repo, "update-ref", ref, other.commit)  # the interloper
        calls.append(ref)
        return real(ref, new, old, reason)

    repo._update_ref = racing  # type: ignore[method-assign]
    landed = repo.land_drop(write_tree(tmp_path / "v1", V1), "demo", "A", "raced")
    assert len(calls) == 2
    assert landed.parent == other.commit
    assert repo.projects("A") == ["demo", "other"]


def test_moved_home_is_repaired_by_ensure(repo: WorkspaceRepo, layout: HomeLayout, tmp_path: Path) -> None:
    landed = repo.land_drop(write_tree(tmp_path / "v1", V1), "demo", "B", "v1")
    moved = HomeLayout(tmp_path / "moved-home")
    layout.root.rename(moved.root)
    again = WorkspaceRepo(moved)
    again.ensure()
    assert again.head("B") == landed.commit
    assert files_on_disk(moved.sandboxes / "B") == {f"projects/demo/{p}" for p in V1}
    update = again.land_drop(write_tree(tmp_path / "v2", V2), "demo", "B", "v2")
    assert (moved.sandboxes / "B" / "projects/demo/demo/new.py").exists() and update.parent == landed.commit
    assert {s.sandbox: s.ahead_of_D for s in again.status()}[Sandbox.B] == 2


def test_refresh_worktree_discards_local_edits(repo: WorkspaceRepo, layout: HomeLayout, tmp_path: Path) -> None:
    repo.land_drop(write_tree(tmp_path / "v1", V1), "demo", "A", "v1")
    edited = layout.sandboxes / "A" / "projects/demo/README.md"
    edited.write_text("local edit\n")
    (layout.sandboxes / "A" / "projects/demo/demo/old.py").unlink()
    repo.refresh_worktree("A")
    assert edited.read_text() == V1["README.md"]
    assert files_on_disk(layout.sandboxes / "A") == {f"projects/demo/{p}" for p in V1}


def test_git_path_rules_are_a_second_guard(repo: WorkspaceRepo, layout: HomeLayout, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Were scan_drop ever to let a .git path through, git's own rules refuse it before any commit."""
    import noa_core.sandbox.repository as repository
    from noa_core.errors import HostileInput
    from noa_core.sandbox.paths import DropFile, DropScan

    tree = write_tree(tmp_path / "t", {".git/config": "[core]\n", "ok.py": "x = 1\n"})
    leaky = DropScan(root=tree, files=(DropFile(".git/config", False), DropFile("ok.py", False)), skipped=(),
                     total_bytes=14)
    monkeypatch.setattr(repository, "scan_drop", lambda root: leaky)
    before = heads(layout)
    with pytest.raises(HostileInput, match="invalid path"):
        repo.land_drop(tree, "leak", "A", "must not land")
    assert heads(layout) == before
    assert git(layout.repo, "for-each-ref", "refs/noa/").strip() == ""
