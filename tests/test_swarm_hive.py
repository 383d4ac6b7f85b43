"""The hive: identical work is done once (across runs and agents), durations steer the next
plan, and flaky tests (failed, then passed on identical content) are remembered."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import inspect

from noa_core.config import ExecLimits
from noa_core.storage.database import create_schema, make_engine
from noa_core.swarm.hive import Hive, open_hive
from noa_core.swarm.hive_keys import ResultMeta, content_hash, result_key
from noa_core.swarm.interface import CheckResult, SwarmContext
from noa_core.swarm.python import PythonToolchain
from noa_core.swarm.python_collection import plan_tests
from noa_core.swarm.python_test_results import finish_tests
from noa_core.swarm.python_tests import begin_tests, run_test_shard
from test_swarm_support import FLAKY_PROJECT, ORDER_PROJECT, SHARD_PROJECT_GREEN, TINY_PY, write_tree

LIMITS = ExecLimits(wall_seconds=300)


def logs(work: Path) -> list[Path]:
    """One log per isolated pytest run (collect, shard, re-run) is left next to its work copy."""
    return sorted(work.rglob("*.log")) if work.exists() else []


def test_tables_live_in_the_registry_database_and_creation_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    engine = make_engine(db)
    create_schema(engine)  # the registry's own tables
    Hive(engine)
    Hive(engine)  # again: nothing to do, no error
    tables = set(inspect(engine).get_table_names())
    assert {"projects", "drops", "hive_results", "hive_claims", "hive_durations", "hive_flaky",
            "hive_failures", "hive_reports"} <= tables
    assert open_hive(db) is open_hive(str(db))


def test_second_run_on_identical_content_reuses_the_result(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tiny", TINY_PY)
    hive = open_hive(tmp_path / "registry.db")
    work = tmp_path / "work"
    first = PythonToolchain().run_tests(tree, SwarmContext(work_parent=work, limits=LIMITS, hive=hive,
                                                           agent="agent-1", shards=2))
    assert first.status == "ok" and not first.cached
    runs_after_first = logs(work)
    assert runs_after_first  # collect + shard(s)

    # the same content elsewhere (another copy, another agent): nothing runs again
    copy = write_tree(tmp_path / "elsewhere" / "tiny", TINY_PY)
    second = PythonToolchain().run_tests(copy, SwarmContext(work_parent=work, limits=LIMITS, hive=hive,
                                                            agent="agent-2", shards=2))
    assert second.cached and second.computed_by == "agent-1"
    assert second.counts == first.counts
    assert logs(work) == runs_after_first  # no isolated run happened
    stored = hive.results_for(first.data["content_hash"])
    assert sorted(r["kind"] for r in stored) == ["python/collect", "python/tests"]
    assert [r["hits"] for r in stored if r["kind"] == "python/tests"] == [1]

    # changed content: runs again
    (copy / "tests" / "test_extra.py").write_text("def test_extra():\n    assert True\n")
    third = PythonToolchain().run_tests(copy, SwarmContext(work_parent=work, limits=LIMITS, hive=hive, shards=2))
    assert not third.cached and third.counts is not None and third.counts.passed == first.counts.passed + 1
    assert len(logs(work)) > len(runs_after_first)


def test_concurrent_agents_do_identical_work_once(tmp_path: Path) -> None:
    hive = open_hive(tmp_path / "registry.db")
    key = result_key("tool", "1.0", "c" * 64, ["tool", "run"])
    meta = ResultMeta("python", "tests", "tool", "1.0", "c" * 64, ("tool", "run"))
    executions: list[str] = []
    started = threading.Barrier(4)
    results: list[tuple[dict, bool]] = []

    def agent(name: str) -> None:
        def compute() -> dict:
            executions.append(name)
            threading.Event().wait(0.5)  # long enough for the others to ask meanwhile
            return {"status": "ok", "by": name}

        started.wait()
        results.append(hive.run_once(key, compute, meta=meta, agent=name, poll_s=0.05))

    threads = [threading.Thread(target=agent, args=(f"agent-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(executions) == 1
    assert sorted(reused for _, reused in results) == [False, True, True, True]
    assert {p["by"] for p, _ in results} == set(executions)
    assert hive.stats().hits == 3


def test_durations_are_recorded_and_change_the_next_plan(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "shardme", SHARD_PROJECT_GREEN)
    hive = open_hive(tmp_path / "registry.db")
    ctx = SwarmContext(work_parent=tmp_path / "work", limits=LIMITS, hive=hive, shards=2, reuse=False)

    job, hit = begin_tests(tree, ctx)
    assert hit is None and job.project == "shardme"
    before, collection = plan_tests(job, ctx)
    assert before.basis == "test counts"  # nothing recorded yet
    runs = [run_test_shard(job, s) for s in before.shards]
    finish_tests(job, ctx, before, runs, collection)

    recorded = hive.durations("shardme")
    assert set(recorded) == {f for f, _ in collection.files} | {"tests/test_skipmod.py"}  # type: ignore[union-attr]
    assert recorded["tests/test_slow.py"] >= 0.85
    assert recorded["tests/test_mid.py"] >= 0.55
    assert recorded["tests/test_many.py"] < 0.5

    after, _ = plan_tests(job, ctx)
    assert after.basis == "durations"
    assert {s.files for s in after.shards} != {s.files for s in before.shards}
    # the two sleepy files are no longer together with nothing else to balance them
    weights = sorted(s.weight for s in after.shards)
    assert weights[1] - weights[0] < 0.9


def test_flaky_test_is_detected_remembered_and_not_cached(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "flaky", FLAKY_PROJECT)
    hive = open_hive(tmp_path / "registry.db")
    ctx = SwarmContext(work_parent=tmp_path / "work", limits=LIMITS, hive=hive, project="flaky")
    first = PythonToolchain().run_tests(tree, ctx)
    assert first.counts is not None and first.counts.failed == 1  # what pytest said on the whole run
    assert first.status == "ok" and "flaky" in first.reason
    assert first.data["flaky"] == ["tests/test_flaky.py::test_flaky"]
    assert first.data["rerun"]["outcome"] == "passed"
    assert hive.flaky("flaky") == {"tests/test_flaky.py::test_flaky": 1}
    # a flaky outcome is not a function of the content: not stored, worked out again
    second = PythonToolchain().run_tests(tree, ctx)
    assert not second.cached
    assert hive.flaky("flaky") == {"tests/test_flaky.py::test_flaky": 2}
    assert [r["kind"] for r in hive.results_for(first.data["content_hash"])] == ["python/collect"]


def test_failed_earlier_then_passed_on_identical_content_is_flaky(tmp_path: Path) -> None:
    hive = open_hive(tmp_path / "registry.db")
    c = content_hash(write_tree(tmp_path / "t", TINY_PY))
    hive.record_failures("p", c, ["tests/test_calc.py::test_mul", "tests/other.py::test_x"])
    assert hive.passed_after_failing("p", "another-content", ["tests/test_calc.py"], []) == []
    got = hive.passed_after_failing("p", c, ["tests/test_calc.py"], failed_now=[])
    assert got == ["tests/test_calc.py::test_mul"]  # tests/other.py did not run: no verdict
    assert hive.flaky("p") == {"tests/test_calc.py::test_mul": 1}


def test_content_hash_sees_content_and_symlinks_not_location(tmp_path: Path) -> None:
    a = write_tree(tmp_path / "a", TINY_PY)
    b = write_tree(tmp_path / "b" / "deeper", TINY_PY)
    assert content_hash(a) == content_hash(b)
    (b / "link").symlink_to("calc.py")
    h1 = content_hash(b)
    assert h1 != content_hash(a)
    (b / "link").unlink()
    (b / "link").symlink_to("tests")
    assert content_hash(b) != h1


def test_collection_is_reused_for_the_same_layout_and_redone_when_it_changes(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tiny", TINY_PY)
    hive = open_hive(tmp_path / "registry.db")

    def run() -> CheckResult:
        return PythonToolchain().run_tests(tree, SwarmContext(work_parent=tmp_path / "work", limits=LIMITS,
                                                              hive=hive, shards=2))

    first = run()
    assert not first.data["collection_reused"] and first.counts.passed == 3  # type: ignore[union-attr]
    # a test body changes, the layout does not: no new collection, and the new test is counted
    more = tree / "tests" / "test_more.py"
    more.write_text(more.read_text() + "\n\ndef test_mul_two():\n    assert True\n")
    second = run()
    assert not second.cached and second.data["collection_reused"]
    assert second.counts.passed == 4 and second.data["sharded"]  # type: ignore[union-attr]
    # a new file: collected again
    (tree / "tests" / "test_new.py").write_text("def test_new():\n    assert True\n")
    third = run()
    assert not third.data["collection_reused"] and third.counts.passed == 5  # type: ignore[union-attr]
    # same layout, but a file no longer imports: a whole run interrupts at collection, so the
    # shards' result is dropped and the suite runs whole, as a single run would
    (tree / "tests" / "test_new.py").write_text("import noa_no_such_module_zz\n\ndef test_new():\n    pass\n")
    fourth = run()
    assert fourth.data["collection_reused"] and not fourth.data["sharded"]
    assert fourth.status == "failed" and fourth.data["outcome"] == "error"
    assert fourth.counts is not None and (fourth.counts.errors, fourth.counts.passed) == (1, 0)
    assert fourth.data["confirmed_shards"] and fourth.data["plan"]["basis"].startswith("whole suite")


def test_lease_of_a_dead_process_is_taken_over_at_once(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    import time

    from noa_core.swarm.hive_schema import claims_table

    hive = open_hive(tmp_path / "registry.db")
    key = result_key("tool", "1", "d" * 64, ["x"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # exited and reaped: its pid is gone
    with hive.engine.begin() as conn:
        conn.execute(claims_table.insert().values(key=key, owner=f"killed-agent@{socket.gethostname()}:{dead.pid}",
                                                  expires=time.time() + 3600))
    t0 = time.monotonic()
    assert hive.begin(key, "rescuer") is None  # not waited out: the lease is ours now
    assert time.monotonic() - t0 < 5
    assert hive.claim_owner(key).startswith("rescuer@")  # type: ignore[union-attr]
    hive.end(key, "rescuer", {"status": "ok"}, ResultMeta("python", "tests", "tool", "1", "d" * 64, ("x",)))
    assert hive.claim_owner(key) is None and hive.get(key) == {"status": "ok"}
    # a live owner's lease is respected
    assert hive.claim(key + "-2", "first", 60) and not hive.claim(key + "-2", "second-agent", 60)


def test_order_dependent_failure_is_confirmed_whole_and_kept_together_next_time(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "ordered", ORDER_PROJECT)
    hive = open_hive(tmp_path / "registry.db")

    def run() -> CheckResult:
        return PythonToolchain().run_tests(tree, SwarmContext(work_parent=tmp_path / "work", limits=LIMITS,
                                                              hive=hive, shards=2, project="ordered"))

    first = run()
    # by test counts the consumer lands away from its provider and fails in its shard ...
    assert [s["failed"] for s in first.data["confirmed_shards"] if s["failed"]] == [
        ["tests/test_c_consumer.py::test_needs_provider"]]
    # ... so the suite ran whole, and the result is the whole run's
    assert first.status == "ok" and first.counts is not None
    assert (first.counts.passed, first.counts.failed) == (26, 0)
    assert first.data["plan"]["basis"].startswith("whole suite (after test counts")
    assert hive.facts("ordered", "order-dependent") == {"tests/test_c_consumer.py::test_needs_provider": 1}
    # what it needs comes from a file that ran before it in the whole run but not in its shard
    (detail,) = hive.fact_details("ordered", "order-dependent").values()
    assert detail["needs_one_of"] == ["tests/test_a_provider.py"]

    # next time the consumer stays with its provider, provider first: no failure, no whole run
    mid = tree / "tests" / "test_d_mid.py"
    mid.write_text(mid.read_text().replace("range(5)", "range(6)"))
    second = run()
    assert second.data["confirmed_shards"] == [] and second.data["sharded"]
    shards = [s["files"] for s in second.data["plan"]["shards"]]
    assert any(s[:1] == ["tests/test_a_provider.py"] and "tests/test_c_consumer.py" in s for s in shards), shards
    assert "order-dependent files kept together" in second.data["plan"]["basis"]
    assert second.status == "ok" and second.counts.passed == 27  # type: ignore[union-attr]
