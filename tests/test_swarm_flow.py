"""The ``swarm`` master flow against the session's real Prefect server: embedded (concurrent
in-process subflows) and distributed (work pools, worker processes, run_deployment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deployments.swarm_pools import deploy_swarms, ensure_pools, wait_for_workers
from flows.swarm import run_swarm
from noa_core.swarm.go import find_go
from noa_core.swarm.hive import open_hive
from noa_core.swarm.rust import find_cargo
from noa_core.swarm.workers import alive_workers, start_workers, stop_workers
from test_swarm_support import SHARD_PROJECT, TINY_CRATE, TINY_GO, TINY_PY, write_tree


def mixed_project(root: Path) -> Path:
    """One directory that is a Python project, a Rust crate and a Go module at once."""
    return write_tree(root, {**TINY_PY, **TINY_CRATE, **TINY_GO})


def check(summary: dict, language: str, name: str) -> dict:
    return next(r for r in summary["swarms"][language]["results"] if r["check"] == name)


def test_embedded_swarm_runs_every_language_concurrently_and_reuses_on_rerun(prefect_api_url: str,
                                                                              tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    tree = mixed_project(tmp_path / "mixed")
    home = tmp_path / "home"
    summary = run_swarm(project_dir=str(tree), shards=2, home=str(home))

    assert summary["mode"] == "embedded"
    assert summary["languages"] == ["python", "rust", "go"]
    tests = check(summary, "python", "tests")
    assert tests["status"] == "ok" and tests["counts"]["passed"] == 3, tests
    assert check(summary, "python", "lint")["tool"] == "ruff" or check(summary, "python", "lint")["status"] == "skipped"
    rust_test, go_test = check(summary, "rust", "test"), check(summary, "go", "test")
    if find_cargo():
        assert rust_test["status"] == "ok" and rust_test["counts"]["passed"] == 2, rust_test
    else:
        assert rust_test["status"] == "skipped" and rust_test["reason"] == "cargo not installed"
    if find_go():
        assert go_test["status"] == "ok" and go_test["counts"]["passed"] == 1, go_test
        assert check(summary, "go", "bench")["data"]["benchmarks"]
    else:
        assert go_test["status"] == "skipped" and go_test["reason"] == "go not installed"
    assert summary["status"] == "ok"
    assert summary["cached_checks"] == 0
    assert Path(summary["report_path"]).is_file()

    hive = open_hive(home / "registry.db")
    with get_client(sync_client=True) as client:
        master = client.read_flow_run(summary["run_id"])
        assert master.state is not None and master.state.is_completed()
        for language, rep in summary["swarms"].items():
            sub = client.read_flow_run(rep["extra"]["flow_run_id"])
            assert sub.parent_task_run_id is not None, language  # a subflow of the master
            assert client.read_task_run(sub.parent_task_run_id).flow_run_id == master.id
            assert sub.state is not None and sub.state.is_completed()
            assert hive.get_report(str(sub.id))["language"] == language  # what distributed mode reads
        keys = {a.key for a in client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["swarm-tinycrate", "swarm-tinycrate-checks"])))}
        assert keys == {"swarm-tinycrate", "swarm-tinycrate-checks"}
    assert hive.get_report(summary["run_id"])["status"] == "ok"

    again = run_swarm(project_dir=str(tree), shards=2, home=str(home))
    ran = [r for rep in again["swarms"].values() for r in rep["results"] if r["status"] != "skipped"]
    assert ran and all(r["cached"] for r in ran)
    assert again["cached_checks"] == len(ran)
    assert check(again, "python", "tests")["counts"] == tests["counts"]
    assert again["hive"]["before"]["results_for_content"] >= len(ran)


def run_noa(args: list[str], home: Path, api_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NOA_"))}
    env.update(PREFECT_API_URL=api_url, NOA_HOME=str(home), PREFECT_LOGGING_LEVEL="WARNING",
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return subprocess.run([sys.executable, "-m", "noa_core.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def test_cli_swarm_run_json(prefect_api_url: str, tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tiny", TINY_PY)
    proc = run_noa(["swarm", "run", str(tree), "--languages", "python", "--shards", "2", "--json"],
                   tmp_path / "home", prefect_api_url)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)  # one JSON document on stdout, nothing else
    assert doc["languages"] == ["python"] and doc["mode"] == "embedded"
    tests = check(doc, "python", "tests")
    assert tests["counts"]["passed"] == 3 and tests["status"] == "ok"
    assert len(tests["data"]["plan"]["shards"]) == 2


def test_cli_swarm_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from noa_core.cli.main import app

    tree = write_tree(tmp_path / "tiny", TINY_PY)
    runner = CliRunner()
    for args, words in ((["swarm", "run", str(tmp_path / "nope")], "is not a directory"),
                        (["swarm", "run", str(tree), "--languages", "cobol"], "unknown swarm language"),
                        (["swarm", "run", str(tree), "--shards", "0"], "--shards"),
                        (["swarm", "up", "--pools", "java-swarm"], "--pools")):
        res = runner.invoke(app, [*args, "--home", str(tmp_path / "home")])
        assert res.exit_code == 2, (args, res.output)
        assert words in res.output, res.output


def test_worker_processes_are_started_topped_up_and_stopped_by_pid(prefect_api_url: str, tmp_path: Path) -> None:
    """`noa swarm up/down` bookkeeping, with real `prefect worker start` processes."""
    env = {"PREFECT_API_URL": prefect_api_url, "PREFECT_HOME": str(tmp_path / "ph")}
    state = tmp_path / "swarm"
    first = start_workers(["python-swarm"], 2, state_dir=state, env=env, die_with_parent=True)
    try:
        assert [w.name for w in first] == ["python-swarm-1", "python-swarm-2"]
        assert {w.pid for w in alive_workers(state)} == {w.pid for w in first}
        assert start_workers(["python-swarm"], 2, state_dir=state, env=env, die_with_parent=True) == []  # already there
        more = start_workers(["python-swarm"], 3, state_dir=state, env=env, die_with_parent=True)
        assert [w.name for w in more] == ["python-swarm-3"]
    finally:
        stopped = stop_workers(state)
    assert len(stopped) == 3 and alive_workers(state) == []
    assert stop_workers(state) == []


@pytest.mark.slow
def test_distributed_swarm_runs_on_pool_workers_with_the_same_results(prefect_api_url: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    tree = write_tree(tmp_path / "shardme", SHARD_PROJECT)
    embedded = run_swarm(project_dir=str(tree), languages=["python"], shards=2, home=str(tmp_path / "home-a"))

    ensure_pools(["python-swarm"])
    assert ensure_pools(["python-swarm"]) == {"python-swarm": False}  # idempotent
    deploy_swarms({"python": "python-swarm"})
    state = tmp_path / "workers"
    env = {"PREFECT_API_URL": prefect_api_url, "PREFECT_HOME": str(tmp_path / "worker-prefect-home"),
           "PREFECT_LOGGING_LEVEL": "INFO"}
    started = start_workers(["python-swarm"], 2, state_dir=state, env=env, query_seconds=1,
                            die_with_parent=True)
    try:
        assert len(started) == 2 and len({w.pid for w in started}) == 2
        assert wait_for_workers("python-swarm", 2, timeout_s=120) >= 2
        distributed = run_swarm(project_dir=str(tree), languages=["python"], shards=2,
                                home=str(tmp_path / "home-b"), mode="distributed", pickup_timeout_s=120)
    finally:
        stopped = stop_workers(state)
    assert {w.pid for w in stopped} == {w.pid for w in started}
    assert alive_workers(state) == []

    rep = distributed["swarms"]["python"]
    extra = rep["extra"]
    assert extra["mode"] == "distributed" and extra["work_pool"] == "python-swarm"
    assert extra["worker"] in {w.name for w in started}, (extra, [w.log for w in started])
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(extra["flow_run_id"])
    assert run.work_pool_name == "python-swarm"
    assert (run.labels or {}).get("prefect.worker.name") == extra["worker"]
    assert run.infrastructure_pid  # the worker started it as its own process
    # the same results either way
    emb_tests, dist_tests = check(embedded, "python", "tests"), check(distributed, "python", "tests")
    assert not dist_tests["cached"]  # another home: the workers really ran it
    for key in ("passed", "failed", "errors", "skipped", "xfailed", "subtests_passed"):
        assert emb_tests["counts"][key] == dist_tests["counts"][key], key
    assert emb_tests["status"] == dist_tests["status"] and embedded["status"] == distributed["status"]


@pytest.mark.slow
def test_killed_worker_run_is_crashed_resubmitted_and_reuses_finished_work(prefect_api_url: str,
                                                                           tmp_path: Path) -> None:
    import signal
    import threading
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterId, FlowRunFilterName,
                                                FlowRunFilterState, FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType

    from noa_core.swarm.hive_keys import content_hash

    home = tmp_path / "home"
    state = home / "swarm"  # where `noa swarm up` records its workers: the master judges only those
    tree = write_tree(tmp_path / "slowtiny", {**TINY_PY, "tests/test_slow.py": """
        import time


        def test_takes_a_while():
            time.sleep(8)
    """})
    ensure_pools(["python-swarm"])
    deploy_swarms({"python": "python-swarm"})
    env = {"PREFECT_API_URL": prefect_api_url, "PREFECT_HOME": str(tmp_path / "worker-prefect-home")}
    started = start_workers(["python-swarm"], 2, state_dir=state, env=env, query_seconds=1,
                            die_with_parent=True)
    by_name = {w.name: w for w in started}
    out: dict[str, dict] = {}
    try:
        assert wait_for_workers("python-swarm", 2, timeout_s=120) >= 2
        runner = threading.Thread(target=lambda: out.update(summary=run_swarm(
            project_dir=str(tree), languages=["python"], shards=2, home=str(home), mode="distributed")))
        runner.start()
        hive = open_hive(home / "registry.db")
        chash = content_hash(tree)
        victim = None
        deadline = time.monotonic() + 180
        while victim is None and time.monotonic() < deadline:  # lint stored, tests running
            time.sleep(0.5)
            kinds = {r["kind"] for r in hive.results_for(chash)}
            if "python/lint" not in kinds or "python/collect" not in kinds:
                continue
            with get_client(sync_client=True) as client:
                running = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                    name=FlowRunFilterName(any_=["python_swarm-slowtiny"]),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))))
            victim = next((r for r in running if r.infrastructure_pid), None)
        assert victim is not None, "the swarm run never got going"
        worker = by_name[(victim.labels or {})["prefect.worker.name"]]
        os.kill(worker.pid, signal.SIGKILL)  # kill -9 the worker and the flow run it started
        os.kill(int(victim.infrastructure_pid), signal.SIGKILL)  # type: ignore[arg-type]
        runner.join(timeout=300)
        assert not runner.is_alive()
    finally:
        stop_workers(state)

    summary = out["summary"]
    extra = summary["swarms"]["python"]["extra"]
    first, second = extra["attempts"]
    assert first["flow_run_id"] == str(victim.id) and first["state"] == "Crashed"
    assert "is gone" in first["message"]
    assert second["state"] == "Completed" and second["worker"] != first["worker"]
    with get_client(sync_client=True) as client:
        (crashed,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[victim.id])))
    assert crashed.state is not None and crashed.state.is_crashed()
    tests, lint = check(summary, "python", "tests"), check(summary, "python", "lint")
    assert lint["cached"]  # finished before the kill: reused, not redone
    assert not tests["cached"] and tests["status"] == "ok"
    assert tests["counts"]["passed"] == 4 and tests["counts"]["failed"] == 0  # counted once


@pytest.mark.slow
def test_a_language_swarm_called_from_python_returns_its_typed_report(prefect_api_url: str, tmp_path: Path) -> None:
    import asyncio

    import noa

    tree = write_tree(tmp_path / "go-module", TINY_GO)
    report = asyncio.run(noa.go_swarm(project_dir=str(tree), home=str(tmp_path / "home")))

    assert isinstance(report, noa.LanguageSwarmReport) and report.language == "go"
    test = next(r for r in report.results if r["check"] == "test")
    if find_go():
        assert report.status == "ok" and test["counts"]["passed"] == 1, report.results
        assert report.counts is not None and report.counts["passed"] == 1
    else:
        assert report.status == "skipped" and test["reason"] == "go not installed"
    assert report.extra["flow_run_id"] and report.seconds > 0
