"""A signed GitHub push starts exactly one cicd_pipeline run on a real Prefect server; a replayed
delivery and a bad signature start none. The webhook is served by uvicorn on loopback, the
deployment ``cicd_pipeline/<name>`` is registered by a real Runner (not started: the runs stay
Scheduled, and are counted through the Prefect client)."""

from __future__ import annotations

import asyncio
import contextvars
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from webhook_helpers import SECRET, SHA, delivery, pr_payload, push_payload


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def webhook(prefect_api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import uvicorn
    from fastapi import FastAPI
    from prefect.runner import Runner

    from deployments.cicd import FLOW_NAME, add_cicd_deployment
    from noa_core.server.github_webhook import (
        DeploymentStarter,
        WebhookConfig,
        github_webhook_router,
    )
    from noa_core.storage.database import make_engine
    from noa_core.webhooks.deliveries import DeliveryStore

    home = tmp_path_factory.mktemp("webhook-home")
    name = f"cicd-test-{uuid.uuid4().hex[:8]}"
    deployment_id = asyncio.run(add_cicd_deployment(Runner(name=f"test-{name}"), name=name, home=home))
    store = DeliveryStore(make_engine(home / "registry.db"))
    config = WebhookConfig(secret=SECRET, home=str(home), max_body_bytes=256 * 1024)
    app = FastAPI()
    app.include_router(github_webhook_router(config, DeploymentStarter(f"{FLOW_NAME}/{name}"), store))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    ctx = contextvars.copy_context()  # the Prefect test settings (API URL) for the server thread
    thread = threading.Thread(target=ctx.run, args=(server.run,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield {"url": f"http://127.0.0.1:{port}/webhooks/github", "deployment_id": deployment_id, "store": store}
    finally:
        server.should_exit = True
        thread.join(30)
        store.engine.dispose()


def runs_of(deployment_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))

    return asyncio.run(read())


def test_signed_push_starts_exactly_one_run_and_replay_and_bad_signature_start_none(webhook: dict[str, Any]) -> None:
    before = len(runs_of(webhook["deployment_id"]))
    body, headers = delivery("push", push_payload())
    first = httpx.post(webhook["url"], content=body, headers=headers, timeout=60)
    assert first.status_code == 202, first.text
    run_id = first.json()["flow_run_id"]
    runs = runs_of(webhook["deployment_id"])
    assert len(runs) == before + 1
    (run,) = [r for r in runs if str(r.id) == run_id]
    assert run.parameters["commit"] == SHA and run.parameters["ref"] == "refs/heads/main"
    assert run.parameters["source"] == "https://github.com/octo-org/hello-service.git"
    assert "github:push" in run.tags

    replay = httpx.post(webhook["url"], content=body, headers=headers, timeout=60)  # GitHub "Redeliver"
    assert replay.status_code == 200 and replay.json()["flow_run_id"] == run_id

    forged_body, forged = delivery("push", push_payload(sha="1" * 40), secret="not-the-secret")
    assert httpx.post(webhook["url"], content=forged_body, headers=forged, timeout=60).status_code == 401
    unsigned = {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}
    unsigned["X-GitHub-Delivery"] = str(uuid.uuid4())
    assert httpx.post(webhook["url"], content=body, headers=unsigned, timeout=60).status_code == 401

    assert len(runs_of(webhook["deployment_id"])) == before + 1


def test_concurrent_copies_of_one_delivery_make_one_run(webhook: dict[str, Any]) -> None:
    before = len(runs_of(webhook["deployment_id"]))
    body, headers = delivery("pull_request", pr_payload("opened", 12))

    async def post_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return list(await asyncio.gather(*(client.post(webhook["url"], content=body, headers=headers)
                                               for _ in range(4))))

    answers = asyncio.run(post_all())
    assert sorted(r.status_code for r in answers) == [200, 200, 200, 202], [r.text for r in answers]
    assert len({r.json()["flow_run_id"] for r in answers}) == 1
    runs = runs_of(webhook["deployment_id"])
    assert len(runs) == before + 1
    assert any(r.parameters.get("trigger", {}).get("pr_number") == 12 for r in runs)


def test_oversized_body_is_413_without_a_run(webhook: dict[str, Any]) -> None:
    before = len(runs_of(webhook["deployment_id"]))
    body, headers = delivery("push", {**push_payload(), "padding": "x" * 300_000})
    assert httpx.post(webhook["url"], content=body, headers=headers, timeout=60).status_code == 413

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 16_384):
            yield body[i:i + 16_384]

    assert httpx.post(webhook["url"], content=chunks(), headers=headers, timeout=60).status_code == 413
    assert len(runs_of(webhook["deployment_id"])) == before


def test_secret_comes_from_the_env_or_a_prefect_secret_block(prefect_api_url: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.blocks.system import Secret

    from noa_core.errors import NoaError
    from noa_core.server.github_webhook import SECRET_ENV, load_webhook_secret

    monkeypatch.delenv(SECRET_ENV, raising=False)
    name = f"noa-webhook-test-{uuid.uuid4().hex[:8]}"
    Secret(value="from-the-block").save(name)
    assert load_webhook_secret(name) == "from-the-block"
    monkeypatch.setenv(SECRET_ENV, "from-the-env")
    assert load_webhook_secret(name) == "from-the-env"
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(NoaError, match="no GitHub webhook secret") as info:
        load_webhook_secret(f"{name}-missing")
    assert "from-the-block" not in str(info.value)
