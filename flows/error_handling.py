"""``error_handling``: the seed's Error Handling Flow, shared by the unified workflow's stages.

    error -> recoverable? -> retry -> success: continue
                                   -> still failing: fallback -> continue
          -> not recoverable (or no fallback): log -> change log -> alert
                                               -> critical? rollback : mark failed

:func:`guarded_stage` runs one stage subflow with that policy: a recoverable error
(network, timeout, a server that did not answer; see :mod:`noa_core.stages.errors`) is
retried, then the fallback runs if the stage has one. Everything else - an error that
is not recoverable, a failed gate - goes to the :func:`error_handling` subflow: the
error is logged, recorded in the CL tree (contract 1, when installed), an alert goes out
(through a Prefect notification block when one is named - ``alert_block`` or
``NOA_ALERT_BLOCK``, e.g. ``custom-webhook/noa-alerts`` - else as an ERROR log line), and
a critical failure (production) is rolled back with ``flows.deploy.rollback`` when the
deploy flows are installed.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from noa_core.config import NoaSettings
from noa_core.results import ErrorHandlingReport, StageReport
from noa_core.stages.errors import ErrorPolicy, is_critical, is_recoverable
from noa_core.stages.result import Gate, StageResult
from tasks.stages import change_log_task

__all__ = ["ALERT_BLOCK_ENV", "error_handling", "guarded_stage", "send_alert"]

ALERT_BLOCK_ENV = "NOA_ALERT_BLOCK"


def _settings(home: str | None) -> NoaSettings:
    settings = NoaSettings()
    return settings.model_copy(update={"home": Path(home)}) if home else settings


async def send_alert(subject: str, body: str, block: str | None) -> dict[str, Any]:
    """Through the named Prefect notification block, else as an ERROR log line."""
    logger = get_run_logger()
    name = block or os.environ.get(ALERT_BLOCK_ENV) or None
    if name:
        try:
            from prefect.blocks.core import Block

            notifier = await Block.aload(name)
            await notifier.notify(body=body, subject=subject)  # type: ignore[attr-defined]
            return {"via": "block", "block": name, "status": "sent"}
        except Exception as exc:  # noqa: BLE001 - an alert that cannot go out is logged, never fatal
            logger.error("ALERT (block %s failed: %s: %s) %s: %s", name, type(exc).__name__, exc, subject, body)
            return {"via": "log", "block": name, "status": "logged",
                    "reason": f"block {name}: {type(exc).__name__}: {exc}"[:300]}
    logger.error("ALERT %s: %s", subject, body)
    return {"via": "log", "status": "logged", "reason": "no notification block configured"}


def _handling_run_name() -> str:
    from prefect.runtime import flow_run

    return f"error-{flow_run.parameters.get('stage', '?')}-{str(flow_run.parameters.get('project', ''))[:50]}"


@flow(name="error_handling", flow_run_name=_handling_run_name, log_prints=False)
async def error_handling(stage: str, project: str, reason: str, home: str | None = None, attempts: int = 1,
                         recoverable: bool = False, critical: bool | None = None, app: str | None = None,
                         alert_block: str | None = None, rolled_back: bool = False) -> ErrorHandlingReport:
    """log -> change log -> alert -> rollback when critical, else mark failed.

    ``critical`` defaults to the stage's policy (production is critical). A failed alert or
    rollback is reported in the result, never raised.
    """
    logger = get_run_logger()
    settings = _settings(home)
    critical = is_critical(stage) if critical is None else critical
    logger.error("stage %s of %s failed after %d attempt(s): %s", stage, project, attempts, reason)  # log
    change = await change_log_task(settings, "alert", f"{project}/{stage}",
                                   {"stage": stage, "reason": reason[:500], "attempts": attempts,
                                    "critical": critical})
    alert = await send_alert(f"NOA: stage {stage} of {project} failed",
                             f"{reason}\n(attempts: {attempts}; critical: {critical})", alert_block)
    action: dict[str, Any]
    if critical and not rolled_back:
        try:
            from flows.deploy import rollback
        except ImportError:
            action = {"action": "rollback", "status": "skipped", "reason": "skipped: no deploy target"}
        else:
            try:
                done = await rollback(app=app or project, env="production", home=str(settings.home))
                action = {"action": "rollback", "status": str(done.get("outcome", "done")), "result": dict(done)}
            except Exception as exc:  # noqa: BLE001 - a failed rollback is reported, not raised
                logger.error("rollback of %s failed: %s: %s", app or project, type(exc).__name__, exc)
                action = {"action": "rollback", "status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:300]}
        await change_log_task(settings, "rollback", app or project, {"stage": stage, "status": action["status"]})
    elif critical:
        action = {"action": "rollback", "status": "done by the deployment", "reason": "the deploy flow rolled back"}
    else:
        action = {"action": "mark failed", "status": "done"}
    return ErrorHandlingReport.model_validate({
        "stage": stage, "logged": True, "recoverable": recoverable, "attempts": attempts, "critical": critical,
        "change_log": change, "alert": alert, **action})


StageCall = Callable[..., Awaitable[StageReport]]


async def guarded_stage(name: str, stage_flow: StageCall, params: Mapping[str, Any], *, project: str,
                        home: str | None, policy: ErrorPolicy | None = None, fallback: StageCall | None = None,
                        alert_block: str | None = None) -> StageReport:
    """Run one stage subflow under the error policy; a failure goes through :func:`error_handling`."""
    logger = get_run_logger()
    policy = policy or ErrorPolicy()
    attempts = 0
    error: BaseException | None = None
    result: StageReport | None = None
    recoverable = False
    t0 = time.perf_counter()
    while True:
        attempts += 1
        try:
            result = StageReport.model_validate(await stage_flow(**params))
            error = None
            break
        except Exception as exc:
            from noa_core.errors import BadInput

            if isinstance(exc, BadInput):
                raise  # refused input: exit 2, never retried
            error, recoverable = exc, is_recoverable(exc)
            if not recoverable or attempts > policy.retries:
                break
            logger.warning("stage %s: %s: %s - retry %d of %d", name, type(exc).__name__, exc, attempts,
                           policy.retries)
            await asyncio.sleep(policy.delay_s * attempts)
    if error is not None and recoverable and fallback is not None:
        logger.warning("stage %s still failing after %d attempts: fallback", name, attempts)
        try:
            result = StageReport.model_validate(await fallback(**params)).model_copy(deep=True)
            result.details = f"{result.details} (fallback after {type(error).__name__})"
            error = None
        except Exception as exc:  # noqa: BLE001 - the fallback failing is the stage failing
            error = exc
    if error is not None:
        why = f"{type(error).__name__}: {' '.join(str(error).split())}"[:500]
        result = StageReport.from_domain(StageResult(name, "failed", f"error: {why}",
                                                     Gate(name, False, None, None, why)))
    assert result is not None
    result.data["attempts"] = attempts
    result.data["work_s"] = result.duration_s  # inside the stage; duration_s is the wall time
    result.duration_s = round(time.perf_counter() - t0, 3)
    if result.status == "failed":
        deploy = result.data.get("deploy") or {}
        handled = await error_handling(
            stage=name, project=project, reason=result.details, home=home, attempts=attempts,
            recoverable=recoverable, app=project, alert_block=alert_block,
            rolled_back=deploy.get("outcome") == "rolled_back")
        result.data["error_handling"] = handled.to_json()
    return result
