"""Batch processing: a suite split into shards (each isolated, in parallel) aggregates to
exactly what one plain run of the suite says."""

from __future__ import annotations

from pathlib import Path

import pytest

from noa_core.config import ExecLimits
from noa_core.swarm.interface import SwarmContext
from noa_core.swarm.hive import open_hive
from noa_core.swarm.python import PythonToolchain
from noa_core.swarm.python_tests import WHOLE_RUN_FAILURE
from noa_core.swarm.pytest_commands import pytest_base, suite_kind
from noa_core.swarm.shard_counts import aggregate
from noa_core.swarm.shard_plan import order_prefix, plan_shards
from noa_core.swarm.sharding import run_sharded
from noa_core.validation import TestCounts, run_test_suite, suggest_pythonpath
from test_swarm_support import SHARD_PROJECT, sdist_tree, write_tree

OUTCOME_FIELDS = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed", "subtests_passed",
                  "subtests_failed", "subtests_skipped")
LIMITS = ExecLimits(wall_seconds=600, cpu_seconds=600)


def outcomes(c: TestCounts | None) -> dict[str, int]:
    assert c is not None
    return {f: getattr(c, f) for f in OUTCOME_FIELDS}


def test_plan_is_longest_first_onto_least_loaded() -> None:
    files = [("a.py", 1), ("b.py", 1), ("c.py", 1), ("d.py", 1), ("e.py", 1)]
    plan = plan_shards(files, 2, {"a.py": 5.0, "b.py": 4.0, "c.py": 3.0, "d.py": 2.0, "e.py": 2.0})
    assert plan.basis == "durations"
    # LPT: a(5)->#0, b(4)->#1, c(3)->#1 (4 < 5), d(2)->#0 (5 < 7), e(2)->#0 (tie 7/7, lower index)
    assert [(s.files, round(s.weight, 3)) for s in plan.shards] == [(("a.py", "d.py", "e.py"), 9.0),
                                                                     (("b.py", "c.py"), 7.0)]
    # files keep their collection order inside a shard
    for s in plan.shards:
        assert list(s.files) == sorted(s.files)
    # deterministic
    assert plan_shards(files, 2, {"a.py": 5.0, "b.py": 4.0, "c.py": 3.0, "d.py": 2.0, "e.py": 2.0}) == plan


def test_plan_unknown_files_weigh_the_mean_and_no_record_means_test_counts() -> None:
    files = [("slow.py", 1), ("new.py", 40), ("fast.py", 40)]
    by_count = plan_shards(files, 2, {})
    assert by_count.basis == "test counts"
    assert {s.files for s in by_count.shards} == {("slow.py", "new.py"), ("fast.py",)}
    mixed = plan_shards(files, 2, {"slow.py": 10.0, "fast.py": 2.0})
    assert mixed.basis == "durations+mean" and (mixed.known, mixed.unknown) == (2, 1)
    weights = {f: s.weight for s in mixed.shards for f in s.files}
    assert {s.files for s in mixed.shards} == {("slow.py",), ("new.py", "fast.py")}
    assert sum(weights.values()) > 0
    # never more shards than files; one file -> one shard
    assert len(plan_shards([("only.py", 3)], 4, {}).shards) == 1


def test_plan_keeps_an_order_dependent_prefix_together() -> None:
    files = [("a.py", 10), ("b.py", 10), ("c.py", 1), ("d.py", 5)]
    assert order_prefix([f for f, _ in files], {"c.py"}) == ("a.py", "b.py", "c.py")
    assert order_prefix([f for f, _ in files], set()) == ()
    plan = plan_shards(files, 2, {}, together=[("a.py", "b.py", "c.py")])
    assert [s.files for s in plan.shards] == [("a.py", "b.py", "c.py"), ("d.py",)]
    assert "3 order-dependent files kept together" in plan.basis


def test_which_commands_are_sharded() -> None:
    assert pytest_base(["python", "-m", "pytest", "-q", "-k", "not slow", "-p", "no:randomly"])[0] is not None
    assert pytest_base(["pytest", "-x", "--tb=short"])[0] is not None
    assert pytest_base(["python", "-m", "pytest", "tests/unit"])[0] is None  # its own paths
    assert pytest_base(["python", "-m", "pytest", "-c", "other.ini"])[0] is None
    assert suite_kind(["python", "-m", "pytest", "tests/unit"])[0] == "pytest-whole"
    assert suite_kind(["python", "-m", "unittest"])[0] == "other"


def test_sharded_aggregate_equals_a_single_run(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "shardme", SHARD_PROJECT)
    single = run_test_suite(tree, ["python", "-m", "pytest"], work_parent=tmp_path / "single", limits=LIMITS)
    assert single.counts is not None
    expected = outcomes(single.counts)
    assert expected == {"passed": 27, "failed": 1, "errors": 0, "skipped": 2, "xfailed": 1, "xpassed": 0,
                        "subtests_passed": 3, "subtests_failed": 0, "subtests_skipped": 0}

    # the plain driver: 2 agents, each isolated in its own work copy, in parallel; counts summed
    plan, runs, collection = run_sharded(tree, ["python", "-m", "pytest"], 2, work_parent=tmp_path / "shards",
                                         limits=LIMITS)
    assert collection is not None and collection.usable
    assert len(plan.shards) == 2 and all(s.files for s in plan.shards)
    planned = [f for s in plan.shards for f in s.files]
    # every collected file, and the module skipped at collection, is in exactly one shard
    assert sorted(planned) == sorted(f for f in SHARD_PROJECT if f.startswith("tests/test_"))
    total, outcome = aggregate(runs)
    assert outcome == "failed" == single.outcome
    assert outcomes(total) == expected
    assert all(r.isolation in ("bwrap", "unshare") for r in runs)

    # the swarm's check, with a hive that knows test_broken fails in whole runs too: the
    # shards' failure needs no whole-run confirmation, and the sharded counts are the result
    hive = open_hive(tmp_path / "registry.db")
    hive.record_facts("shardme", WHOLE_RUN_FAILURE, ["tests/test_fail.py::test_broken"])
    sharded = PythonToolchain().run_tests(tree, SwarmContext(work_parent=tmp_path / "swarm", limits=LIMITS,
                                                             shards=2, hive=hive))
    assert sharded.data["sharded"] and sharded.data["confirmed_shards"] == []
    assert outcomes(sharded.counts) == expected
    assert sharded.status == "failed" and sharded.data["failed_tests"] == ["tests/test_fail.py::test_broken"]
    assert sharded.counts is not None and "(2 shards)" in sharded.counts.summary_line


@pytest.mark.slow
@pytest.mark.network
def test_real_sdist_sharded_equals_single_run(tmp_path: Path) -> None:
    tree = sdist_tree("toolz", "1.2.0", tmp_path / "sdist")
    pythonpath = suggest_pythonpath(tree)
    single = run_test_suite(tree, ["python", "-m", "pytest"], work_parent=tmp_path / "single", limits=LIMITS,
                            pythonpath=pythonpath)
    plan, runs, collection = run_sharded(tree, ["python", "-m", "pytest"], 2, work_parent=tmp_path / "shards",
                                         limits=LIMITS, pythonpath=pythonpath)
    assert collection is not None and collection.usable
    assert len(plan.shards) == 2
    total, outcome = aggregate(runs)
    assert outcome == single.outcome
    assert outcomes(total) == outcomes(single.counts)
    assert total is not None and total.passed >= 190
