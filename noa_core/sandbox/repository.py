"""The workspace repository: one bare git repository, four sandbox branches, four worktrees.

Layout (under ``NOA_HOME``)::

    repo/                 bare repository; branches sandbox/{A-feature,B-bugfix,C-experimental,D-integration}
    repo/info/attributes  written by NOA: neutralises every dropped .gitattributes (see below)
    repo/noa/             NOA's lock files
    sandboxes/{A,B,C,D}/  one worktree per branch (a read-only view: NOA rewrites them)

Each project lives in ``projects/<name>/`` on a branch.

Dropped content is hostile, so it is committed with plumbing only, never ``git add``:

1. one ``git fast-import`` stores every file's bytes as a blob and builds the project's
   tree, all in one pack (NOA streams each file, opened with ``O_NOFOLLOW``; fast-import
   never looks at attributes and writes no loose objects);
2. ``read-tree`` of that tree into a throw-away index applies git's own path rules as a
   second guard (``.git`` in any spelling is refused before anything refers to it);
3. ``mktree`` grafts the tree under ``projects/`` of the parent commit's tree,
   ``commit-tree`` makes the commit, and ``update-ref <ref> <new> <old>`` moves the branch
   only if nobody moved it meanwhile (compare-and-swap; NOA retries on a lost race);
4. the worktree is refreshed with ``read-tree -u --reset`` under a per-sandbox lock.

Git's own and the user's configuration are ignored (see :mod:`noa_core.sandbox.git`), and the
repository's own configuration turns hooks, fsmonitor and symlinks off and neutralises every
dropped ``.gitattributes`` (:mod:`noa_core.sandbox.repo_config`). Only regular files land (mode
100644 or 100755): no symlinks, no submodules, nothing named like ``.git`` (see
:mod:`noa_core.sandbox.paths`).

This module is the facade over the parts: objects and trees (:mod:`noa_core.sandbox.trees`),
diffs (:mod:`noa_core.sandbox.diffs`), branches and compare-and-swap
(:mod:`noa_core.sandbox.refs`), worktrees (:mod:`noa_core.sandbox.worktrees`), landing commits
(:mod:`noa_core.sandbox.drop_commits`).

How a drop lands (``land_drop``): the project's directory on the sandbox branch is
*replaced* by the drop (files missing from the drop are deleted), everything else on the
branch is kept. The parent commit is:

* ``sandbox="D"``: D's head (seeding the integration line; the merge flow uses D too);
* ``base="D"``: D's head, whatever the sandbox had (the sandbox's own unmerged commits
  leave the branch: they stay reachable from the reflog only);
* ``base="sandbox"`` (default): the sandbox's head, except that a sandbox that is behind
  D and has no commits of its own is first fast-forwarded to D. A sandbox with its own
  commits keeps them and is not rebased or merged; if D moved meanwhile, the sandbox
  merge flow's conflict check sees it.

Because the project directory is replaced wholesale, ``git diff D <sandbox> --
projects/<name>`` is always exactly the change from the integrated version to the drop.
"""

from __future__ import annotations

import re
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from noa_core.config import HomeLayout
from noa_core.errors import BadInput
from noa_core.manifest import PROJECT_NAME_PATTERN
from noa_core.sandbox.diffs import DiffStat, diff_trees
from noa_core.sandbox.drop_commits import (
    DropCommit,
    LandedDrop,
    landing_message,
    read_drop_commits,
)
from noa_core.sandbox.git import Git
from noa_core.sandbox.paths import DropScan, scan_drop
from noa_core.sandbox.refs import (
    CAS_ATTEMPTS,
    ConcurrentUpdate,
    flock,
    read_heads,
    remove_stale_tmp_refs,
    update_ref,
)
from noa_core.sandbox.repo_config import configure
from noa_core.sandbox.sandboxes import Sandbox
from noa_core.sandbox.trees import (
    PROJECTS_DIR,
    graft,
    mktree,
    project_tree,
    projects_at,
    tree_of,
    write_project_tree,
)
from noa_core.sandbox.worktrees import ensure_worktrees, refresh_worktree, worktree_path

