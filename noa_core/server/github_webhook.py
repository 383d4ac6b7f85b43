"""``POST /webhooks/github``: GitHub ``push`` / ``pull_request`` deliveries start ``cicd_pipeline``.

Self-hosted Prefect has no webhooks, so NOA receives them itself:

1. a body over ``max_body_bytes`` gets 413 before it is read whole (``Content-Length``
   checked first, then the stream is read with a cap, for chunked uploads);
2. ``X-Hub-Signature-256`` is checked in constant time over the raw bytes; a missing or
   wrong signature gets 401 and starts nothing;
3. the delivery is parsed (``ping`` and code-less events get 200 ``ignored``);
4. the delivery id is claimed in the registry database: a redelivery gets 200 with the
   run id of the first delivery and starts nothing;
5. a new delivery becomes a flow run of the ``cicd_pipeline`` deployment with the commit
   as a parameter, through an injectable :class:`PipelineStarter`; the answer is 202 with
   the flow run id. The start also carries the delivery id as Prefect's idempotency key,
   so two racing copies of one delivery still make one run.

The secret comes from the ``NOA_GITHUB_WEBHOOK_SECRET`` environment variable or a Prefect
``Secret`` block (:func:`load_webhook_secret`); it is never logged or echoed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from noa_core.errors import NoaError
from noa_core.webhooks.deliveries import DeliveryStore
from noa_core.webhooks.github import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    BadPayload,
    BadSignature,
    GitHubTrigger,
    IgnoredEvent,
    parse_event,
    verify_signature,
)

log = logging.getLogger("noa.webhooks.github")

SECRET_ENV = "NOA_GITHUB_WEBHOOK_SECRET"
SECRET_BLOCK_ENV = "NOA_GITHUB_WEBHOOK_SECRET_BLOCK"
DEFAULT_SECRET_BLOCK = "noa-github-webhook-secret"
#: GitHub caps webhook payloads at 25 MB
DEFAULT_MAX_BODY_BYTES = 25 * 1024 * 1024
PATH = "/webhooks/github"


class PipelineStarter(Protocol):
    """Starts one pipeline run for a trigger; returns the flow run id."""

    async def start(self, trigger: GitHubTrigger, parameters: Mapping[str, Any], idempotency_key: str) -> str: ...


class DeploymentStarter:
    """``run_deployment(<deployment>, parameters=..., idempotency_key=..., timeout=0)``.

    The deployment's id is looked up once by name and kept (one API call less per delivery).
    """

    def __init__(self, deployment: str) -> None:
        self.deployment = deployment  # "cicd_pipeline/<name>" or a deployment id
        self._id: Any = None

    async def _deployment_id(self) -> Any:
        if self._id is None:
            from prefect.client.orchestration import get_client

            try:
                self._id = UUID(self.deployment)
            except ValueError:
                async with get_client() as client:
                    self._id = (await client.read_deployment_by_name(self.deployment)).id
        return self._id

    async def start(self, trigger: GitHubTrigger, parameters: Mapping[str, Any], idempotency_key: str) -> str:
        from prefect.deployments.flow_runs import arun_deployment

        name = f"{trigger.repo.rsplit('/', 1)[-1]}-{trigger.commit[:10]}"
        if trigger.pr_number:
            name += f"-pr{trigger.pr_number}"
        flow_run = await arun_deployment(await self._deployment_id(), parameters=dict(parameters), timeout=0,
                                         idempotency_key=idempotency_key, flow_run_name=name[:200],
                                         tags=["github", f"github:{trigger.event}"], as_subflow=False)
        return str(flow_run.id)


@dataclass(frozen=True)
class WebhookConfig:
    secret: str = field(repr=False)
    env: str = "staging"
    home: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: repository full name -> the source the pipeline fetches (default: the clone URL)
    sources: Mapping[str, str] = field(default_factory=dict)
    #: if set, deliveries from other repositories are ignored
    repos: frozenset[str] | None = None

    def parameters(self, trigger: GitHubTrigger) -> dict[str, Any]:
        source = self.sources.get(trigger.repo) or trigger.clone_url or f"https://github.com/{trigger.repo}.git"
        return {"source": source, "commit": trigger.commit, "ref": trigger.ref, "env": self.env,
                "home": self.home, "trigger": trigger.as_dict()}


def load_webhook_secret(block: str | None = None) -> str:
    """``NOA_GITHUB_WEBHOOK_SECRET``, else the Prefect ``Secret`` block ``block``
    (default ``$NOA_GITHUB_WEBHOOK_SECRET_BLOCK`` or ``noa-github-webhook-secret``)."""
    value = os.environ.get(SECRET_ENV)
    if value:
        return value
    name = block or os.environ.get(SECRET_BLOCK_ENV) or DEFAULT_SECRET_BLOCK
    try:
        from prefect.blocks.system import Secret

        secret = Secret.load(name)
        value = secret.get()
    except Exception as exc:  # noqa: BLE001 - any failure means "not configured"
        raise NoaError(f"no GitHub webhook secret: set {SECRET_ENV} or save a Prefect Secret block "
                       f"named {name!r} ({type(exc).__name__})") from None
    if not isinstance(value, str) or not value:
        raise NoaError(f"the Prefect Secret block {name!r} holds no string")
    return value


class _TooLarge(Exception):
    pass


async def _read_capped(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        try:
            if int(length) > limit:
                raise _TooLarge
        except ValueError:
            raise BadPayload("malformed Content-Length header") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(code: int, **doc: Any) -> JSONResponse:
    return JSONResponse(doc, status_code=code)


def github_webhook_router(config: WebhookConfig, starter: PipelineStarter, store: DeliveryStore) -> APIRouter:
    """The router; mount it in any FastAPI app (``noa webhook serve``, ``noa server``)."""
    if not config.secret:
        raise NoaError(f"no GitHub webhook secret: set {SECRET_ENV} or a Prefect Secret block")
    router = APIRouter(tags=["webhooks"])

    @router.post(PATH, status_code=202)
    async def github_webhook(request: Request) -> JSONResponse:
        try:
            body = await _read_capped(request, config.max_body_bytes)
        except _TooLarge:
            return _answer(413, status="refused", detail=f"body larger than {config.max_body_bytes} bytes")
        except BadPayload as exc:
            return _answer(400, status="refused", detail=exc.one_line())
        delivery_header = request.headers.get(DELIVERY_HEADER)
        try:
            verify_signature(body, request.headers.get(SIGNATURE_HEADER), config.secret)
        except BadSignature as exc:
            log.warning("refused GitHub delivery %r: %s", (delivery_header or "")[:100], exc.one_line())
            return _answer(401, status="refused", detail=exc.one_line())
        try:
            parsed = parse_event(request.headers.get(EVENT_HEADER), delivery_header, body)
        except BadPayload as exc:
            return _answer(400, status="refused", detail=exc.one_line())
        if isinstance(parsed, IgnoredEvent):
            return _answer(200, status="ignored", delivery=parsed.delivery_id, event=parsed.event,
                           reason=parsed.reason)
        trigger = parsed
        if config.repos is not None and trigger.repo not in config.repos:
            return _answer(200, status="ignored", delivery=trigger.delivery_id, event=trigger.event,
                           reason=f"repository {trigger.repo} is not configured")
        claim = await asyncio.to_thread(store.claim, trigger)
        if not claim.new and claim.record.run_id:
            return _answer(200, status="replay", delivery=trigger.delivery_id, flow_run_id=claim.record.run_id)
        # a new delivery, or a copy racing the first one before it recorded its run: start
        # with the delivery's idempotency key (the server hands both the same run)
        try:
            run_id = await starter.start(trigger, config.parameters(trigger), f"github:{trigger.delivery_id}")
        except Exception as exc:  # noqa: BLE001 - the sender should retry
            if claim.new:
                await asyncio.to_thread(store.release, trigger.delivery_id)
            log.error("could not start the pipeline for delivery %s: %s", trigger.delivery_id, type(exc).__name__)
            return _answer(503, status="error", delivery=trigger.delivery_id,
                           detail=f"could not start the pipeline: {type(exc).__name__}")
        await asyncio.to_thread(store.set_run, trigger.delivery_id, run_id)
        log.info("GitHub %s %s@%s -> flow run %s", trigger.event, trigger.repo, trigger.commit[:12], run_id)
        if not claim.new:
            return _answer(200, status="replay", delivery=trigger.delivery_id, flow_run_id=run_id)
        return _answer(202, status="started", delivery=trigger.delivery_id, flow_run_id=run_id,
                       event=trigger.event, repo=trigger.repo, ref=trigger.ref, commit=trigger.commit,
                       pr_number=trigger.pr_number)

    return router


__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "PATH",
    "SECRET_ENV",
    "DeploymentStarter",
    "PipelineStarter",
    "WebhookConfig",
    "github_webhook_router",
    "load_webhook_secret",
]
