"""Drops as the unit of the sandbox merge: list them, merge a subset onto D, keep the rest.

A sandbox holds *drops*: each ``noa drop`` lands one commit that replaces
``projects/<name>/`` and carries ``Project:`` and ``Drop-Id:`` trailers (see
:mod:`noa_core.sandbox.repository`). The merge queue accepts or refuses each drop, the way
GitHub's merge queue removes a failing pull request and merges the others:

* :func:`list_drops` reads a sandbox's drops against D: one :class:`DropUnit` per project
  the sandbox changes since it branched from D (``merge-base``). Two drops of one project
  in one sandbox are one unit (the newer replaced the older's whole directory); the older
  ids are kept as ``superseded``.
* :func:`build_drop_integration` merges a subset of the drops onto D in memory: a
  sandbox whose drops are all kept is merged whole (its head becomes a parent, as before);
  otherwise each kept drop is cherry-picked (a three-way ``merge-tree`` of the drop's
  change, base -> sandbox head for its project, onto the running result).
* :func:`rebuild_sandbox` puts a sandbox's held drops back on top of the new D, one
  commit each with the original message and trailers, so the next merge sees only them.

Nothing here moves a ref: the flow does that, journaled (``merge.MergeJournal``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from noa_core.sandbox.conflicts import merge_tree, queue_commit
from noa_core.sandbox.git import Git
from noa_core.sandbox.merge import Integration, IntegrationConflict, project_trees
from noa_core.sandbox.trees import PROJECTS_DIR

_LOG_FORMAT = ("%H%x00%(trailers:key=Drop-Id,valueonly,separator=%x2C)%x00"
               "%(trailers:key=Project,valueonly,separator=%x2C)%x00%x1e")


@dataclass(frozen=True)
class DropUnit:
    """One project's change in one sandbox: what the merge accepts or holds."""

    sandbox: str
    project: str
    drop_id: str                       # the newest drop of this project in the sandbox
    commit: str                        # the commit that landed it
    base: str                          # merge-base of D and the sandbox: the change is base -> tree
    tree: str | None                   # projects/<project> at the sandbox head (None: removed there)
    superseded: tuple[str, ...] = ()   # older drops of the project in the sandbox, replaced by this one

    @property
    def key(self) -> str:
        return self.drop_id

    def as_dict(self, **extra: Any) -> dict[str, Any]:
        return {"sandbox": self.sandbox, "drop_id": self.drop_id, "project": self.project, "commit": self.commit,
                "superseded": list(self.superseded), **extra}


@dataclass
class HeldDrop:
    unit: DropUnit
    reason: str
    project_failing: str

    def as_dict(self) -> dict[str, Any]:
        return self.unit.as_dict(reason=self.reason, failing_project=self.project_failing)


@dataclass
class QueueResult:
    """What the merge queue decided for one run."""

    held: dict[str, HeldDrop] = field(default_factory=dict)       # key -> why
    probes: list[dict[str, Any]] = field(default_factory=list)    # every bisection probe, in order


def _drop_commits(git: Git, d_head: str, head: str) -> list[tuple[str, list[str], str | None]]:
    """(commit, drop ids, project) of the commits in ``D..head``, oldest first."""
    out = git.out("log", "--reverse", f"--format={_LOG_FORMAT}", head, "--not", d_head)
    records = []
    for record in out.split("\x1e"):
        fields = record.strip("\n").split("\0")
        if len(fields) < 3 or not fields[0]:
            continue
        ids = [i.strip() for i in fields[1].split(",") if i.strip()]
        project = fields[2].split(",")[0].strip() or None
        records.append((fields[0], ids, project))
    return records


def list_drops(git: Git, d_head: str, heads: Mapping[str, str], sandboxes: Sequence[str]) -> list[DropUnit]:
    """The drops of ``sandboxes`` (in that order, oldest first) that D lacks; drop ids are unique in the list."""
    units: list[DropUnit] = []
    seen: set[str] = set()
    for name in sandboxes:
        head = heads[name]
        base = git.out("merge-base", d_head, head)
        before, after = project_trees(git, base), project_trees(git, head)
        changed = [p for p in sorted(set(before) | set(after)) if before.get(p) != after.get(p)]
        by_project: dict[str, list[tuple[str, str]]] = {}
        for commit, ids, project in _drop_commits(git, d_head, head):
            if project:
                by_project.setdefault(project, []).extend((commit, i) for i in (ids or [f"{commit[:12]}"]))
        ordered = sorted(changed, key=lambda p: _first_index(by_project.get(p), p))
        for project in ordered:
            landed = by_project.get(project) or [(head, f"{name}:{project}@{head[:12]}")]
            commit, drop_id = landed[-1]
            if drop_id in seen:
                drop_id = f"{drop_id}@{name}"
            seen.add(drop_id)
            units.append(DropUnit(sandbox=name, project=project, drop_id=drop_id, commit=commit, base=base,
                                  tree=after.get(project),
                                  superseded=tuple(dict.fromkeys(i for _c, i in landed[:-1] if i != drop_id))))
    return units


def _first_index(landed: list[tuple[str, str]] | None, project: str) -> tuple[int, str]:
    # keep the landing order within a sandbox; projects changed without a drop commit go last
    return (0, project) if landed else (1, project)


