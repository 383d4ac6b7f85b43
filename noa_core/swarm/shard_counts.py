"""Merging shard results: the shards' counts (each from pytest's own summary) added up and
their outcomes combined, in pytest's wording."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from noa_core.swarm.shard_runs import ShardRun
from noa_core.validation.counts import TestCounts

__all__ = ["aggregate", "format_counts"]


def format_counts(c: TestCounts) -> str:
    """pytest's wording of counts (``3 passed, 1 failed, 4 subtests passed``)."""
    parts = [(c.failed, "failed"), (c.passed, "passed"), (c.skipped, "skipped"), (c.deselected, "deselected"),
             (c.xfailed, "xfailed"), (c.xpassed, "xpassed"), (c.warnings, "warnings"), (c.errors, "errors"),
             (c.subtests_failed, "subtests failed"), (c.subtests_passed, "subtests passed"),
             (c.subtests_skipped, "subtests skipped")]
    text = ", ".join(f"{n} {w}" for n, w in parts if n)
    text += "".join(f", {n} {k}" for k, n in c.other if n and k != "collected")
    return text or "no tests ran"

_OUTCOME_RANK = {"unknown": 6, "timeout": 5, "error": 4, "failed": 3, "passed": 2, "no tests": 1}


def aggregate(runs: Sequence[ShardRun]) -> tuple[TestCounts | None, str]:
    """Sum of the shards' counts (each from pytest's own summary) and the combined outcome:
    the worst of them, except that shards with no tests do not hide ones that passed."""
    if not runs:
        return None, "no tests"
    total: TestCounts | None = None
    for r in runs:
        if r.counts is not None:
            total = r.counts if total is None else total + r.counts
    outcome = max((r.outcome for r in runs), key=lambda o: _OUTCOME_RANK.get(o, 4))
    if total is not None:
        line = format_counts(total) + (f" ({len(runs)} shards)" if len(runs) > 1 else "")
        total = replace(total, summary_line=line if len(runs) > 1 else total.summary_line, tool="pytest")
    if any(r.counts is None and r.outcome != "no tests" for r in runs) and outcome in ("passed", "no tests"):
        outcome = "error"  # a shard without a summary line cannot be counted
    return total, outcome
