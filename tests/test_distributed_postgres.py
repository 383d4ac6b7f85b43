"""Distributed mode on this machine: a Prefect server on the local PostgreSQL (a fresh
database, dropped afterwards), two workers per swarm pool started by ``noa swarm up``,
and a ``noa pipeline --distributed`` run whose swarm subflows ran on those workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from test_prefect_ui_browser import NOA, free_port

HELLO = Path(__file__).resolve().parents[1] / "examples" / "hello-service"
PG = os.environ.get("NOA_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def _env(api: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NOA_"))}
    env.update(PREFECT_API_URL=api, NOA_HOME=str(home), PREFECT_LOGGING_LEVEL="WARNING",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_HOME=str(home / "prefect-client"))
    return env


def _workers_online(api: str, pool: str) -> set[str]:
    r = httpx.post(f"{api}/work_pools/{pool}/workers/filter", json={}, timeout=10)
    return {w["name"] for w in r.json() if str(w.get("status", "")).upper() == "ONLINE"} if r.status_code == 200 else set()


@pytest.mark.slow
def test_pipeline_swarms_run_on_pool_workers_with_prefect_on_postgresql(tmp_path: Path) -> None:
    try:
        _admin("SELECT 1")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {type(exc).__name__}")
    db = f"noa_prefect_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{db}"')
    home = tmp_path / "home"
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    server_env.update(PREFECT_HOME=str(tmp_path / "prefect-server"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                      PREFECT_UI_API_URL=api, PREFECT_LOGGING_LEVEL="WARNING",
                      PREFECT_SERVER_DATABASE_CONNECTION_URL=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db}")
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed in the finally below
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port), "--analytics-off"], env=server_env, stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-2000:]
            time.sleep(0.5)
        env = _env(api, home)
        try:
            up = subprocess.run([sys.executable, "-m", "noa_core.cli", "swarm", "up", "--workers", "2", "--json"],
                                env=env, capture_output=True, text=True, check=False, timeout=300)
            assert up.returncode == 0, up.stderr[-2000:]
            started = json.loads(up.stdout)["workers"]
            assert sorted(w["name"] for w in started if w["pool"] == "python-swarm") == ["python-swarm-1",
                                                                                          "python-swarm-2"]
            assert len(started) == 6  # two workers for each of the three pools, each its own process
            deadline = time.monotonic() + 120
            while len(_workers_online(api, "python-swarm")) < 2 and time.monotonic() < deadline:
                time.sleep(1)
            assert _workers_online(api, "python-swarm") == {"python-swarm-1", "python-swarm-2"}

            run = subprocess.run([sys.executable, "-c", NOA, "pipeline", str(HELLO), "--json", "--no-ai",
                                  "--no-deploy", "--distributed"], env=env, capture_output=True, text=True, check=False,
                                 timeout=600)
            assert run.returncode == 0, run.stderr[-3000:]
            doc = json.loads(run.stdout)
        finally:
            down = subprocess.run([sys.executable, "-m", "noa_core.cli", "swarm", "down"], env=env,
                                  capture_output=True, text=True, check=False, timeout=120)
            from noa_core.swarm.workers import alive_workers, stop_workers

            stop_workers(home / "swarm")  # whatever `down` left (it should leave nothing)
            assert alive_workers(home / "swarm") == [], down.stdout

        assert doc["verdict"] == "passed"
        swarm = doc["steps"]["swarm"]
        assert swarm["mode"] == "distributed"
        assert swarm["workers"]["python"] in {"python-swarm-1", "python-swarm-2"}
        testing = next(s for s in doc["stages"] if s["name"] == "testing")
        assert testing["status"] == "passed" and testing["data"]["fallback"] is None
        assert testing["data"]["workers"]["python"] == swarm["workers"]["python"]
        report = json.loads(Path(swarm["report_path"]).read_text())
        extra = report["swarms"]["python"]["extra"]
        flow_run = httpx.get(f"{api}/flow_runs/{extra['flow_run_id']}", timeout=10).json()
        assert flow_run["work_pool_name"] == "python-swarm"
        assert flow_run["labels"]["prefect.worker.name"] == swarm["workers"]["python"]  # the run history says which
        assert flow_run["state"]["type"] == "COMPLETED"
        assert flow_run["infrastructure_pid"]
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
        _admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
