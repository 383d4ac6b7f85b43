"""``app_switch``: the seed's Self-Hosted App Switching sequence as a Prefect flow.

request -> registry -> switch controller -> initialise the alternative -> wait until
ready -> route traffic to it through Caddy -> drain the old app -> shut it down (owned)
or detach it (external) -> update status -> report. Each step is one task run (named
after the step) over :class:`noa_core.apps.switch.SwitchController`; a failed step is a
failed task run, followed by the ``app-switch-undo`` task that puts traffic back where
it was, and the ``app-switch-report`` task (CL tree entry, kind ``registry``). The
reverse switch (owned -> external) is the same flow with the names swapped.

No retries on the steps: a switch is not idempotent (a half-done one is undone instead).
The flow is async: no heartbeat thread per run (see flows/runtime.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.run_names import app_switch_run_name
from noa_core.apps.switch import (
    STEPS,
    SwitchController,
    SwitchFailed,
    SwitchOptions,
    SwitchRun,
)
from noa_core.config import NoaSettings
from noa_core.results import SwitchReport

__all__ = ["app_switch"]


@task(name="app-switch-step", task_run_name="{step}", cache_policy=NO_CACHE, retries=0)
async def switch_step(ctl: SwitchController, run: SwitchRun, step: str) -> dict[str, Any]:
    """One step of the switch (its blocking work in a worker thread)."""
    return await asyncio.to_thread(ctl.step, run, step)


@task(name="app-switch-undo", cache_policy=NO_CACHE, retries=0)
async def undo_step(ctl: SwitchController, run: SwitchRun) -> dict[str, Any]:
    """Traffic back on the source, the target stopped if this switch started it."""
    return await asyncio.to_thread(ctl.undo, run)


@task(name="app-switch-report", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=1)
async def report_step(ctl: SwitchController, run: SwitchRun) -> dict[str, Any]:
    """The result, and its CL tree entry."""
    return await asyncio.to_thread(ctl.report, run)


def _settings(home: str | None) -> NoaSettings:
    s = NoaSettings()
    return s if home is None else s.model_copy(update={"home": Path(home)})


@flow(name="app_switch", flow_run_name=app_switch_run_name, log_prints=False)
async def app_switch(app: str, from_app: str | None = None, home: str | None = None,
                     health_timeout_s: float = 30.0, drain_timeout_s: float = 10.0) -> SwitchReport:
    """Switch the service of ``app`` over to ``app`` (from ``from_app``, default: whoever serves it).

    Both apps must be registered (``noa apps register``); an owned app is started, an external
    one only routed to. A step that fails is undone (traffic put back) and the report says
    ``failed``: an outcome, not an error. Raises :class:`~noa_core.errors.BadInput` for an
    unknown app or a switch already running for the service.
    """
    logger = get_run_logger()
    ctl = SwitchController(_settings(home), options=SwitchOptions(health_timeout_s, drain_timeout_s),
                           log=logger.info)
    run = ctl.begin(app, from_app)
    try:
        for step in STEPS:
            await switch_step(ctl, run, step)
    except SwitchFailed as exc:
        logger.error(f"switch to {app} failed at {exc}; putting traffic back")
        await undo_step(ctl, run)
    finally:
        ctl.release(run)
    res = SwitchReport.model_validate(await report_step(ctl, run))
    try:
        await create_table_artifact(
            [{"step": s["name"], "verdict": s["verdict"], "duration_s": s["duration_s"], "reason": s["reason"]}
             for s in res["steps"]],
            key=f"app-switch-{res['service'] or app}".lower().replace("_", "-").replace(".", "-")[:100],
            description=f"{res['from']} -> {res['to']}: {res['outcome']} ({res['reason']})")
    except Exception as exc:  # noqa: BLE001 - an artifact is a convenience, not the result
        logger.warning(f"no artifact: {exc}")
    return res
