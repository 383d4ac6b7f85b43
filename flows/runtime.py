"""How a flow is run from the CLI or a test: against the right server, without heartbeats.

Prefect 3.9 runs a heartbeat thread per *sync* flow run; starting and joining it costs
about a second per flow and subflow (measured here: 5 sync subflows 8.97 s with the
default heartbeat, 2.65 s without). Crash detection by heartbeat matters for flows
run by workers from deployments, which keep it; in-process runs started by ``noa``
switch it off.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

T = TypeVar("T")


def run_in_process(flow_fn: Callable[..., T], /, **parameters: Any) -> T:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return flow_fn(**parameters)
