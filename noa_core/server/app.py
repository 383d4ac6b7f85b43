"""``create_app(settings)``: the unified NOA API (FastAPI). Everything it holds is built here.

Stack (outermost first): request observability (span, latency histogram, run id, JSON log
line) -> body-size limit (413) -> FastAPI (auth with scopes and per-token rate limits as
dependencies; pydantic bodies) -> routers: read (cache-aside), write (write flow + Prefect
runs), retrieval, inference, admin, ops; plus ``POST /webhooks/github`` when the CI/CD
router is present and a webhook secret is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from noa_core import __version__
from noa_core.config import NoaSettings
from noa_core.events import (
    AlertManager,
    ChangeLogSubscriber,
    EventBus,
    MetricsSubscriber,
    PrefectEventSubscriber,
    RollbackFeedback,
    TraceSubscriber,
)
from noa_core.events.alerts import Notifier
from noa_core.observability.logs import json_logger
from noa_core.observability.metrics import NoaMetrics
from noa_core.observability.tracing import make_tracing
from noa_core.server.auth import TokenStore
from noa_core.server.cltree_metrics import ChangeLogMetrics
from noa_core.server.inference import Inference
from noa_core.server.middleware import AllowHeader, BodySizeLimit, RequestObservability
from noa_core.server.orchestrator import Orchestrator, Unavailable, prefect_api_url
from noa_core.server.ratelimit import RateLimit, make_buckets
from noa_core.server.search import CodeSearch
from noa_core.server.state import ServerState
from noa_core.server.swarm_queue import SwarmQueueWatcher
from noa_core.server.writes import WriteFlow
from noa_core.storage.cache import Cache, make_cache
from noa_core.storage.database import open_database
from noa_core.storage.registry import Registry

DEFAULT_MAX_BODY = 1024 * 1024
WEBHOOK_MAX_BODY = 25 * 1024 * 1024

_DESCRIPTION = """The unified NOA ARK OS API: registry reads through a cache, validated writes that start
Prefect flow runs, retrieval over the dropped code, local-model inference, the event bus, and metrics.

Every `/v1` endpoint needs a bearer token (`noa server token create NAME --scope read|write|admin`);
scopes nest (admin > write > read). Each token has a rate limit (token bucket). Bodies over the
size limit are refused with 413 before they are read."""


def _webhook_router(state: ServerState, secret: str | None) -> tuple[Any, str]:
    try:
        from noa_core.server.github_webhook import WebhookConfig, github_webhook_router
        from noa_core.webhooks.deliveries import DeliveryStore
    except ImportError as exc:
        return None, f"skipped: GitHub webhook router not available ({exc.name})"
    if not secret:
        return None, "skipped: no GitHub webhook secret (NOA_GITHUB_WEBHOOK_SECRET)"

    class _Starter:
        async def start(self, trigger: Any, parameters: Mapping[str, Any], idempotency_key: str) -> str:
            if state.orchestrator is None:
                raise Unavailable(state.orchestrator_status)
            ref = await state.orchestrator.submit("cicd", parameters, idempotency_key=idempotency_key,
                                                  name=f"{trigger.repo.rsplit('/', 1)[-1]}-{trigger.commit[:10]}")
            return ref.flow_run_id

    config = WebhookConfig(secret=secret, home=str(state.settings.home.resolve()), max_body_bytes=WEBHOOK_MAX_BODY)
    return github_webhook_router(config, _Starter(), DeliveryStore(state.engine)), "ok"


def create_app(settings: NoaSettings, *, cache: Cache | None = None, orchestrator: Orchestrator | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY, rate_limit: RateLimit = RateLimit(),
               notifier: Notifier | None = None, record_change: Callable[..., Any] | None | bool = True,
               schedule_backup: Callable[..., Any] | None | bool = True, prefect_events: bool | None = None,
               inference: Inference | None = None, inference_concurrency: int = 1,
               webhook_secret: str | None = None, token_cache_ttl: float = 2.0, plugins: bool = True,
               gc_freeze: bool = False, cltree_metrics_s: float | None = 2.0,
               swarm_queue_s: float | None = 5.0, swarm_pools: Mapping[str, str] | None = None) -> FastAPI:
    """The API for ``settings.home``. ``orchestrator`` (e.g. :class:`PrefectOrchestrator`) is started
    in the app's lifespan; without one, run-starting endpoints answer 503 ``skipped: ...``.
    ``cltree_metrics_s``: how often flow, stage, deploy and backup outcomes are read from the CL tree
    into ``/metrics`` (``None``: never); ``swarm_queue_s``: how often the swarm pools' queues are read
    from Prefect (when a Prefect API is configured; ``swarm_pools`` defaults to the language swarms')."""
    layout = settings.layout().ensure()
    logs_dir = layout.root / "logs"
    log = json_logger(logs_dir, "server")
    engine = open_database(settings)
    owns_cache = cache is None
    cache = cache or make_cache(settings)
    metrics = NoaMetrics()
    metrics.watch_cache(cache.stats)
    tracing = make_tracing(layout.root / "traces", service="noa-server")
    writes = WriteFlow(settings, engine, cache, record_change=record_change, schedule_backup=schedule_backup,
                       logger=log)
    bus = EventBus([ChangeLogSubscriber(settings, writes.record_change) if writes.record_change else
                    ChangeLogSubscriber(settings), MetricsSubscriber(metrics), TraceSubscriber(tracing),
                    AlertManager(notifier, log, metrics=metrics), PrefectEventSubscriber(enabled=prefect_events)], logger=log)
    state = ServerState(settings=settings, engine=engine, registry=Registry(engine),
                        tokens=TokenStore(engine, cache_ttl=token_cache_ttl),
                        buckets=make_buckets(settings, rate_limit, registry=metrics.registry),
                        cache=cache, metrics=metrics, tracing=tracing, log=log, bus=bus, writes=writes,
                        search=CodeSearch(layout.drops),
                        inference=inference or Inference(settings.llm_model_path, concurrency=inference_concurrency),
                        orchestrator=orchestrator, owns_cache=owns_cache)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if orchestrator is not None:
            try:
                await orchestrator.start()  # type: ignore[attr-defined]
                state.orchestrator_status = "ok"
                bus.subscribe(RollbackFeedback(_rollback_starter(state)))
            except Unavailable as exc:
                state.orchestrator_status = exc.one_line()
                state.orchestrator = None
        else:
            state.orchestrator_status = "skipped: no orchestrator (start with `noa server`, Prefect enabled)"
        followers: list[asyncio.Task[None]] = []
        if cltree_metrics_s is not None:
            feed = ChangeLogMetrics(engine, MetricsSubscriber(metrics), logger=log)
            followers.append(asyncio.get_running_loop().create_task(feed.follow(cltree_metrics_s)))
        if swarm_queue_s is not None and prefect_api_url():
            from noa_core.swarm.summary import POOLS

            watcher = SwarmQueueWatcher(metrics, swarm_pools or POOLS, logger=log)
            followers.append(asyncio.get_running_loop().create_task(watcher.follow(swarm_queue_s)))
        if gc_freeze:  # the server process: start-up objects leave the collector's generations (shorter pauses)
            gc.collect()
            gc.freeze()
        log.info("NOA API started", extra={"home": str(layout.root), "cache": cache.backend,
                                           "prefect": state.orchestrator_status})
        try:
            yield
        finally:
            for task in followers:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await state.drain()
            if state.orchestrator is not None:
                await state.orchestrator.stop()  # type: ignore[attr-defined]
            tracing.shutdown()
            if state.owns_cache:
                cache.close()
            close_buckets = getattr(state.buckets, "close", None)
            if close_buckets is not None:  # the Redis limiter's connection
                close_buckets()
            engine.dispose()

    app = FastAPI(title="NOA ARK OS API", version=__version__, description=_DESCRIPTION, lifespan=lifespan)
    app.state.noa = state

    from noa_core.server import routes_misc, routes_read, routes_write

    app.include_router(routes_misc.router)
    app.include_router(routes_read.router)
    app.include_router(routes_write.router)
    router, state.webhook_status = _webhook_router(state, webhook_secret)
    if router is not None:
        app.include_router(router)
    if plugins:
        state.plugins = _mount_plugins(app, state)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error (logged with the request id)"}, status_code=500)

    app.add_middleware(AllowHeader, routes_of=lambda: app.routes)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes, limits={"/webhooks/": WEBHOOK_MAX_BODY},
                       metrics=metrics)
    app.add_middleware(RequestObservability, metrics=metrics, tracing=tracing, logger=log)
    return app


