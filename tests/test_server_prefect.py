"""Orchestration through the API against a real Prefect server (the session harness): a POST becomes a
deployment run of the right flow, its id comes back, and the status endpoint reads its state from Prefect."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from noa_core.server.app import create_app
from noa_core.server.orchestrator import PrefectOrchestrator
from tests.server_helpers import bearer, settings_for, tokens


def _app(tmp_path, serve: bool, kinds=("drop", "merge")):
    settings = settings_for(tmp_path)
    orch = PrefectOrchestrator(settings.home, serve=serve, kinds=kinds)
    app = create_app(settings, orchestrator=orch, schedule_backup=None, prefect_events=False)
    return app, tokens(app), orch


def test_post_creates_a_deployment_run_and_status_reads_it(tmp_path, prefect_api_url):
    app, toks, orch = _app(tmp_path, serve=False)
    with TestClient(app) as client:
        health = client.get("/health").json()
        assert health["prefect"] == "ok" and health["flows"]["drop"] == "ok" and health["flows"]["merge"] == "ok"
        r = client.post("/v1/merges", headers=bearer(toks["write"]), json={"sandboxes": ["B", "A"]})
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["steps"]["flow_run"] == "ok" and body["steps"]["change_log"] == "ok"
        status = client.get(f"/v1/runs/{body['flow_run_id']}", headers=bearer(toks["read"]))
        assert status.status_code == 200
        run = status.json()
        assert run["state"] == "SCHEDULED" and run["final"] is False  # nobody serves it in this test
        assert run["parameters"]["sandboxes"] == ["A", "B"]
        assert body["status_url"].endswith(f"/v1/runs/{body['flow_run_id']}")
        r = client.post("/v1/drops", headers=bearer(toks["write"]), json={"source": str(tmp_path), "sandbox": "C"})
        assert r.status_code == 202
        drop_run = client.get(f"/v1/runs/{r.json()['flow_run_id']}", headers=bearer(toks["read"])).json()
        assert drop_run["parameters"]["sandbox"] == "C" and drop_run["name"].startswith("api-drop-")
        missing = client.get("/v1/runs/00000000-0000-4000-8000-000000000000", headers=bearer(toks["read"]))
        assert missing.status_code == 404
        # a flow this server does not serve answers 503 "skipped: ..."
        r = client.post("/v1/rollbacks", headers=bearer(toks["write"]), json={"app": "hello"})
        assert r.status_code == 503 and r.json()["detail"].startswith("skipped:")


def test_without_prefect_runs_are_skipped(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    import noa_core.server.orchestrator as o

    monkeypatch.setattr(o, "prefect_api_url", lambda: None)
    app, toks, _ = _app(tmp_path, serve=False)
    with TestClient(app) as client:
        r = client.post("/v1/drops", headers=bearer(toks["write"]), json={"source": "x"})
        assert r.status_code == 503 and r.json()["detail"] == "skipped: no Prefect API configured (PREFECT_API_URL)"
        assert client.get("/v1/runs/00000000-0000-4000-8000-000000000000",
                          headers=bearer(toks["read"])).status_code == 503


@pytest.mark.slow
def test_served_run_reaches_a_final_state(tmp_path, prefect_api_url):
    """With serve=True (as `noa server` runs it) the runner executes the run; its final state shows through the API."""
    app, toks, _ = _app(tmp_path, serve=True, kinds=("drop", "merge", "pipeline", "deploy", "rollback", "cicd"))
    with TestClient(app) as client:
        assert set(client.get("/health").json()["flows"].values()) == {"ok"}, "a NOA flow did not import"
        r = client.post("/v1/merges", headers=bearer(toks["write"]), json={})
        assert r.status_code == 202
        run_id = r.json()["flow_run_id"]
        deadline = time.monotonic() + 150
        run = {}
        while time.monotonic() < deadline:
            run = client.get(f"/v1/runs/{run_id}", headers=bearer(toks["read"])).json()
            if run["final"]:
                break
            time.sleep(1)
        assert run["final"], run
        assert run["state"] in ("COMPLETED", "FAILED")  # an empty workspace may refuse the merge; either is real
        assert run["start_time"] and run["end_time"]


def test_status_of_a_completed_run_carries_its_result_model(tmp_path, prefect_api_url):
    """A finished NOA flow run's result (persisted by Prefect) comes back typed: the MergeReport `noa merge --json`
    prints, valid against its published schema."""
    from result_schema_helpers import assert_matches_schema

    from flows.runtime import run_in_process
    from flows.sandbox_merge import sandbox_merge

    app, toks, _ = _app(tmp_path, serve=False)
    settings = app.state.noa.settings
    report = run_in_process(sandbox_merge, home=str(settings.home))  # an empty workspace: nothing to merge
    assert report.outcome == "nothing to merge" and report.flow_run_id
    with TestClient(app) as client:
        run = client.get(f"/v1/runs/{report.flow_run_id}", headers=bearer(toks["read"])).json()
    assert run["state"] == "COMPLETED" and run["final"] is True
    assert run["result"]["run_id"] == report.run_id and run["result"]["outcome"] == "nothing to merge"
    assert_matches_schema(run["result"], "MergeReport")
    openapi = app.openapi()["components"]["schemas"]
    assert {"DropReport", "MergeReport", "PipelineReport", "DeployReport", "RollbackReport", "CicdReport"} <= set(openapi)
