"""Collecting a Python suite (or reusing the hive's collection of the same layout) and
planning its shards: by the hive's durations, with order-dependent tests kept beside the
files they need."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from noa_core.swarm.hive_keys import ResultMeta, result_key
from noa_core.swarm.interface import SwarmContext
from noa_core.swarm.python_tests import ORDER_DEPENDENT, TestsJob
from noa_core.swarm.shard_plan import (
    ShardPlan,
    nothing_to_run,
    order_prefix,
    plan_shards,
    whole_suite_plan,
)
from noa_core.swarm.suite_collection import Collection, collect_tests

__all__ = ["collection_key", "plan_tests"]

_LAYOUT_FILES = {"conftest.py", "pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg"}
_LAYOUT_SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_MAX_LAYOUT_FILE = 2 * 1024 * 1024


def collection_key(job: TestsJob) -> str | None:
    """The hive key of a suite's *collection*: what decides which test files pytest collects.

    That is the tree's file layout (every path, not the contents), the contents of every
    conftest.py and pytest configuration file, the command and the environment; editing a
    test file's body does not change which files hold tests. ``None`` (always collect) when
    doctests are involved: there, editing a module's docstring adds or removes a test file.
    """
    if any("doctest" in a for a in job.command):
        return None
    tree = Path(job.tree)
    digest = hashlib.blake2b(digest_size=32)
    for root, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if d not in _LAYOUT_SKIP_DIRS)
        rel_root = os.path.relpath(root, tree)
        for name in sorted(files):
            rel = os.path.normpath(os.path.join(rel_root, name))
            digest.update(rel.encode("utf-8", "surrogateescape") + b"\0")
            if name in _LAYOUT_FILES:
                path = Path(root) / name
                try:
                    if path.is_symlink() or path.stat().st_size > _MAX_LAYOUT_FILE:
                        return None
                    data = path.read_bytes()
                except OSError:
                    return None
                if b"doctest" in data:
                    return None
                digest.update(hashlib.blake2b(data, digest_size=16).digest())
    return result_key("pytest --collect-only", job.tool_version, digest.hexdigest(),
                      [*job.command, "pythonpath=" + ":".join(job.pythonpath)], kind="python/collect")


def _collect(job: TestsJob, ctx: SwarmContext) -> Collection:
    """The suite's collection: from the hive when the layout is one it has seen, else collected now."""
    key = collection_key(job) if ctx.hive is not None else None
    if key is not None and job.reuse:
        hit = ctx.hive.get(key)  # type: ignore[union-attr]
        if hit is not None:
            ctx.hive.record_hit(key)  # type: ignore[union-attr]
            return replace(Collection.from_dict(hit["collection"]), reused=True, seconds=0.0)
    collection = collect_tests(Path(job.tree), job.command, work_parent=Path(job.work_parent),
                               limits=job.exec_limits, pythonpath=job.pythonpath, hide_paths=job.hide_paths,
                               python_env=job.env_choice)
    if key is not None and collection.usable and collection.outcome == "passed":
        meta = ResultMeta(toolchain="python", check="collect", tool="pytest", tool_version=job.tool_version,
                          content_hash=job.content_hash, command=job.command)
        ctx.hive.put(key, meta, {"status": "ok", "collection": collection.as_dict()}, job.agent)  # type: ignore[union-attr]
    return collection


def plan_tests(job: TestsJob, ctx: SwarmContext) -> tuple[ShardPlan, Collection | None]:
    """Collect (no test runs; or the hive's collection of the same layout) and split into
    ``job.shards`` shards by the hive's durations."""
    if job.kind != "pytest":
        return whole_suite_plan(job.why_whole), None
    collection = _collect(job, ctx)
    if collection.outcome == "no tests":
        return nothing_to_run(collection.problem), collection
    if not collection.usable:
        return whole_suite_plan(collection.problem), collection
    if job.shards <= 1:
        return whole_suite_plan("one shard asked for"), collection
    durations = ctx.hive.durations(job.project) if ctx.hive is not None else {}
    files = collection.files + tuple((f, 0) for f in collection.skipped_files)
    together = _order_groups(ctx, job, [f for f, _ in collection.files]) if ctx.hive is not None else []
    return plan_shards(files, job.shards, durations, together=together), collection


def _order_groups(ctx: SwarmContext, job: TestsJob, ordered: Sequence[str]) -> list[tuple[str, ...]]:
    """Files that must share a shard: each order-dependent test's file with the files that may
    provide what it needs (learnt from the failures; without that knowledge, every file before
    it). Overlapping groups are merged; each group keeps collection order."""
    assert ctx.hive is not None
    position = {f: i for i, f in enumerate(ordered)}
    groups: list[set[str]] = []
    for node, detail in ctx.hive.fact_details(job.project, ORDER_DEPENDENT).items():
        consumer = node.split("::", 1)[0]
        if consumer not in position:
            continue
        needs = [f for f in detail.get("needs_one_of", []) if f in position and position[f] < position[consumer]]
        group = {consumer, *(needs or order_prefix(ordered, {consumer}))}
        for other in [g for g in groups if g & group]:
            group |= other
            groups.remove(other)
        groups.append(group)
    return [tuple(sorted(g, key=position.__getitem__)) for g in groups if len(g) > 1]

