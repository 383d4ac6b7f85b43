"""Batch processing of a pytest suite: collect -> plan N shards -> run them -> aggregate.

1. :func:`collect_tests` runs ``pytest --collect-only`` isolated (nothing is executed)
   and gets the node ids from NOA's pytest plugin (:mod:`noa_core.swarm.pytest_plugin`).
2. :func:`plan_shards` splits the test *files* into N shards, balanced by the seconds the
   hive recorded per file (longest processing time first: each file, heaviest first, goes
   to the least-loaded shard). Files without a record weigh the mean of the recorded ones;
   with no record at all, files weigh their number of tests.
3. :func:`run_shard` runs one shard isolated in its own work copy: the suite's command
   with the shard's files as arguments, ``--rootdir=.`` pinned so node ids, conftest
   discovery and the config file are those of a whole-suite run.
4. :func:`aggregate` adds the shards' counts, each read from pytest's own summary line.

Sharding is refused (the suite then runs whole, as one shard) when the command is not
pytest, names paths of its own, or collection fails: the aggregate must equal what a
single run says, so anything that could change what is collected is not sharded.
Per-file durations and failed node ids from each run feed the hive.

The steps live in their own modules: :mod:`~noa_core.swarm.pytest_commands` (is the
command shardable), :mod:`~noa_core.swarm.pytest_runs` (an isolated run with NOA's
plugin), :mod:`~noa_core.swarm.suite_collection`, :mod:`~noa_core.swarm.shard_plan`,
:mod:`~noa_core.swarm.shard_runs` and :mod:`~noa_core.swarm.shard_counts`; this module
is the plain driver that chains them (:func:`run_sharded`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from noa_core.config import ExecLimits
from noa_core.pyenv.provider import EnvChoice
from noa_core.swarm.pytest_commands import suite_kind
from noa_core.swarm.shard_plan import (
    ShardPlan,
    nothing_to_run,
    plan_shards,
    whole_suite_plan,
)
from noa_core.swarm.shard_runs import ShardRun, run_shard
from noa_core.swarm.suite_collection import Collection, collect_tests

__all__ = ["run_sharded"]


def run_sharded(tree: Path, command: Sequence[str], n: int, *, work_parent: Path, limits: ExecLimits,
                pythonpath: Sequence[str] = (), hide_paths: Sequence[str] = (),
                durations: Mapping[str, float] | None = None, max_parallel: int | None = None,
                python_env: EnvChoice | None = None) -> tuple[ShardPlan, list[ShardRun], Collection | None]:
    """Collect, plan and run ``n`` shards in parallel threads (each its own isolated copy).

    The plain driver (no hive, no Prefect); the swarm flows run the same steps as tasks.
    """
    kind, why = suite_kind(command)
    base = list(command)
    collection: Collection | None = None
    clear = False
    if kind != "pytest":
        plan = whole_suite_plan(why)
    else:
        collection = collect_tests(tree, base, work_parent=work_parent, limits=limits, pythonpath=pythonpath,
                                   hide_paths=hide_paths, python_env=python_env)
        clear = collection.clear_addopts
        if collection.outcome == "no tests":
            plan = nothing_to_run(collection.problem)
        elif collection.usable and n > 1:
            plan = plan_shards(collection.files + tuple((f, 0) for f in collection.skipped_files), n, durations)
        else:
            plan = whole_suite_plan(collection.problem or "one shard asked for")
    workers = max(1, min(len(plan.shards), max_parallel or len(plan.shards)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="noa-shard") as pool:
        futures = [pool.submit(run_shard, tree, base, s, work_parent=work_parent, limits=limits,
                               pythonpath=pythonpath, hide_paths=hide_paths, clear_addopts=clear, kind=kind,
                               python_env=python_env)
                   for s in plan.shards]
        runs = [f.result() for f in futures]
    return plan, runs, collection

