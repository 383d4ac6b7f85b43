"""`noa deploy` / `noa rollback` as a user runs them (subprocesses against the session's
Prefect server), and the deploy flow's manual judgement (pause for approval)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_helpers import ROOT, body_of, cleanup_home, make_app
from result_schema_helpers import assert_matches_schema

# the lead registers deploy_cmd in noa_core/cli/main.py; until then register it here
CLI = ("import sys\nfrom noa_core.cli.main import app\n"
       "if not any(c.name == 'deploy' for c in app.registered_commands):\n"
       "    from noa_core.cli.deploy_cmd import register; register(app)\n"
       "sys.argv[0] = 'noa'\napp()\n")


def noa(home: Path, api: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NOA_"))}
    env.update(NOA_HOME=str(home), PREFECT_LOGGING_LEVEL="WARNING", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PYTHONPATH=str(ROOT))
    if api:
        env["PREFECT_API_URL"] = api
    return subprocess.run([sys.executable, "-c", CLI, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    h = tmp_path / "home"
    yield h
    cleanup_home(h)


def test_bad_input_is_exit_2_with_one_line(home: Path, tmp_path: Path) -> None:
    app = make_app(tmp_path, version="1.0")
    for args, expected in ((["deploy", str(app), "--env", "qa"], "--env must be one of staging, production"),
                           (["deploy", str(app), "--strategy", "yolo"], "--strategy must be one of"),
                           (["deploy", str(tmp_path / "nowhere")], "no noa.yaml")):
        proc = noa(home, None, *args)
        assert proc.returncode == 2, proc.stderr[-1000:]
        assert proc.stdout == ""
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("noa: error:")]
        assert len(lines) == 1 and expected in lines[0], proc.stderr[-1000:]


@pytest.mark.slow
def test_noa_deploy_json_canary_then_rollback(home: Path, tmp_path: Path, prefect_api_url: str) -> None:
    proc = noa(home, prefect_api_url, "deploy", str(make_app(tmp_path, version="1.0")), "--env", "production",
               "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    first = json.loads(proc.stdout)
    url = f"http://{first['endpoint']}/hello"
    proc = noa(home, prefect_api_url, "deploy", str(make_app(tmp_path, version="2.0")), "--env", "production",
               "--interval", "0.5", "--steps", "50,100", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout)
    assert {"app", "env", "strategy", "steps", "outcome", "release", "reason"} <= set(res)
    assert (res["app"], res["env"], res["strategy"], res["outcome"]) == ("svc", "production", "canary", "promoted")
    for step in res["steps"]:
        assert {"weight", "duration_s", "metrics", "verdict"} <= set(step)
    assert body_of(url) == "hello from 2.0\n"  # the app outlived the CLI process
    assert_matches_schema(res, "DeployReport")

    proc = noa(home, prefect_api_url, "rollback", "svc", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    back = json.loads(proc.stdout)
    assert back["outcome"] == "rolled_back" and back["release"] == first["release"]
    assert_matches_schema(back, "RollbackReport")
    assert body_of(url) == "hello from 1.0\n"

    proc = noa(home, prefect_api_url, "deploy", str(make_app(tmp_path, version="3.0", mode="unhealthy")),
               "--env", "production", "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["outcome"] == "failed"


@pytest.mark.slow
def test_a_canary_step_waits_for_approval_in_prefect(home: Path, tmp_path: Path, prefect_api_url: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.flow_runs import resume_flow_run

    from flows.deploy import deploy

    v1 = make_app(tmp_path, version="1.0")
    first = asyncio.run(deploy(str(v1), env="production", home=str(home)))
    seen: list[str] = []

    def approver() -> None:
        async def go() -> None:
            async with get_client() as client:
                for _ in range(600):
                    runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
                        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
                    if runs:
                        seen.append(str(runs[0].id))
                        await resume_flow_run(runs[0].id, run_input={"approve": True})
                        return
                    await asyncio.sleep(0.1)
        asyncio.run(go())

    t = threading.Thread(target=approver)
    t.start()
    t0 = time.monotonic()
    res = asyncio.run(deploy(str(make_app(tmp_path, version="2.0")), env="production", home=str(home),
                             interval_s=0.5, steps=[25, 100], pause_at=[25], approval_timeout_s=60))
    t.join(30)
    assert seen, "the flow run never paused"
    names = [s["name"] for s in res["steps"]]
    assert "approval at 25%" in names and res["outcome"] == "promoted", res
    assert time.monotonic() - t0 < 60
    assert body_of(f"http://{first['endpoint']}/hello") == "hello from 2.0\n"


@pytest.mark.slow
def test_a_deploy_that_breaks_off_puts_traffic_back_fake_crash(home: Path, tmp_path: Path, prefect_api_url: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The controller is made to die half-way (50 % on the canary): the flow restores the routing."""
    from flows.deploy import deploy
    from noa_core.deploy.controller import DeployController, route_name
    from noa_core.deploy.interface import Upstream

    first = asyncio.run(deploy(str(make_app(tmp_path, version="1.0")), env="production", home=str(home)))
    url = f"http://{first['endpoint']}/hello"

    def broken(self: DeployController, release, current, opts):
        inst = self.target.start(release)
        self.target.wait_healthy(inst)
        self.router.set_upstreams(self.route, [Upstream(current[1].endpoint, 1), Upstream(inst.endpoint, 1)])
        raise RuntimeError("controller died")

    monkeypatch.setattr(DeployController, "_canary", broken)
    with pytest.raises(RuntimeError, match="controller died"):
        asyncio.run(deploy(str(make_app(tmp_path, version="2.0")), env="production", home=str(home)))
    from noa_core.deploy.caddy_router import CaddyRouter

    ups = CaddyRouter(home).upstreams(route_name("svc", "production"))
    assert [u.endpoint for u in ups] == [first["instance"]["endpoint"]]
    assert {body_of(url) for _ in range(10)} == {"hello from 1.0\n"}
