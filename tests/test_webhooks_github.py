"""GitHub webhook signatures, event parsing, the delivery store (SQLite and PostgreSQL), and
the router's answers with a fake (recording) starter. The real Prefect run count is in
test_webhooks_prefect.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from webhook_helpers import PR_SHA, SECRET, SHA, delivery, pr_payload, push_payload

from noa_core.server.github_webhook import WebhookConfig, github_webhook_router
from noa_core.storage.database import make_engine
from noa_core.webhooks.deliveries import DeliveryStore
from noa_core.webhooks.github import (
    BadPayload,
    BadSignature,
    GitHubTrigger,
    IgnoredEvent,
    parse_event,
    sign,
    verify_signature,
)


# ------------------------------------------------------------------ signatures
def test_signature_matches_githubs_documented_example() -> None:
    # docs.github.com "Validating webhook deliveries": secret, payload and the expected header
    secret, body = "It's a Secret to Everybody", b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign(body, secret) == expected
    verify_signature(body, expected, secret)


@pytest.mark.parametrize("header", [None, "", "sha256=", "sha1=" + "0" * 40, "sha256=" + "0" * 64,
                                    "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17",
                                    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
                                    "sha256=ünïcode"])
def test_wrong_missing_or_malformed_signatures_are_refused(header: str | None) -> None:
    with pytest.raises(BadSignature):
        verify_signature(b"Hello, World!", header, "It's a Secret to Everybody")


def test_a_changed_body_or_secret_is_refused_and_no_secret_means_refuse_all() -> None:
    good = sign(b"Hello, World!", "s3cret")
    with pytest.raises(BadSignature):
        verify_signature(b"Hello, World?", good, "s3cret")
    with pytest.raises(BadSignature):
        verify_signature(b"Hello, World!", good, "other")
    with pytest.raises(BadSignature, match="no webhook secret"):
        verify_signature(b"Hello, World!", sign(b"Hello, World!", ""), "")


# ------------------------------------------------------------------ parsing
def test_push_becomes_a_trigger_with_repo_ref_and_commit() -> None:
    body, headers = delivery("push", push_payload())
    trig = parse_event("push", headers["X-GitHub-Delivery"], body)
    assert isinstance(trig, GitHubTrigger)
    assert (trig.event, trig.repo, trig.ref, trig.commit, trig.pr_number) == (
        "push", "octo-org/hello-service", "refs/heads/main", SHA, None)
    assert trig.clone_url == "https://github.com/octo-org/hello-service.git"


def test_pull_request_becomes_a_trigger_with_number_and_head_sha() -> None:
    body, headers = delivery("pull_request", pr_payload("synchronize", 42))
    trig = parse_event("pull_request", headers["X-GitHub-Delivery"], body)
    assert isinstance(trig, GitHubTrigger)
    assert (trig.ref, trig.commit, trig.pr_number, trig.action) == ("refs/pull/42/head", PR_SHA, 42, "synchronize")


@pytest.mark.parametrize("event,payload,why", [
    ("ping", {"zen": "Keep it logically awesome.", "hook_id": 1}, "ping"),
    ("issues", {"action": "opened"}, "starts no pipeline"),
    ("push", {**push_payload(sha="0" * 40), "deleted": True}, "was deleted"),
    ("pull_request", pr_payload("closed"), "changes no code"),
    ("pull_request", pr_payload("labeled"), "changes no code"),
])
def test_events_without_new_code_are_ignored_with_a_reason(event: str, payload: dict[str, Any], why: str) -> None:
    body, headers = delivery(event, payload)
    got = parse_event(event, headers["X-GitHub-Delivery"], body)
    assert isinstance(got, IgnoredEvent) and why in got.reason


@pytest.mark.parametrize("event,delivery_id,body", [
    ("push", "d-1", b"not json"),
    ("push", "d-1", b"[1, 2]"),
    ("push", "d-1", json.dumps({**push_payload(), "after": "not-a-sha"}).encode()),
    ("push", "d-1", json.dumps({k: v for k, v in push_payload().items() if k != "repository"}).encode()),
    ("pull_request", "d-1", json.dumps({**pr_payload(), "number": "7", "pull_request": {"head": {}}}).encode()),
    ("push", None, json.dumps(push_payload()).encode()),
    ("push", "../../etc/passwd", json.dumps(push_payload()).encode()),
    (None, "d-1", json.dumps(push_payload()).encode()),
])
def test_malformed_deliveries_are_bad_payloads(event: str | None, delivery_id: str | None, body: bytes) -> None:
    with pytest.raises(BadPayload):
        parse_event(event, delivery_id, body)


# ------------------------------------------------------------------ the delivery store
def _trigger(delivery_id: str) -> GitHubTrigger:
    return GitHubTrigger(delivery_id, "push", "octo-org/hello-service", None, "refs/heads/main", SHA)


def _postgres_engine() -> Any:
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    try:
        with engine.connect():
            pass
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {type(exc).__name__}")
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DeliveryStore]:
    engine = make_engine(tmp_path / "registry.db") if request.param == "sqlite" else _postgres_engine()
    yield DeliveryStore(engine)
    engine.dispose()


def test_store_claims_once_then_replays_the_recorded_run(store: DeliveryStore) -> None:
    did = f"d-{uuid.uuid4()}"
    first = store.claim(_trigger(did))
    assert first.new and first.record.run_id is None
    store.set_run(did, "run-1")
    again = store.claim(_trigger(did))
    assert not again.new and again.record.run_id == "run-1" and again.record.status == "started"


def test_store_release_lets_a_redelivery_claim_again(store: DeliveryStore) -> None:
    did = f"d-{uuid.uuid4()}"
    assert store.claim(_trigger(did)).new
    store.release(did)
    assert store.get(did) is None
    assert store.claim(_trigger(did)).new
    store.set_run(did, "run-2")
    store.release(did)  # a started run is never released
    assert store.get(did) is not None


def test_store_concurrent_claims_of_one_delivery_have_one_winner(store: DeliveryStore) -> None:
    did = f"d-{uuid.uuid4()}"

    async def claim_all() -> list[bool]:
        return [c.new for c in await asyncio.gather(*(asyncio.to_thread(store.claim, _trigger(did))
                                                      for _ in range(8)))]

    assert sorted(asyncio.run(claim_all())) == [False] * 7 + [True]


def test_store_table_is_created_in_an_existing_registry(tmp_path: Path) -> None:
    from sqlalchemy import inspect

    from noa_core.storage.database import create_schema

    engine = make_engine(tmp_path / "registry.db")
    create_schema(engine)
    DeliveryStore(engine)
    DeliveryStore(engine)  # a second open finds it
    assert {"drops", "webhook_deliveries"} <= set(inspect(engine).get_table_names())


# ------------------------------------------------------------------ the router, with a fake starter
class FakeRecordingStarter:
    """Stands in for run_deployment in the router tests (the real one is in test_webhooks_prefect.py)."""

    def __init__(self, fail: int = 0) -> None:
        self.calls: list[tuple[GitHubTrigger, dict[str, Any], str]] = []
        self.fail = fail

    async def start(self, trigger: GitHubTrigger, parameters: Any, idempotency_key: str) -> str:
        self.calls.append((trigger, dict(parameters), idempotency_key))
        if self.fail:
            self.fail -= 1
            raise ConnectionError("Prefect API unreachable")
        return f"run-{len(self.calls)}"


@pytest.fixture
def fake_app(tmp_path: Path) -> Iterator[tuple[Any, FakeRecordingStarter, DeliveryStore]]:
    from fastapi import FastAPI

    starter = FakeRecordingStarter()
    store = DeliveryStore(make_engine(tmp_path / "registry.db"))
    config = WebhookConfig(secret=SECRET, home=str(tmp_path), max_body_bytes=64 * 1024,
                           sources={"octo-org/hello-service": "/srv/hello-service"})
    app = FastAPI()
    app.include_router(github_webhook_router(config, starter, store))
    yield app, starter, store
    store.engine.dispose()


async def _client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://noa") as c:
        yield c


def _post(app: Any, body: bytes | Any, headers: dict[str, str]) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://noa") as c:
            return await c.post("/webhooks/github", content=body, headers=headers)

    return asyncio.run(go())


def test_fake_starter_router_new_delivery_202_then_replay_200_same_run(fake_app: Any) -> None:
    app, starter, _ = fake_app
    body, headers = delivery("push", push_payload())
    first = _post(app, body, headers)
    assert first.status_code == 202, first.text
    assert first.json()["flow_run_id"] == "run-1" and first.json()["commit"] == SHA
    replay = _post(app, body, headers)
    assert replay.status_code == 200 and replay.json() == {
        "status": "replay", "delivery": headers["X-GitHub-Delivery"], "flow_run_id": "run-1"}
    assert len(starter.calls) == 1
    _, params, key = starter.calls[0]
    assert params["commit"] == SHA and params["source"] == "/srv/hello-service" and params["ref"] == "refs/heads/main"
    assert key == f"github:{headers['X-GitHub-Delivery']}"
    assert SECRET not in json.dumps(params)


def test_fake_starter_router_bad_or_missing_signature_is_401_and_starts_nothing(
        fake_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    app, starter, store = fake_app
    body, headers = delivery("push", push_payload())
    for sig in ("", sign(body, "wrong-secret"), sign(body + b" ", SECRET)):
        h = {**headers, "X-Hub-Signature-256": sig} if sig else {k: v for k, v in headers.items()
                                                                   if k != "X-Hub-Signature-256"}
        resp = _post(app, body, h)
        assert resp.status_code == 401, resp.text
        assert SECRET not in resp.text
    assert starter.calls == [] and store.get(headers["X-GitHub-Delivery"]) is None
    assert "refused GitHub delivery" in caplog.text and SECRET not in caplog.text


def test_fake_starter_router_too_large_is_413_by_header_and_by_stream(fake_app: Any) -> None:
    app, starter, _ = fake_app
    big = json.dumps({**push_payload(), "padding": "x" * 70_000}).encode()
    body, headers = delivery("push", big)
    assert _post(app, body, headers).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked upload
        for i in range(0, len(body), 8192):
            yield body[i:i + 8192]

    resp = _post(app, chunks(), {k: v for k, v in headers.items()})
    assert resp.status_code == 413
    assert starter.calls == []


def test_fake_starter_router_ping_and_closed_pr_are_200_ignored(fake_app: Any) -> None:
    app, starter, _ = fake_app
    for event, payload in (("ping", {"zen": "Design for failure."}), ("pull_request", pr_payload("closed"))):
        resp = _post(app, *delivery(event, payload))
        assert resp.status_code == 200 and resp.json()["status"] == "ignored"
    assert _post(app, *delivery("push", b"{not json")).status_code == 400
    assert starter.calls == []


def test_fake_starter_router_failed_start_is_503_and_a_redelivery_starts_it(fake_app: Any) -> None:
    app, starter, store = fake_app
    starter.fail = 1
    body, headers = delivery("pull_request", pr_payload())
    assert _post(app, body, headers).status_code == 503
    assert store.get(headers["X-GitHub-Delivery"]) is None
    again = _post(app, body, headers)
    assert again.status_code == 202 and again.json()["pr_number"] == 7
    assert [c[0].commit for c in starter.calls] == [PR_SHA, PR_SHA]