INITIAL_MESSAGE = "workspace created"
PROJECT_NAME_RE = re.compile(PROJECT_NAME_PATTERN)

Base = Literal["sandbox", "D"]


@dataclass(frozen=True)
class SandboxStatus:
    sandbox: Sandbox
    branch: str
    head: str
    ahead_of_D: int
    behind_D: int
    projects: tuple[str, ...]


def validate_project_name(project: str) -> str:
    if not isinstance(project, str) or not PROJECT_NAME_RE.fullmatch(project):
        raise BadInput(f"invalid project name {project!r}: use letters, digits, '.', '_', '+', '-' "
                       f"(starting with a letter or digit, at most 100 characters)")
    return project


class WorkspaceRepo:
    """The workspace repository under ``layout.repo`` and its worktrees under ``layout.sandboxes``."""

    def __init__(self, layout: HomeLayout) -> None:
        self.layout = layout
        self.git = Git(git_dir=layout.repo)
        self._ready = False

    # paths ------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.layout.repo

    def worktree(self, sandbox: Sandbox | str) -> Path:
        return worktree_path(self.layout.sandboxes, sandbox)

    @property
    def _noa_dir(self) -> Path:
        return self.layout.repo / "noa"

    def _lock(self, name: str) -> AbstractContextManager[None]:
        return flock(self._noa_dir / "locks" / f"{name}.lock")

    # set-up -----------------------------------------------------------------------------

    def ensure(self) -> None:
        """Create or repair the repository, its four branches and worktrees (idempotent)."""
        self.layout.repo.mkdir(parents=True, exist_ok=True)
        with self._lock("repo"):
            if not (self.layout.repo / "HEAD").is_file():
                Git().run("init", "--bare", "--quiet", f"--initial-branch={Sandbox.D.branch}",
                          str(self.layout.repo))
            configure(self.git, self.layout.repo)
            heads = self._heads()
            d_head = heads.get(Sandbox.D)
            if d_head is None:
                empty = mktree(self.git, [])
                d_head = self.git.out("commit-tree", empty, "-m", INITIAL_MESSAGE)
                if not self._update_ref(Sandbox.D.ref, d_head, None, INITIAL_MESSAGE):
                    d_head = self._heads()[Sandbox.D]
            for sandbox in (Sandbox.A, Sandbox.B, Sandbox.C):
                if sandbox not in heads:
                    self._update_ref(sandbox.ref, d_head, None, f"branch {sandbox.branch} created at D")
            ensure_worktrees(self.git, self.layout.sandboxes)
            remove_stale_tmp_refs(self.git)
            self.maintain()
        self._ready = True

    def maintain(self) -> None:
        """Let git pack loose objects and the one pack per landing when its thresholds are met."""
        self.git.run("gc", "--auto", "--quiet")

    def _ensure_ready(self) -> None:
        if not self._ready:
            self.ensure()

    def refresh_worktree(self, sandbox: Sandbox | str) -> None:
        """Rewrite a sandbox's worktree from its branch (after a ref update by another flow)."""
        sb = Sandbox.parse(sandbox)
        self._ensure_ready()
        with self._lock(sb.value):
            self._refresh_worktree(sb)

    def _refresh_worktree(self, sandbox: Sandbox) -> None:
        refresh_worktree(self.layout.sandboxes, sandbox)

    # branches -----------------------------------------------------------------------------

    def _heads(self) -> dict[Sandbox, str]:
        return read_heads(self.git)

    def head(self, sandbox: Sandbox | str) -> str:
        self._ensure_ready()
        return self._heads()[Sandbox.parse(sandbox)]

    def heads(self) -> dict[str, str]:
        """Every sandbox's head, read at once: ``{"A": sha, "B": sha, "C": sha, "D": sha}``."""
        self._ensure_ready()
        return {sb.value: sha for sb, sha in self._heads().items()}

    def _update_ref(self, ref: str, new: str, old: str | None, reason: str) -> bool:
        """Compare-and-swap ``ref`` from ``old`` (None: must not exist) to ``new``; False if it moved."""
        return update_ref(self.git, ref, new, old, reason)

    # landing ----------------------------------------------------------------------------

    def _scan(self, tree: Path) -> DropScan:
        tree = Path(tree)
        if not tree.is_dir():
            raise BadInput(f"{tree}: not a directory")
        scan = scan_drop(tree)
        if not scan.files:
            raise BadInput(f"{tree}: no regular files to land")
        return scan

    def _write_project_tree(self, scan: DropScan) -> str:
        return write_project_tree(self.git, scan, self._noa_dir / "tmp")

    def compare_with_d(self, tree: Path, project: str) -> DiffStat | None:
        """What landing ``tree`` would change in D's ``projects/<project>``; None if D lacks the project.

        Stores the drop's blobs (harmless: they are reused by the landing, or collected by gc).
        """
        self._ensure_ready()
        validate_project_name(project)
        current = project_tree(self.git, self._heads()[Sandbox.D], project)
        if current is None:
            return None
        return diff_trees(self.git, current, self._write_project_tree(self._scan(tree)), None)

    def _choose_parent(self, sandbox: Sandbox, base: Base, heads: dict[Sandbox, str]) -> tuple[str, bool]:
        d_head = heads[Sandbox.D]
        if sandbox is Sandbox.D or base == "D":
            return d_head, False
        own = heads[sandbox]
        if own != d_head and self.git.ok("merge-base", "--is-ancestor", own, d_head):
            return d_head, True  # behind D with no commits of its own: fast-forward first
        return own, False

    def land_drop(self, tree: Path, project: str, sandbox: Sandbox | str, message: str, *,
                  base: Base = "sandbox", drop_id: str | None = None, source: str | None = None) -> LandedDrop:
        """Commit ``tree`` as ``projects/<project>/`` on ``sandbox``'s branch and refresh its worktree.

        See the module documentation for the choice of parent commit and what is skipped.
        """
        started = time.perf_counter()
        sb = Sandbox.parse(sandbox)
        validate_project_name(project)
        if base not in ("sandbox", "D"):
            raise BadInput(f"unknown base {base!r}: expected 'sandbox' or 'D'")
        scan = self._scan(tree)
        self._ensure_ready()
        subtree = self._write_project_tree(scan)
        body = landing_message(message, project, sb, drop_id, source)
        with self._lock(sb.value):
            for _attempt in range(CAS_ATTEMPTS):
                heads = self._heads()
                d_head, old = heads[Sandbox.D], heads[sb]
                parent, fast_forwarded = self._choose_parent(sb, base, heads)
                root = graft(self.git, parent, project, subtree)
                unchanged = root == tree_of(self.git, parent)
                commit = parent if unchanged else self.git.out("commit-tree", root, "-p", parent, "-F", "-",
                                                               input=body)
                reason = f"noa: land {project}" + (f" ({drop_id})" if drop_id else "")
                if commit == old or self._update_ref(sb.ref, commit, old, reason):
                    break
            else:
                raise ConcurrentUpdate(f"{sb.branch} kept moving while landing {project}; nothing was landed")
            self._refresh_worktree(sb)
        is_update = project_tree(self.git, d_head, project) is not None
        stats = diff_trees(self.git, parent if sb is Sandbox.D else d_head, commit, f"{PROJECTS_DIR}/{project}")
        return LandedDrop(commit=commit, parent=parent, branch=sb.branch, sandbox=sb, project=project,
                          files_changed=stats.files_changed, insertions=stats.insertions,
                          deletions=stats.deletions, is_update=is_update, fast_forwarded=fast_forwarded,
                          unchanged=unchanged, file_count=len(scan.files), skipped=scan.skipped,
                          seconds=time.perf_counter() - started)

    # queries and maintenance -------------------------------------------------------------

    def projects(self, sandbox: Sandbox | str) -> list[str]:
        self._ensure_ready()
        return projects_at(self.git, self._heads()[Sandbox.parse(sandbox)])

    def status(self) -> list[SandboxStatus]:
        self._ensure_ready()
        heads = self._heads()
        d_head = heads[Sandbox.D]
        result = []
        for sb in Sandbox:
            behind, ahead = 0, 0
            if heads[sb] != d_head:
                counts = self.git.out("rev-list", "--left-right", "--count", f"{d_head}...{heads[sb]}")
                behind, ahead = (int(n) for n in counts.split())
            result.append(SandboxStatus(sandbox=sb, branch=sb.branch, head=heads[sb], ahead_of_D=ahead,
                                        behind_D=behind, projects=tuple(projects_at(self.git, heads[sb]))))
        return result

    def diffstat(self, sandbox: Sandbox | str, project: str) -> DiffStat:
        """``git diff D <sandbox> -- projects/<project>``: what the sandbox changes in that project."""
        self._ensure_ready()
        validate_project_name(project)
        heads = self._heads()
        return diff_trees(self.git, heads[Sandbox.D], heads[Sandbox.parse(sandbox)], f"{PROJECTS_DIR}/{project}")

    def reset_to_d(self, sandbox: Sandbox | str) -> str:
        """Point the sandbox at D's head (its own commits leave the branch) and refresh its worktree."""
        sb = Sandbox.parse(sandbox)
        if sb is Sandbox.D:
            raise BadInput("sandbox D cannot be reset to itself")
        self._ensure_ready()
        with self._lock(sb.value):
            for _attempt in range(CAS_ATTEMPTS):
                heads = self._heads()
                if heads[sb] == heads[Sandbox.D] or self._update_ref(sb.ref, heads[Sandbox.D], heads[sb],
                                                                      f"noa: reset {sb.branch} to D"):
                    break
            else:
                raise ConcurrentUpdate(f"{sb.branch} kept moving while resetting it to D")
            self._refresh_worktree(sb)
            return heads[Sandbox.D]

    # moving branches (used by the sandbox merge) -----------------------------------------

    def move_to(self, sandbox: Sandbox | str, new: str, *, expected: str, reason: str) -> bool:
        """Compare-and-swap ``sandbox``'s branch from ``expected`` to commit ``new``, then refresh its worktree.

        Returns False, changing nothing, when the branch is not at ``expected``. If the
        worktree cannot be refreshed, the branch is put back to ``expected`` and the error raised.
        """
        sb = Sandbox.parse(sandbox)
        self._ensure_ready()
        new = self.git.out("rev-parse", "--verify", "--quiet", f"{new}^{{commit}}")
        with self._lock(sb.value):
            if expected == new:
                return self._heads().get(sb) == new
            if not self._update_ref(sb.ref, new, expected, reason):
                return False
            try:
                self._refresh_worktree(sb)
            except BaseException:
                self._update_ref(sb.ref, expected, new, f"undo: {reason}")
                raise
        return True

    def drops(self, sandbox: Sandbox | str) -> list[DropCommit]:
        """The drops ``sandbox`` holds that D does not (newest first); for D, every drop in its history.

        Read from the ``Drop-Id:`` trailers of the commits in ``D..<sandbox>``.
        """
        sb = Sandbox.parse(sandbox)
        self._ensure_ready()
        heads = self._heads()
        revs = [heads[sb]] if sb is Sandbox.D else [heads[sb], "--not", heads[Sandbox.D]]
        return read_drop_commits(self.git, revs)

    def merge_lock(self) -> AbstractContextManager[None]:
        """Held by the sandbox merge for its whole run: one merge at a time per workspace."""
        return self._lock("merge")


__all__ = ["PROJECTS_DIR", "Base", "ConcurrentUpdate", "DiffStat", "DropCommit", "LandedDrop", "SandboxStatus",
           "WorkspaceRepo", "validate_project_name"]
