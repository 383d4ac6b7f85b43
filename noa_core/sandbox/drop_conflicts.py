"""Conflicts, per drop: the drops that conflict are held, the rest of the batch goes on.

The conflict check (:mod:`noa_core.sandbox.conflicts`) finds files in conflict between D
and each sandbox, and between sandboxes. Every drop replaces one project's directory, so
a conflicting file under ``projects/<name>/`` belongs to exactly one drop per sandbox.
Like a merge queue, which takes pull requests in the order they joined it and removes one
that no longer merges:

* a drop that conflicts with D (D changed its project since the sandbox branched) is held;
  it has to be dropped again onto the current D;
* of the drops of one project that conflict with each other, the one that landed first is
  kept and every later one that conflicts with a kept drop is held;
* the other drops are merged as usual (validated, and held in turn if their tests fail).

When a conflict cannot be pinned on drops (a file outside ``projects/``, a conflict only
the cumulative queue found, a sandbox change without a drop) nothing is held here and the
merge refuses as a whole, as it always did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from noa_core.sandbox.conflicts import Conflict, ConflictReport
from noa_core.sandbox.drop_queue import DropUnit, HeldDrop
from noa_core.sandbox.git import Git, GitError
from noa_core.sandbox.merge import MergePlan, Verdict
from noa_core.sandbox.trees import PROJECTS_DIR

_ORDER = {"A": 0, "B": 1, "C": 2}


@dataclass
class ConflictHolds:
    """The drops held for conflicts, with the files each conflicts in."""

    held: dict[str, HeldDrop] = field(default_factory=dict)
    files: dict[str, tuple[str, ...]] = field(default_factory=dict)   # drop key -> conflicting files


def project_of(path: str) -> str | None:
    """``projects/<name>/...`` -> ``name``; None for anything outside a project directory."""
    parts = path.split("/")
    return parts[1] if len(parts) >= 3 and parts[0] == PROJECTS_DIR and parts[1] else None


def _files(conflicts: Sequence[Conflict], *names: str) -> tuple[str, ...]:
    return tuple(sorted({c.path for c in conflicts if all(n in c.sandboxes for n in names)}))


def _listed(files: Sequence[str]) -> str:
    return ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")


def hold_conflicting_drops(git: Git, units: Sequence[DropUnit], check: ConflictReport) -> ConflictHolds | None:
    """The drops to hold so that the rest merges without conflict; None when that cannot be said."""
    by_place = {(u.sandbox, u.project): u for u in units}
    per_project: dict[str, list[Conflict]] = {}
    for c in check.conflicts:
        project = project_of(c.path)
        if project is None or c.found_by != "pair":
            return None
        if any(s != "D" and (s, project) not in by_place for s in c.sandboxes):
            return None
        per_project.setdefault(project, []).append(c)

    holds = ConflictHolds()
    for project, conflicts in sorted(per_project.items()):
        stale = sorted({s for c in conflicts if "D" in c.sandboxes for s in c.sandboxes if s != "D"},
                       key=_ORDER.__getitem__)
        for name in stale:
            unit = by_place[(name, project)]
            files = _files(conflicts, "D", name)
            holds.held[unit.key] = HeldDrop(unit, f"D changed {project} since sandbox {name} branched "
                                                  f"({len(files)} conflicting file{'s' if len(files) != 1 else ''}: "
                                                  f"{_listed(files)}); drop it again onto the current D", project)
            holds.files[unit.key] = files
        contested = {s for c in conflicts if "D" not in c.sandboxes for s in c.sandboxes} - set(stale)
        kept: list[DropUnit] = []
        for name in sorted(contested, key=lambda s: (_landed_at(git, by_place[(s, project)]), _ORDER[s])):
            unit = by_place[(name, project)]
            against = [k for k in kept if _files(conflicts, k.sandbox, name)]
            if not against:
                kept.append(unit)
                continue
            first = against[0]
            files = _files(conflicts, first.sandbox, name)
            holds.held[unit.key] = HeldDrop(unit, f"conflicts with drop {first.drop_id} of sandbox {first.sandbox} "
                                                  f"in {_listed(files)}; that drop of {project} landed first",
                                            project)
            holds.files[unit.key] = tuple(sorted({f for k in against for f in _files(conflicts, k.sandbox, name)}))
    return holds


def conflict_verdicts(plan: MergePlan, units: Sequence[DropUnit], held: dict[str, HeldDrop],
                      holds: ConflictHolds) -> dict[str, Verdict]:
    """``manual resolution needed`` for each sandbox of which nothing merged and a drop was held for a conflict."""
    verdicts: dict[str, Verdict] = {}
    for name in plan.to_merge:
        mine = [u for u in units if u.sandbox == name]
        conflicted = [u for u in mine if u.key in holds.held]
        if not conflicted or any(u.key not in held for u in mine):
            continue
        files = tuple(sorted({f for u in conflicted for f in holds.files.get(u.key, ())}))
        reasons = "; ".join(f"{h.unit.drop_id} ({h.unit.project}): {h.reason}"
                            for h in (held[u.key] for u in mine))
        verdicts[name] = Verdict("manual resolution needed", f"held: {reasons}", files)
    return verdicts


def _landed_at(git: Git, unit: DropUnit) -> int:
    """When the drop's commit was made (seconds since the epoch): the queue's order."""
    try:
        return int(git.out("log", "-1", "--format=%ct", unit.commit).strip() or 0)
    except (GitError, ValueError):  # an unreadable commit sorts by sandbox order only
        return 0


__all__ = ["ConflictHolds", "conflict_verdicts", "hold_conflicting_drops", "project_of"]
