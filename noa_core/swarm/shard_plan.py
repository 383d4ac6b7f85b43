"""Planning shards: test files split into N shards, longest first onto the least-loaded
shard, by the seconds the hive recorded per file (files without a record weigh the mean
of the recorded ones; with no record at all, files weigh their number of tests), with
order-dependent groups kept together."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["Shard", "ShardPlan", "nothing_to_run", "order_prefix", "plan_shards", "whole_suite_plan"]


@dataclass(frozen=True)
class Shard:
    index: int
    files: tuple[str, ...]  # () means the whole suite, as the command alone collects it
    weight: float = 0.0  # planned seconds (or tests, when nothing is recorded)


@dataclass(frozen=True)
class ShardPlan:
    shards: tuple[Shard, ...]
    basis: str  # "durations", "durations+mean", "test counts", "whole suite"
    known: int = 0  # files with recorded durations
    unknown: int = 0
    reason: str = ""  # why the suite is not sharded (whole-suite plans)

    @property
    def sharded(self) -> bool:
        return len(self.shards) > 1 or bool(self.shards and self.shards[0].files)

    def as_dict(self) -> dict[str, Any]:
        return {"basis": self.basis, "known": self.known, "unknown": self.unknown, "reason": self.reason,
                "shards": [{"index": s.index, "files": list(s.files), "weight": round(s.weight, 4)}
                           for s in self.shards]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ShardPlan":
        return cls(shards=tuple(Shard(int(s["index"]), tuple(s["files"]), float(s["weight"])) for s in d["shards"]),
                   basis=d["basis"], known=int(d.get("known", 0)), unknown=int(d.get("unknown", 0)),
                   reason=d.get("reason", ""))


def whole_suite_plan(reason: str) -> ShardPlan:
    return ShardPlan(shards=(Shard(0, ()),), basis="whole suite", reason=reason)


def nothing_to_run(reason: str) -> ShardPlan:
    """The plan of a suite in which collection found no test at all."""
    return ShardPlan(shards=(), basis="no tests", reason=reason)


def order_prefix(files: Sequence[str], dependent: set[str]) -> tuple[str, ...]:
    """The files up to and including the last order-dependent one, in collection order: run
    together and first, they see exactly what they see in a whole run."""
    last = max((i for i, f in enumerate(files) if f in dependent), default=-1)
    return tuple(files[: last + 1])


def plan_shards(files: Sequence[tuple[str, int]] | Mapping[str, int], n: int,
                durations: Mapping[str, float] | None = None, *,
                together: Sequence[Sequence[str]] = ()) -> ShardPlan:
    """Split test files into at most ``n`` shards, longest first onto the least-loaded shard.

    ``files`` maps each file to its number of tests (collection order is kept inside a
    shard); ``durations`` are recorded seconds per file. Each group in ``together`` stays in
    one shard (an order-dependent prefix, see :func:`order_prefix`). Deterministic.
    """
    items = list(files.items()) if isinstance(files, Mapping) else [(str(f), int(c)) for f, c in files]
    if not items:
        return whole_suite_plan("no test files")
    durations = durations or {}
    known = {f: float(durations[f]) for f, _ in items if f in durations}
    mean = sum(known.values()) / len(known) if known else None
    weights: dict[str, float] = {}
    for f, count in items:
        if f in known:
            weights[f] = known[f]
        else:
            weights[f] = mean if mean is not None else float(count)
    if not known:
        basis = "test counts"
    elif len(known) == len(items):
        basis = "durations"
    else:
        basis = "durations+mean"
    order = {f: i for i, (f, _) in enumerate(items)}
    units: list[tuple[str, ...]] = []
    grouped: set[str] = set()
    for group in together:
        unit = tuple(f for f in group if f in order and f not in grouped)
        if len(unit) > 1:
            units.append(unit)
            grouped.update(unit)
    if units:
        basis += f", {sum(len(u) for u in units)} order-dependent files kept together"
    units += [(f,) for f, _ in items if f not in grouped]
    weight = {u: sum(weights[f] for f in u) for u in units}
    n = max(1, min(int(n), len(units)))
    heap = [(0.0, i) for i in range(n)]
    buckets: list[list[str]] = [[] for _ in range(n)]
    loads = [0.0] * n
    for u in sorted(units, key=lambda u: (-weight[u], order[u[0]])):
        load, i = heapq.heappop(heap)
        buckets[i].extend(u)
        loads[i] = load + weight[u]
        heapq.heappush(heap, (loads[i], i))
    shards = tuple(Shard(i, tuple(sorted(b, key=order.__getitem__)), loads[i]) for i, b in enumerate(buckets) if b)
    shards = tuple(replace(s, index=i) for i, s in enumerate(shards))
    return ShardPlan(shards=shards, basis=basis, known=len(known), unknown=len(items) - len(known))