def _mount_plugins(app: FastAPI, state: ServerState) -> dict[str, str]:
    """Routers and event subscribers of the ``noa.plugins`` entry points (see :mod:`noa_core.plugins`)."""
    from fastapi import Depends

    from noa_core.server.deps import require
    from noa_core.plugins import discover
    from noa_core.server.responses import AUTH, errors

    read, write = require("read"), require("write")

    async def plugin_auth(request: Request) -> None:
        from fastapi.security import HTTPAuthorizationCredentials

        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        creds = HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials) \
            if scheme.lower() == "bearer" and credentials else None
        await (read if request.method in ("GET", "HEAD") else write)(request, creds)

    report: dict[str, str] = {}
    for plugin in discover():
        if plugin.obj is None:
            report[plugin.name] = plugin.status
            continue
        try:
            if hasattr(plugin.obj, "api_router"):
                app.include_router(plugin.obj.api_router(state.settings), prefix=f"/plugins/{plugin.name}",
                                   tags=[f"plugin {plugin.name}"], dependencies=[Depends(plugin_auth)],
                                   responses=errors(*AUTH))
            for sub in getattr(plugin.obj, "event_subscribers", lambda s: [])(state.settings):
                state.bus.subscribe(sub)
            report[plugin.name] = "ok"
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported in /health, not fatal
            report[plugin.name] = f"error: {type(exc).__name__}: {exc}"[:300]
            state.log.warning("plugin %s failed: %s", plugin.name, exc)
    return report


def _rollback_starter(state: ServerState) -> Callable[[str, str], str]:
    """Feedback to the orchestrator: a ``deploy.failed`` / ``monitor.alarm`` event starts a rollback run."""
    import asyncio
    import uuid

    loop = asyncio.get_running_loop()

    def start(app_name: str, env: str) -> str:
        orch = state.orchestrator
        if orch is None or orch.availability().get("rollback") != "ok":
            return "skipped: rollback flow not served"
        params = {"app": app_name, "env": env, "home": str(state.settings.home.resolve())}
        fut = asyncio.run_coroutine_threadsafe(
            orch.submit("rollback", params, idempotency_key=f"feedback-{uuid.uuid4().hex}"), loop)
        return fut.result(timeout=60).flow_run_id

    return start


def app_home(settings: NoaSettings) -> Path:
    return settings.layout().root
