"""The API as a user sees it: reads of real registry rows and reports, retrieval over dropped code,
local-model inference (503 when the model is missing), and an OpenAPI spec documenting every code."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from noa_core.analysis.llm import find_model_path, llm_unavailable_reason
from noa_core.server.app import create_app
from noa_core.server.inference import Inference
from tests.server_helpers import bearer, settings_for, tokens
from tests.server_schemathesis_app import build


@pytest.fixture()
def client_and_token(tmp_path):
    app = build(tmp_path / "noa")
    toks = tokens(app)
    with TestClient(app) as client:
        yield client, toks["read"]


def test_registry_reads(client_and_token):
    client, tok = client_and_token
    h = bearer(tok)
    projects = client.get("/v1/projects", headers=h).json()
    assert [p["name"] for p in projects["items"]] == ["hello"] and projects["items"][0]["root_commits"] == ["a" * 40]
    detail = client.get("/v1/projects/hello", headers=h).json()
    assert [d["id"] for d in detail["drops"]] == ["20261125-000000-hello-abcdef"]
    drops = client.get("/v1/drops", headers=h, params={"limit": 1}).json()
    assert drops["total"] == 1 and drops["items"][0]["source"] == "/tmp/hello"
    assert client.get("/v1/drops/20261125-000000-hello-abcdef", headers=h).json()["status"] == "received"
    assert client.get("/v1/drops/nope", headers=h).status_code == 404
    assert client.get("/v1/drops/..%2F..%2Fetc", headers=h).status_code in (404, 422)
    report = client.get("/v1/reports/20261125-000000-hello-abcdef", headers=h)
    assert report.json()["timings"] == {"fetch": 0.1} and report.headers["x-cache"] == "miss"
    assert client.get("/v1/reports/20261125-000000-hello-abcdef", headers=h).headers["x-cache"] == "hit"
    assert client.get("/v1/reports", headers=h).json()["items"][0]["drop_id"] == "20261125-000000-hello-abcdef"


def test_release_reads(client_and_token):
    client, tok = client_and_token
    h = bearer(tok)
    r = client.get("/v1/releases", headers=h).json()
    assert r["items"] == [{"app": "hello", "env": "staging", "history": 1,
                           "active": r["items"][0]["active"]}] and r["items"][0]["active"]["outcome"] == "promoted"
    one = client.get("/v1/releases/staging/hello", headers=h)
    assert one.json()["active"]["release"]["release_id"] == "r1"
    assert client.get("/v1/releases/production/hello", headers=h).status_code == 404
    assert client.get("/v1/releases/qa/hello", headers=h).status_code == 422


def test_search_files_symbols_text_ranked_and_paged(client_and_token):
    client, tok = client_and_token
    h = bearer(tok)
    r = client.get("/v1/search", headers=h, params={"q": "greet"}).json()
    kinds = [i["kind"] for i in r["items"]]
    assert kinds[0] == "symbol" and r["items"][0]["path"] == "hello.py" and r["items"][0]["line"] == 1
    assert "text" in kinds
    r = client.get("/v1/search", headers=h, params={"q": "hello"}).json()
    assert r["items"][0]["kind"] == "project"  # exact name match ranks first
    assert {"project", "drop", "file", "text"} <= {i["kind"] for i in r["items"]}
    page1 = client.get("/v1/search", headers=h, params={"q": "hello", "per_page": 2}).json()
    page2 = client.get("/v1/search", headers=h, params={"q": "hello", "per_page": 2, "page": 2}).json()
    assert page1["total"] == page2["total"] == r["total"] and len(page1["items"]) == 2
    assert page1["items"] + page2["items"] == r["items"][:4]
    only = client.get("/v1/search", headers=h, params={"q": "hello", "kind": "file"}).json()
    assert {i["kind"] for i in only["items"]} == {"file"}
    assert client.get("/v1/search", headers=h, params={"q": "x"}).status_code == 422


def test_inference_without_model_is_skipped(tmp_path):
    app = create_app(settings_for(tmp_path), inference=Inference(tmp_path / "missing.gguf"), record_change=None,
                     schedule_backup=None, prefect_events=False)
    toks = tokens(app)
    with TestClient(app) as client:
        r = client.post("/v1/inference/completions", headers=bearer(toks["read"]), json={"prompt": "hi"})
        assert r.status_code == 503 and r.json()["detail"].startswith("skipped: model not installed")
        assert client.get("/health").json()["inference"].startswith("skipped: model not installed")


@pytest.mark.slow
@pytest.mark.skipif(llm_unavailable_reason(find_model_path()) is not None, reason="the local model is not installed")
def test_inference_with_the_local_model(tmp_path):
    app = create_app(settings_for(tmp_path), inference_concurrency=1, record_change=None, schedule_backup=None,
                     prefect_events=False)
    toks = tokens(app)
    with TestClient(app) as client:
        h = bearer(toks["read"])
        r = client.post("/v1/inference/chat", headers=h,
                        json={"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"].endswith(".gguf") and 0 < body["completion_tokens"] <= 8 and body["text"]
        r = client.post("/v1/inference/completions", headers=h, json={"prompt": "def add(a, b):", "max_tokens": 8})
        assert r.status_code == 200 and r.json()["completion_tokens"] > 0
        assert client.post("/v1/inference/completions", headers=h,
                           json={"prompt": "x", "max_tokens": 10_000}).status_code == 422


def test_openapi_documents_every_status_code(tmp_path):
    app = create_app(settings_for(tmp_path), record_change=None, schedule_backup=None, prefect_events=False)
    spec = app.openapi()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            if path.startswith("/v1/"):
                assert {"401", "403", "429"} <= codes, (method, path)
                assert op.get("security") == [{"bearer": []}], (method, path)
            if "requestBody" in op and not path.startswith("/webhooks"):
                assert {"413", "422"} <= codes, (method, path)
            if op.get("parameters"):
                assert "422" in codes, (method, path)
    json.dumps(spec)  # serialisable as served


def test_github_webhook_router_is_mounted_when_a_secret_is_configured(tmp_path):
    import uuid

    from noa_core.webhooks.github import sign
    from tests.server_helpers import FakeOrchestrator

    plain = create_app(settings_for(tmp_path / "a"), record_change=None, schedule_backup=None, prefect_events=False)
    assert "/webhooks/github" not in plain.openapi()["paths"]
    assert plain.state.noa.webhook_status.startswith("skipped:")
    app = create_app(settings_for(tmp_path / "b"), orchestrator=FakeOrchestrator(), webhook_secret="s3cret",
                     record_change=None, schedule_backup=None, prefect_events=False)
    assert app.state.noa.webhook_status == "ok"
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    headers = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": str(uuid.uuid4()), "Content-Type": "application/json"}
    with TestClient(app) as client:
        r = client.post("/webhooks/github", content=body, headers={**headers, "X-Hub-Signature-256": sign(body, "s3cret")})
        assert r.status_code == 200 and r.json()["status"] == "ignored"
        r = client.post("/webhooks/github", content=body, headers={**headers, "X-Hub-Signature-256": sign(body, "wrong")})
        assert r.status_code == 401
