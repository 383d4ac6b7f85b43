"""The Python swarm on the ``python-swarm-docker`` work pool, against the real Docker engine.

A ``prefect worker --type docker`` (prefect-docker) runs the swarm flow run in a container
of the swarm image; each test shard runs in a sibling container with ``--network none`` and
its code read-only. Needs the engine ``scripts/dockerd.sh start`` runs; the swarm image is
built once (about a minute with a warm cache, reused after).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_helpers import docker_engine
from test_swarm_support import SHARD_PROJECT, write_tree


@pytest.fixture(scope="module")
def engine() -> Any:
    return docker_engine(30)


@pytest.fixture(scope="module")
def swarm_image(engine: Any) -> str:
    import os

    from noa_core.deploy.docker_images import DEFAULT_CACHE_DIR
    from noa_core.swarm.docker_image import ensure_swarm_image

    cache = Path(os.environ.get("NOA_DOCKER_CACHE") or DEFAULT_CACHE_DIR)
    return ensure_swarm_image(cache_dir=cache, client=engine).tag


class Listener:
    """A TCP server on the host's 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def _noa_containers(engine: Any) -> list[str]:
    from noa_core.isolation.docker import sandbox_containers

    return [c.name for c in sandbox_containers(engine)]


def network_test(port: int) -> dict[str, str]:
    return {"tests/test_network.py": f"""
        import socket


        def test_reaches_the_host():
            socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    """}


def test_sandbox_container_has_no_network_and_a_read_only_tree(engine: Any, swarm_image: str, listener: Listener,
                                                               tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from noa_core.config import ExecLimits
    from noa_core.isolation import run_isolated

    monkeypatch.setenv("NOA_ISOLATION_BACKEND", "docker")
    monkeypatch.setenv("NOA_DOCKER_SANDBOX_IMAGE", swarm_image)
    work = tmp_path / "work"
    work.mkdir()
    (work / "mod.py").write_text("X = 1\n")
    probe = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {listener.port}), timeout=3)\n"
             "    print('connected')\nexcept OSError as e:\n    print('refused', type(e).__name__)\n")
    res = run_isolated(["python3", "-c", probe], work, ExecLimits())
    assert res.isolation == "docker" and res.returncode == 0, res
    assert "refused" in res.stdout and "connected" not in res.stdout
    assert listener.accepted == 0

    # a test run (NOA's report variable set): the tree is read-only, only the report is writable
    write = ("import pathlib\ntry:\n    pathlib.Path('new.txt').write_text('x')\nexcept OSError as e:\n"
             "    print('tree', e.errno)\npathlib.Path('.noa-swarm-report.json').write_text('{}')\n")
    res = run_isolated(["python3", "-c", write], work, ExecLimits(), env={"NOA_SWARM_REPORT": ".noa-swarm-report.json"})
    assert res.returncode == 0, res
    assert "tree 30" in res.stdout  # EROFS
    assert not (work / "new.txt").exists() and (work / ".noa-swarm-report.json").read_text() == "{}"
    assert _noa_containers(engine) == []


@pytest.mark.slow
def test_docker_pool_gives_the_process_pools_counts_without_network(prefect_api_url: str, engine: Any,
                                                                    swarm_image: str, listener: Listener,
                                                                    tmp_path: Path) -> None:
    from deployments.swarm_docker import (
        DOCKER_POOL,
        deploy_docker_swarm,
        ensure_docker_pool,
    )
    from deployments.swarm_pools import deploy_swarms, ensure_pools, wait_for_workers
    from flows.swarm import run_swarm
    from noa_core.swarm.hive import open_hive
    from noa_core.swarm.workers import start_workers, stop_workers

    tree = write_tree(tmp_path / "shardme", {**SHARD_PROJECT, **network_test(listener.port)})
    ensure_pools(["python-swarm"])
    deploy_swarms({"python": "python-swarm"})
    assert ensure_docker_pool() in (True, False)
    deploy_docker_swarm(swarm_image, tmp_path / "home-docker")
    state = tmp_path / "workers"
    env = {"PREFECT_API_URL": prefect_api_url, "PREFECT_HOME": str(tmp_path / "worker-prefect-home"),
           "PREFECT_LOGGING_LEVEL": "INFO"}
    started = start_workers(["python-swarm", DOCKER_POOL], 1, state_dir=state, env=env, query_seconds=1,
                            die_with_parent=True)
    try:
        assert wait_for_workers(DOCKER_POOL, 1, timeout_s=120) >= 1
        assert wait_for_workers("python-swarm", 1, timeout_s=120) >= 1
        runs = {}
        for pool_type in ("process", "docker"):
            runs[pool_type] = run_swarm(project_dir=str(tree), languages=["python"], shards=2,
                                        home=str(tmp_path / f"home-{pool_type}"), mode="distributed",
                                        pool_type=pool_type, pickup_timeout_s=180, reuse=False)
    finally:
        stop_workers(state)
    logs = "\n".join(Path(w.log).read_text(errors="replace")[-3000:] for w in started)
    process, docker = runs["process"]["swarms"]["python"], runs["docker"]["swarms"]["python"]
    assert docker["extra"]["work_pool"] == DOCKER_POOL, (docker, logs)
    assert process["extra"]["work_pool"] == "python-swarm"
    tests = {k: next(r for r in v["results"] if r["check"] == "tests") for k, v in (("process", process),
                                                                                    ("docker", docker))}
    assert tests["docker"]["counts"] is not None, (tests["docker"], logs)
    for key in ("passed", "failed", "errors", "skipped", "xfailed", "subtests_passed"):
        assert tests["process"]["counts"][key] == tests["docker"]["counts"][key], (key, tests, logs)
    assert tests["docker"]["isolation"] == "docker" and tests["process"]["isolation"] != "docker"
    # the network test failed inside the shard's container: the host's listener saw nothing
    assert "tests/test_network.py::test_reaches_the_host" in tests["docker"]["data"]["failed_tests"], tests
    assert listener.accepted == 0
    # durations reached the hive as from the process pool
    durations = {k: open_hive(tmp_path / f"home-{k}" / "registry.db").durations("shardme") for k in runs}
    assert durations["docker"] and set(durations["docker"]) == set(durations["process"])
    assert _noa_containers(engine) == []


