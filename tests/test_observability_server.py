"""Observability as an operator sees it: a span per API request (JSON file) linked to the request's
run id, JSON-lines logs with run ids, Prometheus metrics, the Grafana dashboard JSON, `noa dashboard`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from noa_core.observability.dashboard import collect, render_html
from noa_core.observability.logs import read_log_lines
from noa_core.observability.metrics import NoaMetrics
from noa_core.observability.tracing import make_tracing, read_spans
from noa_core.server.app import create_app
from tests.server_helpers import bearer, settings_for, tokens

GRAFANA = Path(__file__).resolve().parents[1] / "noa_core" / "data" / "grafana" / "noa.json"


def test_every_request_has_a_span_and_mutations_a_log_line_with_the_run_id(tmp_path):
    settings = settings_for(tmp_path)
    app = create_app(settings, record_change=None, schedule_backup=None, prefect_events=False)
    toks = tokens(app)
    with TestClient(app) as client:
        r = client.get("/v1/projects", headers={**bearer(toks["read"]), "X-Request-ID": "req-123"})
        assert r.headers["x-request-id"] == "req-123"
        r = client.post("/v1/projects", headers={**bearer(toks["write"]), "X-Request-ID": "req-456"},
                        json={"name": "traced"})
        assert r.status_code == 201
        assert client.get("/v1/nowhere", headers=bearer(toks["read"])).status_code == 404
        auto = client.get("/health").headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", auto)
    spans = read_spans(settings.home / "traces" / "spans.jsonl")
    by_run = {s["attributes"].get("noa.run_id"): s for s in spans if s["name"].startswith("HTTP ")}
    # the write's event span (published after the answer, in a worker thread) carries the same run id
    assert any(s["name"] == "event project.registered" and s["attributes"]["noa.run_id"] == "req-456" for s in spans)
    assert by_run["req-123"]["name"] == "HTTP GET /v1/projects"
    assert by_run["req-123"]["attributes"]["http.response.status_code"] == 200
    assert by_run["req-456"]["attributes"]["http.route"] == "/v1/projects"
    assert by_run[auto]["name"] == "HTTP GET /health"
    assert any(s["attributes"].get("http.route") == "unmatched" for s in spans)
    lines = read_log_lines(settings.home / "logs", "server")
    post = [line for line in lines if line.get("http_method") == "POST"]
    assert post and post[0]["run_id"] == "req-456" and post[0]["status"] == 201 and post[0]["route"] == "/v1/projects"
    assert all(toks["write"] not in json.dumps(line) for line in lines)  # no secrets in logs


def test_metrics_endpoint_has_latency_histograms(tmp_path):
    app = create_app(settings_for(tmp_path), record_change=None, schedule_backup=None, prefect_events=False)
    toks = tokens(app)
    with TestClient(app) as client:
        client.get("/v1/projects", headers=bearer(toks["read"]))
        r = client.get("/metrics")
        assert r.headers["content-type"].startswith("text/plain")
        assert 'noa_http_request_seconds_bucket{le="0.01",method="GET",route="/v1/projects"}' in r.text
        assert 'noa_http_requests_total{method="GET",route="/v1/projects",status="200"} 1.0' in r.text
    other = create_app(settings_for(tmp_path / "b"), record_change=None, schedule_backup=None, prefect_events=False)
    with TestClient(other) as client:  # a second app in the same process starts from zero
        assert 'route="/v1/projects"' not in client.get("/metrics").text


def test_otlp_is_reported_when_configured_without_its_exporter(tmp_path, monkeypatch):
    assert make_tracing(tmp_path).otlp_status == "skipped: OTEL_EXPORTER_OTLP_ENDPOINT is not set"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    status = make_tracing(tmp_path).otlp_status
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError:
        assert status.startswith("skipped:") and "not installed" in status
    else:
        assert status == "ok: http://127.0.0.1:4318/v1/traces"


def test_stage_span_helper_for_flows(tmp_path):
    tracing = make_tracing(tmp_path, batch=False)
    try:
        with tracing.stage("build", run_id="flow-run-9", project="hello"):
            raise RuntimeError("compiler exploded")
    except RuntimeError:
        pass
    span = read_spans(tracing.file)[0]
    assert span["name"] == "stage build" and span["status"] == "ERROR"
    assert span["attributes"] == {"noa.stage": "build", "project": "hello", "noa.run_id": "flow-run-9"}


def test_grafana_dashboard_charts_metrics_that_exist():
    board = json.loads(GRAFANA.read_text())
    exposed = set(re.findall(r"^# TYPE (\w+) (\w+)", NoaMetrics().exposition().decode(), re.MULTILINE))
    names = {n for n, _ in exposed}
    histograms = {n for n, t in exposed if t == "histogram"}
    counters = {n for n, t in exposed if t == "counter"}
    names |= {f"{h}_bucket" for h in histograms} | {f"{c}_total" for c in counters}
    names |= {"noa_cache_hits_total", "noa_cache_misses_total"}  # from the cache collector
    used = {m for p in board["panels"] for t in p["targets"] for m in re.findall(r"\bnoa_\w+", t["expr"])}
    assert used and used <= names, used - names
    assert len(board["panels"]) >= 12


def _reports(reports: Path) -> None:
    reports.mkdir(parents=True)
    (reports / "d1.json").write_text(json.dumps({"drop_id": "d1", "timings": {"fetch": 0.5, "analyse": 3.0},
                                                 "tests": {"status": "passed"}}))
    (reports / "d2.json").write_text(json.dumps({"drop_id": "d2", "timings": {"fetch": 1.5}, "tests": {"status": "failed"}}))
    (reports / "p1.json").write_text(json.dumps({"stages": [{"name": "build", "status": "passed", "duration_s": 4},
                                                            {"name": "security", "status": "failed", "duration_s": 2}],
                                                 "deploy": {"env": "production", "outcome": "rolled_back",
                                                            "finished": "2026-11-25T10:00:00Z"}}))
    (reports / "dep.json").write_text(json.dumps({"app": "hello", "env": "staging", "strategy": "blue-green",
                                                  "outcome": "promoted"}))
    (reports / "broken.json").write_text("{not json")


def test_dashboard_html_is_self_contained(tmp_path):
    _reports(tmp_path / "reports")
    data = collect(tmp_path / "reports")
    assert data.reports == 4 and data.rollbacks == 1 and data.unreadable == ["broken.json"]
    assert dict(data.deploys) == {("production", "rolled_back"): 1, ("staging", "promoted"): 1}
    page = render_html(data)
    assert page.count("<svg") == 5 and "drop:analyse" in page and "50 %" in page
    assert not re.search(r"(src|href)=\"https?:", page) and "<script" not in page


def test_noa_dashboard_cli(tmp_path):
    from noa_core.cli.main import app as cli_app
    from noa_core.cli.server_cmd import register

    if not any(c.name == "dashboard" for c in cli_app.registered_commands):
        register(cli_app)
    home = tmp_path / "noa"
    _reports(home / "reports")
    out = tmp_path / "dash.html"
    r = CliRunner().invoke(cli_app, ["dashboard", "--out", str(out), "--home", str(home), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"out": str(out.resolve()), "reports": 4, "stages": 4, "deploys": 2, "rollbacks": 1}
    assert out.read_text().startswith("<!doctype html>")


def test_outcomes_recorded_by_other_processes_reach_the_servers_metrics(tmp_path):
    """Flows run by `noa pipeline`, workers or `noa deploy` write the CL tree of the shared NOA_HOME;
    the server follows it into /metrics (stages, pipelines, deploys, rollbacks, backups)."""
    import subprocess
    import sys
    import time

    settings = settings_for(tmp_path)
    record = ("import sys; from pathlib import Path; from noa_core.config import NoaSettings;"
              "from noa_core.cltree import record_change as r; s = NoaSettings(home=Path(sys.argv[1]));"
              "r(s, 'stage', 'hello/build', {'status': 'passed', 'duration_s': 2.5});"
              "r(s, 'stage', 'hello/testing', {'status': 'failed', 'duration_s': 7.0});"
              "r(s, 'pipeline', 'hello', {'verdict': 'failed', 'duration_s': 41.0});"
              "r(s, 'release', 'hello', {'app': 'hello', 'env': 'production', 'outcome': 'rolled_back'});"
              "r(s, 'rollback', 'hello', {'app': 'hello', 'env': 'production', 'outcome': 'rolled_back'});"
              "r(s, 'backup', 'snap1', {'repository': 's3:bucket/noa', 'bytes': 12345})")
    app = create_app(settings, record_change=None, schedule_backup=None, prefect_events=False, plugins=False,
                     cltree_metrics_s=0.1)
    with TestClient(app) as client:
        subprocess.run([sys.executable, "-c", record, str(settings.home)], check=True,
                       cwd=Path(__file__).resolve().parents[1], timeout=120)
        expected = ['noa_stage_runs_total{stage="build",status="passed"} 1.0',
                    'noa_stage_runs_total{stage="testing",status="failed"} 1.0',
                    'noa_stage_seconds_sum{stage="testing"} 7.0',
                    'noa_flow_runs_total{flow="noa_pipeline",outcome="failed"} 1.0',
                    'noa_flow_seconds_sum{flow="noa_pipeline"} 41.0',
                    'noa_deploys_total{env="production",outcome="rolled_back"} 1.0',
                    'noa_rollbacks_total{app="hello"} 1.0',
                    'noa_backup_bytes{backend="s3"} 12345.0']
        deadline = time.monotonic() + 30
        while True:
            text = client.get("/metrics").text
            missing = [line for line in expected if line not in text]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert not missing, missing
        time.sleep(0.5)  # counted once, not again on every poll
        assert 'noa_stage_runs_total{stage="build",status="passed"} 1.0' in client.get("/metrics").text


def test_swarm_queue_depth_counts_runs_no_worker_has_taken(prefect_api_url, tmp_path, monkeypatch):
    """Flow runs waiting in a swarm's work pool (no worker up) show as noa_swarm_queue_depth."""
    import asyncio
    import time
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    pool = f"queue-probe-{uuid.uuid4().hex[:8]}"

    async def enqueue(n: int) -> tuple[object, list[object]]:
        async with get_client() as client:
            await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            flow_id = await client.create_flow_from_name(f"{pool}-flow")
            dep = await client.create_deployment(flow_id=flow_id, name=pool, work_pool_name=pool,
                                                 entrypoint="probe.py:probe")
            runs = [await client.create_flow_run_from_deployment(dep) for _ in range(n)]
            return dep, [r.id for r in runs]

    async def clean(dep: object, runs: list[object]) -> None:
        async with get_client() as client:
            for rid in runs:
                await client.delete_flow_run(rid)
            await client.delete_deployment(dep)
            await client.delete_work_pool(pool)

    dep, runs = asyncio.run(enqueue(3))
    monkeypatch.setenv("PREFECT_API_URL", prefect_api_url)
    try:
        app = create_app(settings_for(tmp_path), record_change=None, schedule_backup=None, prefect_events=False,
                         plugins=False, swarm_queue_s=0.2, swarm_pools={"python": pool, "go": f"{pool}-none"})
        with TestClient(app) as client:
            deadline = time.monotonic() + 30
            while True:
                text = client.get("/metrics").text
                if 'noa_swarm_queue_depth{language="python"} 3.0' in text or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        assert 'noa_swarm_queue_depth{language="python"} 3.0' in text
        assert 'noa_swarm_queue_depth{language="go"} 0.0' in text  # a pool that does not exist: nothing waits
    finally:
        asyncio.run(clean(dep, runs))
