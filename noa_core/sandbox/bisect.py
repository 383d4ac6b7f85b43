"""Isolating the culprit of a failed batch, the way merge queues (Zuul, Mergify) do.

A batch merged onto D failed its tests. :func:`find_culprit` tests subsets of the batch
on top of D and names a smallest failing subset: one item when one alone breaks the
tests, a pair when each passes alone and only the combination fails. The sandbox merge
bisects *drops* (:mod:`noa_core.sandbox.drop_holding`: the drops that change a failing project);
the items are plain strings, so sandboxes work the same way. The search halves the batch (test the left half, then the right) and,
when neither half fails alone, finds the part of each half the other needs, so it needs
O(k log n) probes for a culprit of k sandboxes in a batch of n (QuickXplain's scheme).

The probe ``fails(subset)`` is given by the caller (it merges the subset onto D and runs
the failing projects' tests); results are memoised, and D alone (the empty subset) is
probed first: a failure there blames no sandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Probe:
    sandboxes: tuple[str, ...]
    failed: bool
    detail: str = ""


@dataclass(frozen=True)
class Culprit:
    """What bisection found. ``sandboxes`` is empty when D alone already fails."""

    sandboxes: tuple[str, ...]
    reason: str
    probes: tuple[Probe, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"sandboxes": list(self.sandboxes), "reason": self.reason,
                "probes": [{"sandboxes": list(p.sandboxes), "failed": p.failed, "detail": p.detail}
                           for p in self.probes]}


ProbeFn = Callable[[tuple[str, ...]], "bool | tuple[bool, str]"]


def find_culprit(batch: Sequence[str], fails: ProbeFn, *, batch_detail: str = "",
                 noun: tuple[str, str] = ("sandbox", "sandboxes")) -> Culprit:
    """A smallest failing subset of ``batch`` (which, as a whole, is known to fail).

    ``noun`` names the items in the reason (the merge bisects sandboxes or drops)."""
    order = {name: i for i, name in enumerate(batch)}
    probes: list[Probe] = []
    memo: dict[frozenset[str], bool] = {frozenset(batch): True}
    if batch:
        probes.append(Probe(tuple(batch), True, batch_detail or "the whole batch"))

    def canon(items: Sequence[str]) -> tuple[str, ...]:
        return tuple(sorted(set(items), key=order.__getitem__))

    def test(items: Sequence[str]) -> bool:
        key = frozenset(items)
        if key not in memo:
            outcome = fails(canon(items))
            failed, detail = outcome if isinstance(outcome, tuple) else (bool(outcome), "")
            memo[key] = bool(failed)
            probes.append(Probe(canon(items), bool(failed), detail))
        return memo[key]

    def search(candidates: tuple[str, ...], fixed: tuple[str, ...]) -> tuple[str, ...]:
        # known: fixed + candidates fails, fixed alone passes
        if len(candidates) == 1:
            return candidates
        half = len(candidates) // 2
        left, right = candidates[:half], candidates[half:]
        if test(fixed + left):
            return search(left, fixed)
        if test(fixed + right):
            return search(right, fixed)
        needed_left = search(left, fixed + right)
        if test(fixed + needed_left):  # not monotone: that part fails on its own after all
            return search(needed_left, fixed)
        needed_right = search(right, fixed + needed_left)
        return needed_left + needed_right

    if not batch:
        return Culprit((), f"nothing was merged, so no {noun[0]} can be blamed", tuple(probes))
    if test(()):
        return Culprit((), f"the failing tests already fail on D without any {noun[0]}", tuple(probes))
    found = canon(search(tuple(batch), ()))
    if len(found) > 1:
        # say "each passes alone" only after seeing it (subsets need not behave monotonically)
        alone_fails = [name for name in found if test((name,))]
        if alone_fails:
            found = (alone_fails[0],)
    if len(found) == 1:
        reason = f"{noun[0]} {found[0]} alone on top of D fails the tests"
    else:
        alone = " and ".join(found)
        reason = (f"{noun[1]} {alone} each pass on top of D but fail together: "
                  "the combination breaks the tests")
    return Culprit(found, reason, tuple(probes))
