"""The integration commit: sandboxes merged onto D in memory, one commit of the result, on no branch.

:func:`build_integration` merges sandboxes onto D with plumbing only (one
``merge-tree --write-tree`` per sandbox, as the merge queue does) and writes one commit
whose tree is the result and whose parents are D and the sandbox heads (an octopus-like
merge commit; D stays the first parent). No ref, index or worktree is touched: the
commit becomes the integration line only when the flow moves D onto it. :func:`pin` keeps a
candidate reachable while it is in use.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from noa_core.sandbox.conflicts import merge_tree, queue_commit
from noa_core.sandbox.git import Git
from noa_core.sandbox.merge.errors import IntegrationConflict
from noa_core.sandbox.repository import WorkspaceRepo


@dataclass(frozen=True)
class Integration:
    """A candidate integration commit (on no branch until D is moved onto it)."""

    commit: str
    tree: str
    d_head: str
    sandboxes: tuple[str, ...]
    parents: tuple[str, ...]
    seconds: float


def merge_message(sandboxes: Sequence[str], heads: Mapping[str, str], drops: Mapping[str, Sequence[str]],
                  run_id: str) -> bytes:
    lines = [f"noa: merge sandbox{'es' if len(sandboxes) != 1 else ''} {', '.join(sandboxes)} into D", ""]
    for name in sandboxes:
        lines.append(f"Merged-Sandbox: {name} {heads[name]}")
    for name in sandboxes:
        for drop_id in drops.get(name, ()):
            lines.append(f"Merged-Drop: {drop_id}")
    lines.append(f"Merge-Run: {run_id}")
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def build_integration(repo: WorkspaceRepo, d_head: str, heads: Mapping[str, str], sandboxes: Sequence[str],
                      message: bytes | None = None) -> Integration:
    """Merge ``sandboxes`` (in order) onto ``d_head`` in memory and write one commit of the result.

    With no sandboxes the "integration" is D itself. Raises :class:`IntegrationConflict`
    when a step does not merge cleanly.
    """
    started = time.perf_counter()
    git = repo.git
    if not sandboxes:
        tree = git.out("rev-parse", f"{d_head}^{{tree}}")
        return Integration(d_head, tree, d_head, (), (d_head,), time.perf_counter() - started)
    current = d_head
    for name in sandboxes:
        res = merge_tree(git, current, heads[name])
        if not res.clean:
            raise IntegrationConflict(f"sandbox {name} does not merge cleanly onto D + "
                                      f"{', '.join(sandboxes[:sandboxes.index(name)]) or 'nothing'}: "
                                      f"{', '.join(f.path for f in res.files[:5])}")
        current = queue_commit(git, res.tree, [current, heads[name]])
    tree = git.out("rev-parse", f"{current}^{{tree}}")
    tips = [heads[n] for n in sandboxes if not git.ok("merge-base", "--is-ancestor", heads[n], d_head)]
    if len(tips) > 1:  # a sandbox contained in another adds nothing as a parent
        independent = set(git.out("merge-base", "--independent", *tips).split())
        tips = [t for t in tips if t in independent]
    parents = [d_head, *dict.fromkeys(tips)]
    body = message or merge_message(sandboxes, heads, {}, "-")
    args = ["commit-tree", tree]
    for p in parents:
        args += ["-p", p]
    commit = git.out(*args, "-F", "-", input=body)
    return Integration(commit, tree, d_head, tuple(sandboxes), tuple(parents), time.perf_counter() - started)


def pin(git: Git, commit: str, label: str) -> str:
    """Keep ``commit`` reachable (from a private ref ``ensure()`` removes after an hour) while it is in use."""
    ref = f"refs/noa/tmp/{int(time.time())}-{label}-{uuid.uuid4().hex[:8]}"
    git.run("update-ref", ref, commit)
    return ref


def unpin(git: Git, ref: str) -> None:
    git.run("update-ref", "-d", ref, check=False)
