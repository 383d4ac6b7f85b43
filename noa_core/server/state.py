"""What one app instance holds (built by :func:`noa_core.server.app.create_app`; nothing global)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from noa_core.config import NoaSettings
from noa_core.events import EventBus
from noa_core.events.interface import Event
from noa_core.observability.metrics import NoaMetrics
from noa_core.observability.tracing import Tracing
from noa_core.server.auth import TokenStore
from noa_core.server.inference import Inference
from noa_core.server.orchestrator import Orchestrator
from noa_core.server.ratelimit import RateLimiter
from noa_core.server.search import CodeSearch
from noa_core.server.writes import WriteFlow
from noa_core.storage.cache import Cache
from noa_core.storage.registry import Registry


@dataclass
class ServerState:
    settings: NoaSettings
    engine: Engine
    registry: Registry
    tokens: TokenStore
    buckets: RateLimiter
    cache: Cache
    metrics: NoaMetrics
    tracing: Tracing
    log: logging.Logger
    bus: EventBus
    writes: WriteFlow
    search: CodeSearch
    inference: Inference
    orchestrator: Orchestrator | None
    orchestrator_status: str = "skipped: not started"
    webhook_status: str = "skipped: not configured"
    owns_cache: bool = True
    plugins: dict[str, str] = field(default_factory=dict)
    _pending: set[asyncio.Task[Any]] = field(default_factory=set)

    def publish_soon(self, event: Event) -> None:
        """Publish on the bus in a worker thread (subscribers may do I/O); the request does not wait."""
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.bus.publish, event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        await self.writes.drain()
