"""The commits that land drops: their message and trailers, what a landing reports, and reading them back.

A landing commit's message is the drop's subject followed by the trailers ``Project:``,
``Sandbox:``, ``Drop-Id:`` and ``Source:``; ``noa sandbox list`` and the merge queue read the
``Drop-Id:`` trailers back (:func:`read_drop_commits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from noa_core.sandbox.git import Git
from noa_core.sandbox.paths import SkippedPath
from noa_core.sandbox.refs import one_line
from noa_core.sandbox.sandboxes import Sandbox


@dataclass(frozen=True)
class LandedDrop:
    """The outcome of :meth:`~noa_core.sandbox.repository.WorkspaceRepo.land_drop`.

    ``files_changed``/``insertions``/``deletions`` are ``git diff D <branch> --
    projects/<project>`` right after landing (for a landing into D itself: against D's
    previous head). ``is_update`` is true when D already had the project.
    """

    commit: str
    parent: str
    branch: str
    sandbox: Sandbox
    project: str
    files_changed: int
    insertions: int
    deletions: int
    is_update: bool
    fast_forwarded: bool = False   # the sandbox was behind D with no own commits: moved to D first
    unchanged: bool = False        # the branch already had exactly this content: no new commit
    file_count: int = 0
    skipped: tuple[SkippedPath, ...] = ()
    seconds: float = 0.0


@dataclass(frozen=True)
class DropCommit:
    """A commit that landed a drop (it carries a ``Drop-Id:`` trailer)."""

    commit: str
    drop_id: str
    project: str | None
    subject: str


def landing_message(message: str, project: str, sandbox: Sandbox, drop_id: str | None,
                    source: str | None) -> bytes:
    """The commit message of a landing: ``message`` (or ``land <project>``) and its trailers."""
    subject = message.replace("\0", " ").strip() or f"land {project}"
    trailers = [f"Project: {project}", f"Sandbox: {sandbox.value} ({sandbox.branch})"]
    if drop_id:
        trailers.append(f"Drop-Id: {one_line(drop_id)}")
    if source:
        trailers.append(f"Source: {one_line(source)}")
    return (subject + "\n\n" + "\n".join(trailers) + "\n").encode("utf-8", "surrogateescape")


def read_drop_commits(git: Git, revs: Sequence[str]) -> list[DropCommit]:
    """The drops landed by the commits ``git log <revs>`` lists (newest first), from their trailers."""
    fmt = "%H%x00%s%x00%(trailers:key=Drop-Id,valueonly,separator=%x2C)%x00" \
          "%(trailers:key=Project,valueonly,separator=%x2C)%x00%x1e"
    out = git.out("log", f"--format={fmt}", *revs)
    result = []
    for record in out.split("\x1e"):
        fields = record.strip("\n").split("\0")
        if len(fields) < 4 or not fields[2].strip():
            continue
        commit, subject, drop_ids, projects = fields[:4]
        project = projects.split(",")[0].strip() or None
        for drop_id in drop_ids.split(","):
            if drop_id.strip():
                result.append(DropCommit(commit=commit, drop_id=drop_id.strip(), project=project,
                                         subject=subject))
    return result
