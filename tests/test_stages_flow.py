"""The stage subflows, the unified workflow's gates and the error-handling flow, on the
session's real Prefect server (the swarm, semgrep, bandit and builds run for real)."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_swarm_support import TINY_GO, write_tree

RISKY = {
    "pyproject.toml": """
        [project]
        name = "risky"
        version = "0.1"
    """,
    "risky/__init__.py": """
        import subprocess


        def run(cmd):
            return subprocess.run(cmd, shell=True, check=False).returncode


        def calc(expr):
            return eval(expr)
    """,
    "tests/test_risky.py": """
        from risky import calc


        def test_calc():
            assert calc("1 + 1") == 2
    """,
}


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []  # noqa: RUF012 - reset per test by the fixture

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received.append(json.loads(body or b"{}"))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def webhook() -> Any:
    _Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alert", _Hook.received
    server.shutdown()
    server.server_close()


def subflows(client: Any, parent_id: str) -> dict[str, Any]:
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )

    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])))
    flows = {f.id: f.name for f in client.read_flows()}
    return {flows[r.flow_id]: r for r in runs}


def test_failed_security_gate_alerts_through_a_block_and_stops_the_later_stages(
        prefect_api_url: str, tmp_path: Path, webhook: Any) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import get_client

    from flows.unified_workflow import run_unified

    url, received = webhook
    CustomWebhookNotificationBlock(name="noa", url=url, allow_private_urls=True,
                                   json_data={"subject": "{{subject}}", "text": "{{body}}"}
                                   ).save("noa-test-alerts", overwrite=True)
    tree = write_tree(tmp_path / "risky", RISKY)
    doc = run_unified(project_dir=str(tree), home=str(tmp_path / "home"), shards=1,
                      alert_block="custom-webhook/noa-test-alerts")

    stages = {s["name"]: s for s in doc["stages"]}
    assert list(stages) == ["analysis", "testing", "performance", "security", "build", "staging", "production"]
    assert stages["analysis"]["status"] == "passed"
    assert stages["testing"]["status"] == "passed" and "1 passed" in stages["testing"]["details"]
    assert stages["performance"] == {**stages["performance"], "status": "skipped",
                                     "details": "skipped: no benchmarks found"}
    sec = stages["security"]
    assert sec["status"] == "failed" and "above medium" in sec["details"], sec
    assert sec["gate"]["passed"] is False and sec["gate"]["value"] == "high"
    checks = {c["check"]: c for c in sec["data"]["checks"]}
    assert checks["semgrep"]["status"] == "ok" and checks["semgrep"]["findings"] >= 2
    assert checks["bandit"]["findings"] >= 1
    for later in ("build", "staging", "production"):
        assert stages[later]["status"] == "skipped"
        assert stages[later]["details"] == "skipped: earlier gate failed (security)"
    assert doc["verdict"] == "failed" and doc["stopped_by"] == "security" and not doc["deployed"]

    handled = sec["data"]["error_handling"]
    assert handled["logged"] and handled["action"] == "mark failed" and not handled["critical"]
    assert handled["alert"] == {"via": "block", "block": "custom-webhook/noa-test-alerts", "status": "sent"}
    assert handled["change_log"]["status"] in ("recorded", "skipped")
    assert received and received[0]["subject"] == "NOA: stage security of risky failed"
    assert "above medium" in received[0]["text"]
    assert json.loads(Path(doc["report_path"]).read_text())["verdict"] == "failed"

    with get_client(sync_client=True) as client:
        children = subflows(client, doc["flow_run_id"])
        assert {"analysis_stage", "testing_stage", "performance_stage", "security_stage",
                "error_handling"} <= set(children)
        assert "build_stage" not in children  # stopped by the gate
        assert children["security_stage"].state.is_completed()  # a failed gate is a result, not a crash
        arts = client.read_artifacts()
        keys = {a.key for a in arts}
    assert {"stage-risky-analysis", "stage-risky-security", "unified-risky"} <= keys


def test_deploy_stages_never_pass_without_a_deployment_fake_missing_deploy(prefect_api_url: str, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.stages import production_stage, staging_stage

    hello = Path(__file__).resolve().parents[1] / "examples" / "hello-service"
    monkeypatch.setitem(sys.modules, "flows.deploy", None)  # as if the deploy flows were not installed
    home = str(tmp_path / "home")
    staged = asyncio.run(staging_stage(project_dir=str(hello), home=home))
    assert (staged["status"], staged["details"]) == ("skipped", "skipped: no deploy target")
    off = asyncio.run(production_stage(project_dir=str(hello), home=home, deploy=False))
    assert (off["status"], off["details"]) == ("skipped", "skipped: deployment disabled (--no-deploy)")


def test_error_policy_retries_transient_errors_then_falls_back_or_fails(prefect_api_url: str, tmp_path: Path) -> None:
    from prefect import flow

    from flows.error_handling import guarded_stage
    from noa_core.stages.errors import ErrorPolicy
    from noa_core.stages.result import Gate, StageResult

    calls = {"flaky": 0, "down": 0}

    @flow(name="flaky_stage")
    async def flaky(project_dir: str) -> dict:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise ConnectionRefusedError("server not up yet")
        return StageResult("build", "passed", "built", Gate("build", True)).as_dict()

    @flow(name="down_stage")
    async def down(project_dir: str) -> dict:
        calls["down"] += 1
        raise TimeoutError("registry timed out")

    @flow(name="fallback_stage")
    async def fallback(project_dir: str) -> dict:
        return StageResult("build", "passed", "built from the local cache", Gate("build", True)).as_dict()

    @flow(name="buggy_stage")
    async def buggy(project_dir: str) -> dict:
        raise ValueError("a bug")

    @flow(name="policy_harness")
    async def harness() -> dict:
        policy = ErrorPolicy(retries=2, delay_s=0.01)
        common = {"project": "p", "home": str(tmp_path / "home"), "policy": policy}
        return {"flaky": await guarded_stage("build", flaky, {"project_dir": "x"}, **common),
                "fallback": await guarded_stage("build", down, {"project_dir": "x"}, fallback=fallback, **common),
                "buggy": await guarded_stage("production", buggy, {"project_dir": "x"}, **common)}

    out = asyncio.run(harness())
    assert out["flaky"]["status"] == "passed" and out["flaky"]["data"]["attempts"] == 3
    assert out["fallback"]["status"] == "passed" and calls["down"] == 3
    assert out["fallback"]["details"] == "built from the local cache (fallback after TimeoutError)"
    bug = out["buggy"]
    assert bug["status"] == "failed" and bug["details"] == "error: ValueError: a bug"
    assert bug["data"]["attempts"] == 1  # not recoverable: no retry
    handled = bug["data"]["error_handling"]
    assert handled["critical"] and handled["action"] == "rollback"  # production: critical
    assert handled["alert"]["via"] == "log"


@pytest.mark.slow
def test_performance_stage_records_a_baseline_then_fails_a_regression(prefect_api_url: str, tmp_path: Path) -> None:
    from flows.stages import performance_stage
    from flows.swarm import run_swarm
    from noa_core.stages.performance import Baselines
    from noa_core.swarm.go import find_go

    if not find_go():
        pytest.skip("go not installed")
    tree = write_tree(tmp_path / "gobench", TINY_GO)
    home = str(tmp_path / "home")
    summary = run_swarm(project_dir=str(tree), languages=["go"], home=home)
    first = asyncio.run(performance_stage(project_dir=str(tree), home=home, project="gobench",
                                          swarm_report=summary["report_path"]))
    assert first["status"] == "passed" and first["details"].startswith("baseline recorded: ")
    base = Baselines(tmp_path / "home" / "baselines")
    marks = base.load("gobench")
    assert marks and all(k.startswith("go:Benchmark") for k in marks)
    # an earlier version was twice as fast
    doc = json.loads(base.path("gobench").read_text())
    for v in doc["benchmarks"].values():
        v["ns_per_op"] /= 2
    base.path("gobench").write_text(json.dumps(doc))
    second = asyncio.run(performance_stage(project_dir=str(tree), home=home, project="gobench",
                                           swarm_report=summary["report_path"], gates={"max_regression_pct": 10.0}))
    assert second["status"] == "failed" and "slower than the baseline" in second["details"]
    assert second["gate"]["value"] == pytest.approx(100.0, abs=0.5)
    lenient = asyncio.run(performance_stage(project_dir=str(tree), home=home, project="gobench",
                                            swarm_report=summary["report_path"], gates={"max_regression_pct": 150.0}))
    assert lenient["status"] == "passed"
