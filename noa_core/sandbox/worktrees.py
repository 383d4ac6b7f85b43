"""The four sandbox worktrees (``NOA_HOME/sandboxes/{A,B,C,D}``): created, repaired, rewritten from their branch.

A worktree is a read-only view of its branch: NOA rewrites it with ``read-tree -u --reset``
after each move of the branch (local edits are discarded). Worktree links are absolute
paths, so a moved ``NOA_HOME`` is re-linked with ``git worktree repair``.
"""

from __future__ import annotations

import os
from pathlib import Path

from noa_core.sandbox.git import Git, WorkspaceError
from noa_core.sandbox.sandboxes import Sandbox


def worktree_path(sandboxes_dir: Path, sandbox: Sandbox | str) -> Path:
    return sandboxes_dir / Sandbox.parse(sandbox).value


def refresh_worktree(sandboxes_dir: Path, sandbox: Sandbox) -> None:
    """Make the worktree's index and files match its branch (local edits are discarded)."""
    Git(work_tree=worktree_path(sandboxes_dir, sandbox)).run("read-tree", "-u", "--reset", sandbox.ref)


def registered_worktrees(git: Git) -> dict[Path, str | None]:
    """``worktree path -> branch ref`` of every worktree git knows (the bare repository left out)."""
    out = git.out("worktree", "list", "--porcelain")
    result: dict[Path, str | None] = {}
    for block in out.split("\n\n"):
        fields = dict(line.partition(" ")[::2] for line in block.splitlines() if line)
        if "worktree" in fields and "bare" not in fields:
            result[Path(fields["worktree"]).resolve()] = fields.get("branch")
    return result


def ensure_worktrees(git: Git, sandboxes_dir: Path) -> None:
    """Create, re-link or check each sandbox's worktree; a foreign directory in the way is an error."""
    sandboxes_dir.mkdir(parents=True, exist_ok=True)
    registered = registered_worktrees(git)
    for sandbox in Sandbox:
        wt = worktree_path(sandboxes_dir, sandbox)
        branch = registered.get(wt.resolve(), "missing")
        if branch == sandbox.ref and (wt / ".git").is_file():
            continue
        if branch not in ("missing", sandbox.ref):
            raise WorkspaceError(f"{wt} is a worktree of {branch}, expected {sandbox.ref}")
        if branch == "missing" and (wt / ".git").is_file():
            # NOA_HOME was moved (worktree links are absolute paths): let git re-link both ways
            git.run("worktree", "repair", os.fspath(wt), check=False)
            if registered_worktrees(git).get(wt.resolve()) == sandbox.ref:
                refresh_worktree(sandboxes_dir, sandbox)
                continue
        git.run("worktree", "prune")
        if wt.exists() and any(wt.iterdir()):
            raise WorkspaceError(f"{wt} exists and is not the worktree of {sandbox.branch}: move it away")
        git.run("worktree", "add", "--no-checkout", "--quiet", os.fspath(wt), sandbox.branch)
        refresh_worktree(sandboxes_dir, sandbox)
