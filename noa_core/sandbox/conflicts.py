"""Conflict check between sandboxes, without touching any worktree.

Every check is one ``git merge-tree --write-tree --name-only -z --messages`` (git >= 2.38):
git merges two commits in memory, writes the result's objects, and reports the files
left in conflict plus one informational message per event. Exit status 1 means
conflicts, 0 a clean merge; anything else is an error.

:func:`check_conflicts` runs, for the requested sandboxes (in the order A, B, C):

* every pair, D included (``D x A``, ``A x B``, ...): the conflict matrix;
* the speculative merge queue of a merge train: D+A, then (D+A)+B, then ((D+A)+B)+C, each
  step a throw-away commit whose parents are the previous step and the sandbox, so git
  finds the right merge bases. A sandbox that conflicts in the queue is left out of the
  following steps, which tells which sandboxes remain mergeable together.

A conflict found only in the queue (not between any two) is attributed to the sandboxes
already in the queue that change the same path.

The kind of each conflict comes from git's messages: ``content`` (both changed the same
lines), ``add/add``, ``modify/delete``, ``rename/delete``, ``rename/rename``,
``file/directory``, ``binary``, ``distinct types``, ``mode`` ...; a path git lists as
conflicted without a message is ``unknown``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from noa_core.sandbox.git import Git, GitError
from noa_core.sandbox.repository import WorkspaceRepo
from noa_core.sandbox.sandboxes import Sandbox

QUEUE_MESSAGE = b"noa: speculative merge-queue step (not on any branch)\n"
_WEAK_KINDS = ("content", "binary")  # reported together with a structural kind, the structural one wins


@dataclass(frozen=True)
class ConflictFile:
    """One path git left in conflict, and why."""

    path: str
    kind: str
    kinds: tuple[str, ...] = ()     # every kind git reported for the path
    message: str = ""               # git's first CONFLICT message naming the path


@dataclass(frozen=True)
class MergeTreeResult:
    """One in-memory merge by ``git merge-tree``."""

    ours: str
    theirs: str
    tree: str                       # the merged tree (with conflict markers when not clean)
    clean: bool
    files: tuple[ConflictFile, ...]
    seconds: float


@dataclass(frozen=True)
class Conflict:
    """A file in conflict between sandboxes: the record printed by ``noa merge --json``."""

    sandboxes: tuple[str, ...]      # sorted, D first when present
    path: str
    kind: str
    message: str = ""
    found_by: str = "pair"          # "pair" or "queue"

    def as_dict(self) -> dict[str, Any]:
        return {"sandboxes": list(self.sandboxes), "path": self.path, "kind": self.kind,
                "message": self.message, "found_by": self.found_by}


@dataclass(frozen=True)
class PairCheck:
    left: str
    right: str
    clean: bool
    files: tuple[ConflictFile, ...]
    seconds: float


@dataclass(frozen=True)
class QueueStep:
    """One step of the speculative merge queue: ``sandbox`` merged onto D + ``onto``."""

    sandbox: str
    onto: tuple[str, ...]
    clean: bool
    files: tuple[ConflictFile, ...]
    commit: str | None              # the throw-away commit of this step, input of the next one
                                    # (None when it conflicted, and for the last step)
    seconds: float


@dataclass(frozen=True)
class ConflictReport:
    """Everything the conflict check found for one set of requested sandboxes."""

    sandboxes: tuple[str, ...]
    d_head: str
    heads: dict[str, str]
    pairs: tuple[PairCheck, ...]
    queue: tuple[QueueStep, ...]
    conflicts: tuple[Conflict, ...]
    mergeable: tuple[str, ...]      # the sandboxes the queue could merge together, in order
    merge_tree_calls: int
    seconds: float
    per_sandbox: dict[str, tuple[str, ...]] = field(default_factory=dict)  # sandbox -> files in conflict

    @property
    def has_conflicts(self) -> bool:
        return bool(self.conflicts)

    def conflicting_with(self, sandbox: str) -> tuple[str, ...]:
        others = {s for c in self.conflicts if sandbox in c.sandboxes for s in c.sandboxes if s != sandbox}
        return tuple(s for s in ("D", "A", "B", "C") if s in others)

    def matrix(self) -> list[dict[str, str]]:
        """One row per sandbox (D first), one column per sandbox: what conflicts between the two."""
        names = ("D", *self.sandboxes)
        cells: dict[tuple[str, str], list[Conflict]] = {}
        for c in self.conflicts:
            for a in c.sandboxes:
                for b in c.sandboxes:
                    if a != b:
                        cells.setdefault((a, b), []).append(c)
        rows = []
        for a in names:
            row = {"sandbox": a}
            for b in names:
                if a == b:
                    row[b] = "-"
                    continue
                found = cells.get((a, b), [])
                if not found:
                    row[b] = "clean"
                else:
                    kinds = sorted({c.kind for c in found})
                    paths = sorted({c.path for c in found})
                    row[b] = f"{len(paths)} file{'s' if len(paths) != 1 else ''} ({', '.join(kinds)}): " \
                             + ", ".join(paths[:5]) + (" ..." if len(paths) > 5 else "")
            rows.append(row)
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "sandboxes": list(self.sandboxes), "d_head": self.d_head, "heads": dict(self.heads),
            "conflicts": [c.as_dict() for c in self.conflicts],
            "per_sandbox": {k: list(v) for k, v in self.per_sandbox.items()},
            "pairs": [{"sandboxes": [p.left, p.right], "clean": p.clean, "seconds": round(p.seconds, 4),
                       "files": [{"path": f.path, "kind": f.kind} for f in p.files]} for p in self.pairs],
            "queue": [{"sandbox": q.sandbox, "onto": ["D", *q.onto], "clean": q.clean,
                       "seconds": round(q.seconds, 4),
                       "files": [{"path": f.path, "kind": f.kind} for f in q.files]} for q in self.queue],
            "mergeable": list(self.mergeable), "matrix": self.matrix(),
            "merge_tree_calls": self.merge_tree_calls, "seconds": round(self.seconds, 4),
        }


def _kind_of(conflict_type: str, message: str) -> str | None:
    """``CONFLICT (add/add): ...`` -> ``add/add``; ``Auto-merging`` and warnings -> None."""
    label = None
    if message.startswith("CONFLICT (") and ")" in message:
        label = message[len("CONFLICT ("):message.index(")")]
    elif conflict_type.startswith("CONFLICT (") and conflict_type.endswith(")"):
        label = conflict_type[len("CONFLICT ("):-1]
    if label is None:
        return None
    return {"contents": "content"}.get(label, label)


def parse_merge_tree(raw: bytes) -> tuple[str, list[str], list[tuple[tuple[str, ...], str, str]]]:
    """Split ``merge-tree --write-tree --name-only -z --messages`` output.

    Returns (tree, conflicted paths, messages as (paths, type, text)). The format is the
    tree id, NUL; each conflicted path, NUL; an empty field; then per message
    ``<count> NUL <path>... NUL <type> NUL <text> NUL``.
    """
    fields = raw.split(b"\0")
    tree = fields[0].decode("ascii").strip()
    i = 1
    paths: list[str] = []
    while i < len(fields) and fields[i] != b"":
        paths.append(fields[i].decode("utf-8", "surrogateescape"))
        i += 1
    i += 1  # the empty field that ends the conflicted-file list
    messages: list[tuple[tuple[str, ...], str, str]] = []
    while i < len(fields):
        count_field = fields[i].strip()
        if not count_field:
            i += 1
            continue
        count = int(count_field)
        names = tuple(f.decode("utf-8", "surrogateescape") for f in fields[i + 1:i + 1 + count])
        ctype = fields[i + 1 + count].decode("utf-8", "replace") if i + 1 + count < len(fields) else ""
        text = fields[i + 2 + count].decode("utf-8", "replace").strip() if i + 2 + count < len(fields) else ""
        messages.append((names, ctype, text))
        i += 3 + count
    return tree, paths, messages


def classify(paths: list[str], messages: list[tuple[tuple[str, ...], str, str]]) -> tuple[ConflictFile, ...]:
    """Give every conflicted path its kind(s) from the messages naming it."""
    kinds: dict[str, list[str]] = {p: [] for p in paths}
    first_message: dict[str, str] = {}
    for names, ctype, text in messages:
        kind = _kind_of(ctype, text)
        if kind is None:
            continue
        for name in names:
            if name in kinds:
                if kind not in kinds[name]:
                    kinds[name].append(kind)
                first_message.setdefault(name, text)
    out = []
    for p in paths:
        found = kinds[p]
        strong = [k for k in found if k not in _WEAK_KINDS]
        kind = strong[0] if strong else ("binary" if "binary" in found else found[0] if found else "unknown")
        out.append(ConflictFile(path=p, kind=kind, kinds=tuple(found), message=first_message.get(p, "")))
    return tuple(out)


def merge_tree(git: Git, ours: str, theirs: str) -> MergeTreeResult:
    """Merge two commits in memory with ``git merge-tree --write-tree``."""
    started = time.perf_counter()
    args = ("merge-tree", "--write-tree", "--name-only", "-z", "--messages", ours, theirs)
    proc = git.run(*args, check=False)
    if proc.returncode not in (0, 1):
        raise GitError(args, proc.returncode, proc.stderr.decode("utf-8", "replace"))
    tree, paths, messages = parse_merge_tree(proc.stdout)
    files = classify(paths, messages) if proc.returncode == 1 else ()
    if proc.returncode == 1 and not files:  # conflicts without a path (should not happen): say so
        files = (ConflictFile(path="(unknown)", kind="unknown", message="; ".join(m[2] for m in messages)),)
    return MergeTreeResult(ours=ours, theirs=theirs, tree=tree, clean=proc.returncode == 0, files=files,
                           seconds=time.perf_counter() - started)


def queue_commit(git: Git, tree: str, parents: list[str], message: bytes = QUEUE_MESSAGE) -> str:
    """A throw-away commit of ``tree`` (on no branch; gc drops it after its prune delay)."""
    args = ["commit-tree", tree]
    for p in parents:
        args += ["-p", p]
    return git.out(*args, "-F", "-", input=message)


def _sorted_names(names: set[str] | tuple[str, ...]) -> tuple[str, ...]:
    order = {"D": 0, "A": 1, "B": 2, "C": 3}
    return tuple(sorted(set(names), key=lambda n: order.get(n, 9)))


def _changed_paths(git: Git, base: str, head: str) -> set[str]:
    raw = git.run("diff-tree", "-r", "-z", "--name-only", "--no-renames", base, head).stdout
    return {p.decode("utf-8", "surrogateescape") for p in raw.split(b"\0") if p}


def check_conflicts(repo: WorkspaceRepo, sandboxes: list[Sandbox | str] | tuple[Sandbox | str, ...],
                    *, heads: dict[str, str] | None = None, d_head: str | None = None) -> ConflictReport:
    """Pairwise and cumulative ``merge-tree`` checks of ``sandboxes`` against D and each other.

    ``heads``/``d_head`` pin the commits to check (default: the branches' current heads).
    Nothing but git objects is written: no ref, no index, no worktree.
    """
    started = time.perf_counter()
    names = [Sandbox.parse(s).value for s in sandboxes]
    if "D" in names:
        raise ValueError("D is the integration line, not a sandbox to merge into it")
    names = list(_sorted_names(tuple(names)))
    git = repo.git
    given = dict(heads or {})
    if d_head is None or any(n not in given for n in names):
        current = repo.heads()
        given = {**current, **given}
        d_head = d_head or current["D"]
    d = d_head
    tips = {n: given[n] for n in names}
    tips_with_d = {"D": d, **tips}
    calls = 0

    pairs: list[PairCheck] = []
    pair_results: dict[frozenset[str], MergeTreeResult] = {}
    for left, right in combinations(["D", *names], 2):
        res = merge_tree(git, tips_with_d[left], tips_with_d[right])
        calls += 1
        pairs.append(PairCheck(left, right, res.clean, res.files, res.seconds))
        pair_results[frozenset((left, right))] = res

    def in_pair(a: str, b: str, path: str) -> bool:
        return any(f.path == path for f in pair_results[frozenset((a, b))].files)

    conflicts: dict[tuple[tuple[str, ...], str], Conflict] = {}
    for p in pairs:
        for f in p.files:
            key = (_sorted_names((p.left, p.right)), f.path)
            conflicts.setdefault(key, Conflict(key[0], f.path, f.kind, f.message, "pair"))

    queue: list[QueueStep] = []
    merged: list[str] = []
    current = d
    for name in names:
        if merged:
            res = merge_tree(git, current, tips[name])
            calls += 1
        else:
            res = pair_results[frozenset(("D", name))]  # D + first sandbox is the D x sandbox pair
        commit = None
        if res.clean and name != names[-1]:  # the last step's commit would be input to nothing
            commit = queue_commit(git, res.tree, [current, tips[name]])
            current = commit
        queue.append(QueueStep(name, tuple(merged), res.clean, res.files, commit, res.seconds))
        if res.clean:
            merged.append(name)
            continue
        for f in res.files:  # attribute what no pair check explains
            if in_pair("D", name, f.path) or any(in_pair(m, name, f.path) for m in merged):
                continue
            partners = [m for m in merged if f.path in _changed_paths(git, d, tips[m])] or ["D", *merged]
            key = (_sorted_names((name, *partners)), f.path)
            conflicts.setdefault(key, Conflict(key[0], f.path, f.kind, f.message, "queue"))

    ordered = sorted(conflicts.values(), key=lambda c: (c.sandboxes, c.path))
    per_sandbox: dict[str, tuple[str, ...]] = {}
    for n in ["D", *names]:
        files_of = sorted({c.path for c in ordered if n in c.sandboxes})
        if files_of:
            per_sandbox[n] = tuple(files_of)
    return ConflictReport(sandboxes=tuple(names), d_head=d, heads=tips, pairs=tuple(pairs), queue=tuple(queue),
                          conflicts=tuple(ordered), mergeable=tuple(merged), merge_tree_calls=calls,
                          seconds=time.perf_counter() - started, per_sandbox=per_sandbox)
