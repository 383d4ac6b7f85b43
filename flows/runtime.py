"""How a flow is run from the CLI or a test: against the right server, without heartbeats,
with an owner mark.

Prefect 3.9 runs a heartbeat thread per *sync* flow run; starting and joining it costs
about a second per flow and subflow (measured here: 5 sync subflows 8.97 s with the
default heartbeat, 2.65 s without). Crash detection by heartbeat matters for flows
run by workers from deployments, which keep it; in-process runs started by ``noa``
switch it off.

Instead, every flow, subflow and task run started inside :func:`in_process_run` carries
the tags ``noa-in-process`` and ``noa-owner:HOST:MACHINE:PID:START:BOOT``
(:mod:`noa_core.orchestration.owner`); if this process dies mid-flow (SIGKILL, a native
crash), the next ``noa`` command, or ``noa server`` / ``noa watch`` within ~30 s, marks its
runs ``Crashed`` (:mod:`noa_core.orchestration.reconcile`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from noa_core.orchestration.owner import IN_PROCESS_TAG, OwnerMark

T = TypeVar("T")


def owner_tags() -> tuple[str, str]:
    """The two tags that mark a run as owned by this process."""
    return IN_PROCESS_TAG, OwnerMark.current().tag


@contextmanager
def in_process_run() -> Iterator[None]:
    """Flow heartbeats off and this process's owner mark on every run started inside."""
    from prefect import tags
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}), tags(*owner_tags()):
        yield


def run_in_process(flow_fn: Callable[..., T], /, **parameters: Any) -> T:
    """Call a flow (sync, or async: then run to completion here) inside :func:`in_process_run`."""
    with in_process_run():
        result = flow_fn(**parameters)
        if inspect.isawaitable(result):
            return asyncio.run(_awaited(result))  # type: ignore[return-value]
        return result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


__all__ = ["in_process_run", "owner_tags", "run_in_process"]