def _with_project(git: Git, commit: str, project: str, subtree: str | None) -> str:
    """The root tree of ``commit`` with ``projects/<project>`` replaced by ``subtree`` (None: removed)."""
    def entries(spec: str) -> list[bytes]:
        proc = git.run("ls-tree", "-z", spec, check=False)
        return [e for e in proc.stdout.split(b"\0") if e] if proc.returncode == 0 else []

    name = project.encode("utf-8", "surrogateescape")
    projects = [e for e in entries(f"{commit}:{PROJECTS_DIR}") if e.partition(b"\t")[2] != name]
    if subtree is not None:
        projects.append(b"040000 tree " + subtree.encode() + b"\t" + name)
    root = [e for e in entries(commit) if e.partition(b"\t")[2] != PROJECTS_DIR.encode()]
    if projects:
        holder = git.out("mktree", "-z", input=b"".join(e + b"\0" for e in projects))
        root.append(b"040000 tree " + holder.encode() + b"\t" + PROJECTS_DIR.encode())
    return git.out("mktree", "-z", input=b"".join(e + b"\0" for e in root))


def _change_commit(git: Git, unit: DropUnit) -> str:
    """A throw-away commit on ``unit.base`` holding exactly the drop's change (its project's new tree)."""
    tree = _with_project(git, unit.base, unit.project, unit.tree)
    return queue_commit(git, tree, [unit.base])


def apply_drop(git: Git, current: str, unit: DropUnit) -> str:
    """Cherry-pick ``unit`` onto commit ``current`` in memory; returns the resulting tree."""
    res = merge_tree(git, current, _change_commit(git, unit))
    if not res.clean:
        raise IntegrationConflict(f"drop {unit.drop_id} ({unit.project}, sandbox {unit.sandbox}) does not apply "
                                  f"cleanly: {', '.join(f.path for f in res.files[:5])}")
    return res.tree


def whole_sandboxes(units: Sequence[DropUnit], keep: Collection[str], sandboxes: Sequence[str]) -> list[str]:
    """The sandboxes none of whose drops is left out (they merge whole, head as a parent)."""
    return [n for n in sandboxes if all(u.key in keep for u in units if u.sandbox == n)]


def drop_merge_message(sandboxes: Sequence[str], heads: Mapping[str, str], merged: Sequence[DropUnit],
                       held: Sequence[HeldDrop], whole: Sequence[str], run_id: str) -> bytes:
    from_ = sorted({u.sandbox for u in merged}, key=list(sandboxes).index)
    lines = [f"noa: merge {len(merged)} drop{'s' if len(merged) != 1 else ''} of {', '.join(from_)} into D"
             + (f" ({len(held)} held)" if held else ""), ""]
    lines += [f"Merged-Sandbox: {n} {heads[n]}" for n in whole]
    for u in merged:
        lines += [f"Merged-Drop: {i}" for i in (*u.superseded, u.drop_id)]
    lines += [f"Held-Drop: {h.unit.drop_id} ({h.unit.sandbox})" for h in held]
    lines.append(f"Merge-Run: {run_id}")
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def build_drop_integration(git: Git, d_head: str, heads: Mapping[str, str], sandboxes: Sequence[str],
                           units: Sequence[DropUnit], keep: Collection[str], message: bytes | None = None) -> Integration:
    """Merge the drops in ``keep`` onto ``d_head`` in memory and write one commit of the result.

    A sandbox none of whose drops is left out is merged whole (its head is a parent of the
    commit); the kept drops of the other sandboxes are cherry-picked one by one.
    """
    import time

    started = time.perf_counter()
    whole = whole_sandboxes(units, keep, sandboxes)
    current = d_head
    for name in sandboxes:
        if name in whole:
            res = merge_tree(git, current, heads[name])
            if not res.clean:
                raise IntegrationConflict(f"sandbox {name} does not merge cleanly: "
                                          f"{', '.join(f.path for f in res.files[:5])}")
            current = queue_commit(git, res.tree, [current, heads[name]])
            continue
        for unit in units:
            if unit.sandbox == name and unit.key in keep:
                current = queue_commit(git, apply_drop(git, current, unit), [current])
    tree = git.out("rev-parse", f"{current}^{{tree}}")
    tips = [heads[n] for n in whole if not git.ok("merge-base", "--is-ancestor", heads[n], d_head)]
    if len(tips) > 1:
        independent = set(git.out("merge-base", "--independent", *tips).split())
        tips = [t for t in tips if t in independent]
    parents = [d_head, *dict.fromkeys(tips)]
    args = ["commit-tree", tree]
    for p in parents:
        args += ["-p", p]
    body = message or b"noa: merge-queue probe (not on any branch)\n"
    commit = git.out(*args, "-F", "-", input=body)
    merged = tuple(n for n in sandboxes if n in whole or any(u.sandbox == n and u.key in keep for u in units))
    return Integration(commit, tree, d_head, merged, tuple(parents), time.perf_counter() - started)


def rebuild_sandbox(git: Git, new_d: str, held: Sequence[HeldDrop], run_id: str) -> str:
    """New D plus one commit per held drop (original message and trailers, ``Held-By:`` added)."""
    current = new_d
    for h in held:
        tree = apply_drop(git, current, h.unit)
        body = git.out("log", "-1", "--format=%B", h.unit.commit).rstrip("\n")
        extra = [f"Drop-Id: {i}" for i in h.unit.superseded] + [f"Held-By: merge {run_id}"]
        if "Drop-Id:" not in body:  # a change landed without a drop id: name it as the merge did
            extra.insert(0, f"Drop-Id: {h.unit.drop_id}")
        if "Project:" not in body:
            extra.insert(0, f"Project: {h.unit.project}")
        message = (body + "\n" + "\n".join(extra) + "\n").encode("utf-8", "surrogateescape")
        current = git.out("commit-tree", tree, "-p", current, "-F", "-", input=message)
    return current


__all__ = [
    "DropUnit",
    "HeldDrop",
    "QueueResult",
    "apply_drop",
    "build_drop_integration",
    "drop_merge_message",
    "list_drops",
    "rebuild_sandbox",
    "whole_sandboxes",
]
