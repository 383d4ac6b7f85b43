"""The Python swarm on the ``python-swarm-docker`` work pool, against the real Docker engine.

A ``prefect worker --type docker`` (prefect-docker) runs the swarm flow run in a container
of the swarm image; each test shard runs in a sibling container with ``--network none`` and
its code read-only. Needs the engine ``scripts/dockerd.sh start`` runs; the swarm image is
built once (about a minute with a warm cache, reused after).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_swarm_support import SHARD_PROJECT, write_tree


def _engine() -> Any:
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine here
        pytest.skip(f"no Docker engine ({type(exc).__name__}): start one with scripts/dockerd.sh start",
                    allow_module_level=True)


@pytest.fixture(scope="module")
def engine() -> Any:
    return _engine()


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
    from flows.swarm import deploy_swarms, ensure_pools, run_swarm, wait_for_workers
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
