"""Finishing a Python test check: the shards aggregated into one result, shard failures
confirmed by a whole-suite run, failures re-run once (failed, then passed on identical
content = flaky), and what was learnt recorded in the hive."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from noa_core.swarm.interface import CheckResult, SwarmContext
from noa_core.swarm.python_tests import (
    ORDER_DEPENDENT,
    WHOLE_RUN_FAILURE,
    TestsJob,
    abort_tests,
    run_test_shard,
)
from noa_core.swarm.shard_counts import aggregate
from noa_core.swarm.shard_plan import ShardPlan, whole_suite_plan
from noa_core.swarm.shard_runs import MAX_RERUN_IDS, ShardRun, rerun_failed
from noa_core.swarm.suite_collection import Collection

__all__ = ["finish_tests"]


def _provider_candidates(node: str, runs: Sequence[ShardRun], ordered: Sequence[str],
                         known: Mapping[str, Any] | None) -> list[str]:
    """Files that ran before ``node``'s file in a whole run but not in its shard: one of them
    provides what it needs. Narrowed with what earlier observations said, when they agree."""
    consumer = node.split("::", 1)[0]
    shard = next((r for r in runs if consumer in r.files), None)
    if shard is None or consumer not in ordered:
        return []
    before = ordered[: ordered.index(consumer)]
    candidates = [f for f in before if f not in shard.files]
    previous = set((known or {}).get("needs_one_of", []))
    narrowed = [f for f in candidates if f in previous]
    return narrowed or candidates


def _reason(outcome: str, runs: Sequence[ShardRun], job: TestsJob) -> str:
    if outcome == "timeout":
        return f"timed out (wall limit {job.exec_limits.wall_seconds:.0f} s)"
    if outcome == "error":
        bad = next((r for r in runs if r.outcome == "error" or r.counts is None), None)
        if bad is not None:
            return f"pytest exited {bad.returncode} (internal, usage or collection error; log {bad.log_path})"
    if outcome == "no tests":
        return "pytest collected no tests"
    return ""


def finish_tests(job: TestsJob, ctx: SwarmContext, plan: ShardPlan, runs: Sequence[ShardRun],
                 collection: Collection | None = None) -> CheckResult:
    """Aggregate the shards; confirm shard failures by a whole run; re-run failures once
    (failed, then passed on identical content = flaky); record durations, failures and what
    was learnt in the hive; store the result; release the lease."""
    t0 = time.perf_counter()
    notes: list[str] = []
    hive = ctx.hive
    flaky: list[str] = []
    rerun: ShardRun | None = None
    clear = collection.clear_addopts if collection else False
    try:
        # what the hive knew before this run
        known_broken = set(hive.facts(job.project, WHOLE_RUN_FAILURE)) if hive is not None else set()
        known_flaky = set(hive.flaky(job.project)) if hive is not None else set()
        shard_runs: list[ShardRun] = []
        counts, outcome = aggregate(runs)
        shard_failed = [n for r in runs for n in r.failed]
        if plan.sharded and outcome in ("failed", "error") and (
                outcome == "error" or not shard_failed or not set(shard_failed) <= known_broken):
            # Shard failures are confirmed by one whole-suite run unless every one of them is a
            # test known to fail in whole runs too: a test may depend on files that ran before it
            # (click's echo_via_pager tests need click._termui_impl imported by an earlier file),
            # and a reused file plan may no longer hold (a file that fails to import interrupts
            # a whole run). The result is then the whole run's: what a single run says.
            shard_runs = list(runs)
            plan = replace(whole_suite_plan("shards failed: confirmed by a whole-suite run"),
                           basis=f"whole suite (after {plan.basis})")
            runs = [run_test_shard(job, plan.shards[0], clear)]
            counts, outcome = aggregate(runs)
            notes.append(plan.reason)
            whole_failed = set(runs[0].failed)
            only_sharded = sorted(n for n in shard_failed if n not in whole_failed)
            if runs[0].counts is not None and only_sharded and outcome in ("passed", "failed"):
                # failed in a shard, passed in the whole run: order-dependent, or flaky? Alone
                # (by node id, nothing before it) an order-dependent test fails again.
                alone = rerun_failed(Path(job.tree), job.command, only_sharded,
                                     work_parent=Path(job.work_parent), limits=job.exec_limits,
                                     pythonpath=job.pythonpath, hide_paths=job.hide_paths,
                                     clear_addopts=clear, python_env=job.env_choice)
                dependent = [n for n in only_sharded[:MAX_RERUN_IDS] if n in set(alone.failed)]
                flaky += [n for n in only_sharded[:MAX_RERUN_IDS]
                          if n not in set(alone.failed) and alone.counts is not None]
                if dependent and hive is not None and collection is not None:
                    ordered = [f for f, _ in collection.files]
                    known = hive.fact_details(job.project, ORDER_DEPENDENT)
                    details = {n: {"needs_one_of": _provider_candidates(n, shard_runs, ordered, known.get(n))}
                               for n in dependent}
                    hive.record_facts(job.project, ORDER_DEPENDENT, dependent, details)
                if dependent:
                    notes.append(f"{len(dependent)} test(s) failed only when sharded (order-dependent: kept "
                                 f"with the files they need next time): " + ", ".join(dependent[:5]))
            if hive is not None and runs[0].counts is not None:
                hive.record_facts(job.project, WHOLE_RUN_FAILURE, sorted(whole_failed))
        failed = list(dict.fromkeys(n for r in runs for n in r.failed))
        ran_files = {f for r in runs for f in (r.files or tuple(r.durations))}
        if hive is not None:
            durations: dict[str, float] = {}
            for r in [*shard_runs, *runs]:
                if r.outcome != "timeout":
                    durations.update(r.durations)
            hive.record_durations(job.project, durations)
            if outcome in ("passed", "failed"):
                flaky += hive.passed_after_failing(job.project, job.content_hash, ran_files, failed)
        if outcome == "failed" and failed and job.kind == "pytest":
            if set(failed) <= known_broken - known_flaky:
                notes.append("every failure is a test seen failing in whole runs before: not re-run")
            elif len(failed) <= MAX_RERUN_IDS or set(failed) <= known_flaky:
                rerun_ids = failed[:MAX_RERUN_IDS]
                rerun = rerun_failed(Path(job.tree), job.command, rerun_ids,
                                     work_parent=Path(job.work_parent), limits=job.exec_limits,
                                     pythonpath=job.pythonpath, hide_paths=job.hide_paths,
                                     clear_addopts=clear, python_env=job.env_choice)
                if rerun.outcome in ("passed", "failed") and rerun.counts is not None:
                    again = set(rerun.failed)
                    flaky += [n for n in rerun_ids if n not in again]
            else:
                notes.append(f"{len(failed)} failures: too many to re-run")
        flaky = sorted(set(flaky))
        if hive is not None:
            hive.record_failures(job.project, job.content_hash, failed)
            if flaky:
                hive.record_flaky(job.project, job.content_hash, flaky)
        status = {"passed": "ok", "no tests": "skipped"}.get(outcome, "failed")
        reason = _reason(outcome, runs, job)
        still_failing = [n for n in failed if n not in flaky]
        if outcome == "failed" and failed and not still_failing and rerun is not None:
            status = "ok"
            reason = (f"{len(flaky)} flaky test(s) failed, then passed on a re-run of identical content: "
                      + ", ".join(flaky[:5]) + (" ..." if len(flaky) > 5 else ""))
        elif flaky:
            notes.append(f"flaky (failed, then passed on identical content): {', '.join(flaky[:5])}")
        if outcome == "failed" and still_failing and not reason:
            reason = f"{len(still_failing)} test(s) failed: " + ", ".join(still_failing[:5]) + (
                " ..." if len(still_failing) > 5 else "")
        elif outcome == "failed" and not reason and counts is not None:
            reason = f"{counts.failed} failed, {counts.errors} errors, {counts.subtests_failed} subtests failed"
        wall = max((r.seconds for r in runs), default=0.0) + max((r.seconds for r in shard_runs), default=0.0)
        data: dict[str, Any] = {
            "outcome": outcome, "project": job.project, "content_hash": job.content_hash,
            "plan": plan.as_dict(), "sharded": plan.sharded,
            "shards": [{"index": r.index, "files": len(r.files), "outcome": r.outcome, "seconds": r.seconds,
                        "summary": r.counts.summary_line if r.counts else "", "log": r.log_path} for r in runs],
            "confirmed_shards": [{"index": r.index, "files": len(r.files), "outcome": r.outcome,
                                  "seconds": r.seconds, "failed": list(r.failed[:20]), "log": r.log_path}
                                 for r in shard_runs],
            "collected": len(collection.node_ids) if collection else None,
            "collect_seconds": collection.seconds if collection else None,
            "collection_reused": bool(collection and collection.reused),
            "failed_tests": failed[:200], "flaky": flaky,
            "rerun": rerun.as_dict() if rerun else None,
            "notes": notes + sorted({n for r in runs for n in r.notes}),
            "environment": job.env_choice.summary() if job.env_choice else None,
        }
        if flaky:
            data["uncacheable"] = "flaky tests: the outcome is not a function of the content"
        if outcome in ("timeout", "error"):
            data["uncacheable"] = f"{outcome}: may be the host's doing, not the code's"
        first = runs[0] if runs else None
        result = CheckResult(
            toolchain="python", check="tests", status=status, reason=reason, tool="pytest",  # type: ignore[arg-type]
            tool_version=job.tool_version, command=job.command, counts=counts, data=data,
            seconds=round(wall + (collection.seconds if collection else 0.0) + (time.perf_counter() - t0), 3),
            isolation=first.isolation if first else "", key=job.key, computed_by=job.agent)
    except BaseException:
        abort_tests(job, ctx)
        raise
    if hive is not None:
        hive.end(job.key, job.agent, result.as_dict(), job.meta(), store=job.reuse and "uncacheable" not in data)
    return result

