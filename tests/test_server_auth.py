"""Bearer tokens with scopes: every mutating endpoint refuses a missing, wrong or under-scoped token;
tokens are stored hashed; revocation; per-token rate limits (429 + Retry-After); the token CLI."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from noa_core.server.app import create_app
from noa_core.server.ratelimit import RateLimit
from tests.server_helpers import FakeOrchestrator, bearer, settings_for, tokens

# a valid body for every mutating operation: the refusal must come from auth, not validation
BODIES = {
    ("post", "/v1/projects"): {"name": "demo"},
    ("post", "/v1/drops"): {"source": "/tmp/nowhere"},
    ("post", "/v1/pipelines"): {"source": "/tmp/nowhere"},
    ("post", "/v1/merges"): {"sandboxes": ["A", "B"]},
    ("post", "/v1/deploys"): {"project_dir": "/tmp/nowhere", "env": "staging"},
    ("post", "/v1/rollbacks"): {"app": "hello"},
    ("post", "/v1/events"): {"kind": "drop.finished", "subject": "x"},
    ("post", "/v1/tokens"): {"name": "new-one", "scope": "read"},
    ("delete", "/v1/tokens/{name}"): None,
}
NEEDS = {("post", "/v1/tokens"): "admin", ("delete", "/v1/tokens/{name}"): "admin"}
LOWER = {"write": "read", "admin": "write"}


@pytest.fixture()
def app_and_tokens(tmp_path):
    app = create_app(settings_for(tmp_path), orchestrator=FakeOrchestrator(), record_change=None,
                     schedule_backup=None, prefect_events=False)
    toks = tokens(app)
    with TestClient(app) as client:
        yield app, client, toks


def _mutating(app) -> set[tuple[str, str]]:
    spec = app.openapi()
    return {(m, p) for p, ops in spec["paths"].items() for m in ops
            if m in ("post", "put", "patch", "delete") and not p.startswith(("/v1/inference", "/webhooks"))}


def _call(client, method, path, token=None, raw_header=None):
    url = path.replace("{name}", "t-read")
    headers = bearer(token) if token else {}
    if raw_header:
        headers = {"Authorization": raw_header}
    body = BODIES[(method, path)]
    return client.request(method.upper(), url, headers=headers, json=body) if body is not None else \
        client.request(method.upper(), url, headers=headers)


def test_every_mutating_endpoint_is_listed(app_and_tokens):
    app, _, _ = app_and_tokens
    assert _mutating(app) == set(BODIES)


@pytest.mark.parametrize("op", sorted(BODIES))
def test_mutating_endpoint_refuses_missing_wrong_and_underscoped_tokens(app_and_tokens, op):
    app, client, toks = app_and_tokens
    method, path = op
    before = client.get("/v1/projects", headers=bearer(toks["read"])).json()
    r = _call(client, method, path)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = _call(client, method, path, raw_header="Basic dXNlcjpwYXNz")
    assert r.status_code == 401
    forged = "noa_" + toks["write"].split("_")[1] + "_" + "A" * 43
    assert _call(client, method, path, token=forged).status_code == 401
    assert _call(client, method, path, token="not-a-token").status_code == 401
    needed = NEEDS.get(op, "write")
    r = _call(client, method, path, token=toks[LOWER[needed]])
    assert r.status_code == 403 and needed in r.json()["detail"]
    # nothing was written by any refused call
    assert client.get("/v1/projects", headers=bearer(toks["read"])).json() == before
    assert [t.name for t in app.state.noa.tokens.list()] == ["t-read", "t-write", "t-admin"]
    # and the right scope is let through
    assert _call(client, method, path, token=toks[needed]).status_code in (200, 201, 202)


def test_reads_need_a_token_too(app_and_tokens):
    _, client, toks = app_and_tokens
    assert client.get("/v1/projects").status_code == 401
    assert client.get("/v1/search", params={"q": "ab"}).status_code == 401
    assert client.post("/v1/inference/chat", json={"messages": [{"role": "user", "content": "hi"}]}).status_code == 401
    assert client.get("/v1/projects", headers=bearer(toks["read"])).status_code == 200
    assert client.get("/health").status_code == 200


def test_tokens_are_stored_hashed_and_revocation_applies(app_and_tokens):
    app, client, toks = app_and_tokens
    with app.state.noa.engine.connect() as conn:
        dump = json.dumps([list(r) for r in conn.execute(text("select * from api_tokens"))], default=str)
    for tok in toks.values():
        assert tok.split("_", 2)[2] not in dump
    r = client.delete("/v1/tokens/t-write", headers=bearer(toks["admin"]))
    assert r.status_code == 200 and r.json()["revoked"]
    assert client.post("/v1/projects", headers=bearer(toks["write"]), json={"name": "x"}).status_code == 401
    listed = client.get("/v1/tokens", headers=bearer(toks["admin"])).json()["items"]
    assert "token" not in json.dumps(listed).replace('"t-', "")  # names only, never secrets


def test_rate_limit_per_token(tmp_path):
    app = create_app(settings_for(tmp_path), rate_limit=RateLimit(rate_per_s=1.0, burst=3), record_change=None,
                     schedule_backup=None, prefect_events=False)
    toks = tokens(app)
    with TestClient(app) as client:
        codes = [client.get("/v1/projects", headers=bearer(toks["read"])).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3] == 429
        r = client.get("/v1/projects", headers=bearer(toks["read"]))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        # another token has its own bucket
        assert client.get("/v1/projects", headers=bearer(toks["write"])).status_code == 200
        refused = codes.count(429) + 1
        assert f"noa_rate_limited_total {refused:.1f}" in client.get("/metrics").text


def test_token_cli_create_list_revoke(tmp_path):
    from noa_core.cli.main import app as cli_app
    from noa_core.cli.server_cmd import register

    if not any(getattr(g, "name", None) == "server" for g in cli_app.registered_groups):
        register(cli_app)
    runner = CliRunner()
    home = str(tmp_path / "noa")
    r = runner.invoke(cli_app, ["server", "token", "create", "ci", "--scope", "write", "--home", home, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["token"].startswith("noa_") and doc["scope"] == "write"
    r = runner.invoke(cli_app, ["server", "token", "create", "bad", "--scope", "root", "--home", home])
    assert r.exit_code == 2 and "noa: error: scope must be one of" in r.stderr
    r = runner.invoke(cli_app, ["server", "token", "list", "--home", home, "--json"])
    assert [t["name"] for t in json.loads(r.stdout)] == ["ci"] and doc["token"] not in r.stdout
    app = create_app(settings_for(tmp_path), record_change=None, schedule_backup=None, prefect_events=False,
                     token_cache_ttl=0.0)
    with TestClient(app) as client:
        assert client.post("/v1/projects", headers=bearer(doc["token"]), json={"name": "p"}).status_code == 201
        r = runner.invoke(cli_app, ["server", "token", "revoke", "ci", "--home", home])
        assert r.exit_code == 0
        assert client.post("/v1/projects", headers=bearer(doc["token"]), json={"name": "q"}).status_code == 401
    r = runner.invoke(cli_app, ["server", "token", "revoke", "nope", "--home", home])
    assert r.exit_code == 2
