"""What one ``noa merge [A B C]`` run looks at: the sandboxes asked for, those ahead of D, the heads pinned."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from noa_core.errors import BadInput
from noa_core.sandbox.repository import WorkspaceRepo
from noa_core.sandbox.sandboxes import WORK_SANDBOXES, Sandbox


@dataclass(frozen=True)
class MergePlan:
    """What one merge run looks at: heads pinned at the start, what to merge, what is skipped."""

    requested: tuple[str, ...]
    to_merge: tuple[str, ...]          # requested and ahead of D, in the order A, B, C
    not_ahead: tuple[str, ...]         # requested but with nothing D lacks
    d_head: str
    heads: dict[str, str]              # every work sandbox's head at planning time
    explicit: bool                     # the sandboxes were named on the command line


def parse_requested(names: Sequence[str] | None) -> tuple[tuple[str, ...], bool]:
    """``["a", "C"]`` -> ``("A", "C")``; none -> every work sandbox. D or an unknown name is :class:`BadInput`."""
    if not names:
        return tuple(s.value for s in WORK_SANDBOXES), False
    out: list[str] = []
    for name in names:
        sb = Sandbox.parse(name)
        if sb is Sandbox.D:
            raise BadInput("D is the integration sandbox: name the sandboxes to merge into it (A, B, C)")
        if sb.value not in out:
            out.append(sb.value)
    return tuple(s.value for s in WORK_SANDBOXES if s.value in out), True


def plan_merge(repo: WorkspaceRepo, names: Sequence[str] | None) -> MergePlan:
    requested, explicit = parse_requested(names)
    statuses = {s.sandbox.value: s for s in repo.status()}
    d_head = statuses["D"].head
    heads = {s.value: statuses[s.value].head for s in WORK_SANDBOXES}
    to_merge = tuple(n for n in requested if statuses[n].ahead_of_D > 0)
    not_ahead = tuple(n for n in requested if n not in to_merge)
    return MergePlan(requested=requested, to_merge=to_merge, not_ahead=not_ahead, d_head=d_head, heads=heads,
                     explicit=explicit)