def test_missing_swarm_image_is_one_line_naming_the_fix(engine: Any) -> None:
    from noa_core.swarm.docker_image import missing_image_reason

    reason = missing_image_reason("noa/swarm:0000000000000000", client=engine)
    assert reason is not None and "not in the engine" in reason and "noa swarm up --pools python-swarm-docker" in reason
    assert "\n" not in reason


def _noa(args: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "noa_core.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.mark.slow
def test_cli_user_path_docker_pool_on_the_embedded_server(engine: Any, tmp_path: Path) -> None:
    """What a user types, each command its own process, one NOA_HOME, NOA's own embedded Prefect
    server (no PREFECT_API_URL: the path where `noa swarm run` once started a second, empty server):
    noa swarm up --pools python-swarm-docker; noa swarm run --distributed --docker; the same run
    embedded; noa swarm down; noa prefect stop."""
    from noa_core.orchestration.prefect_server import _pid_alive

    tree = write_tree(tmp_path / "shardme", SHARD_PROJECT)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "NOA_")) or k in ("NOA_DOCKER_CACHE", "NOA_DOCKERD_HOST")}
    env["NOA_HOME"] = str(home)
    up = _noa(["swarm", "up", "--pools", "python-swarm-docker", "--workers", "1", "--json"], env)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        workers = json.loads(up.stdout)["workers"]
        assert [w["pool"] for w in workers] == ["python-swarm-docker"]
        server = json.loads((home / "prefect" / "server.json").read_text())
        run = _noa(["swarm", "run", str(tree), "--languages", "python", "--distributed", "--docker", "--fresh",
                    "--json"], env)
        embedded = _noa(["swarm", "run", str(tree), "--languages", "python", "--fresh", "--json"], env)
        # one Prefect server for this home, the one `up` started, reused by both runs
        assert json.loads((home / "prefect" / "server.json").read_text()) == server
        assert "Prefect server started" not in run.stderr + embedded.stderr
        assert f":{server['port']}/" in run.stderr
    finally:
        down = _noa(["swarm", "down"], env, timeout=120)
        stopped = _noa(["prefect", "stop"], env, timeout=120)
    logs = "\n".join(Path(w["log"]).read_text(errors="replace")[-3000:] for w in workers)
    assert run.returncode == embedded.returncode == 1, (run.stderr[-3000:], logs)  # SHARD_PROJECT fails one test
    docker_doc, embedded_doc = json.loads(run.stdout), json.loads(embedded.stdout)
    swarm = docker_doc["swarms"]["python"]
    assert docker_doc["mode"] == "distributed" and swarm["extra"]["work_pool"] == "python-swarm-docker", swarm
    assert swarm["extra"]["worker"] == workers[0]["name"]
    tests = next(r for r in swarm["results"] if r["check"] == "tests")
    assert tests["isolation"] == "docker" and not tests["cached"], tests
    assert embedded_doc["mode"] == "embedded"
    # the same counts; only the summary line may differ: the first run confirms its shard failure by a
    # whole-suite run, the second knows from the hive that the test fails in whole runs too
    def counts(doc: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in doc["counts"].items() if k != "summary_line"}

    assert counts(docker_doc) == counts(embedded_doc), (docker_doc["counts"], embedded_doc["counts"])
    assert docker_doc["counts"]["passed"] > 0 and docker_doc["counts"]["failed"] == 1
    # nothing left: workers, the server, containers
    assert down.returncode == 0 and f"pid {workers[0]['pid']}" in down.stdout
    assert stopped.returncode == 0 and not _pid_alive(server["pid"])
    assert not any(_pid_alive(w["pid"]) for w in workers)
    assert _noa_containers(engine) == []
    flow_runs = engine.containers.list(all=True, filters={"label": f"noa.home={str(home.resolve())[-200:]}"})
    assert flow_runs == []
