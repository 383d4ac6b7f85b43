"""Swarm queue depth: flow runs due in each language swarm's Prefect work pool that no worker has
started yet (state Scheduled, Late or Pending, expected start time passed), as the gauge
``noa_swarm_queue_depth{language}``. A growing queue means too few workers (`noa swarm up`).

Read from the Prefect API every few seconds while the server runs with one; a pool that does not
exist counts 0. Failures are logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from noa_core.observability.metrics import NoaMetrics


class SwarmQueueWatcher:
    def __init__(self, metrics: NoaMetrics, pools: Mapping[str, str], *, logger: logging.Logger | None = None) -> None:
        self.metrics = metrics
        self.pools = dict(pools)  # language -> work pool name
        self.log = logger or logging.getLogger("noa.server.swarm_queue")

    async def depths(self, client: Any) -> dict[str, int]:
        """Due, not yet running flow runs per language (one count query per pool)."""
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterExpectedStartTime,
            FlowRunFilterState,
            FlowRunFilterStateType,
            WorkPoolFilter,
            WorkPoolFilterName,
        )
        from prefect.client.schemas.objects import StateType

        due = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
                                any_=[StateType.SCHEDULED, StateType.PENDING])),
                            expected_start_time=FlowRunFilterExpectedStartTime(before_=datetime.now(UTC)))
        out: dict[str, int] = {}
        for language, pool in self.pools.items():
            out[language] = await client.count_flow_runs(
                flow_run_filter=due, work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])))
        return out

    async def follow(self, interval_s: float = 5.0) -> None:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            warned = False
            while True:
                try:
                    for language, depth in (await self.depths(client)).items():
                        self.metrics.swarm_queue_depth.labels(language).set(depth)
                    warned = False
                except Exception as exc:  # noqa: BLE001 - a metric must never take the server down
                    if not warned:
                        self.log.warning("swarm queue depth: %s", exc)
                        warned = True
                await asyncio.sleep(interval_s)
