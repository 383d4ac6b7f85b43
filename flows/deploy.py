"""``deploy`` and ``rollback``: the seed's Deployment box as Prefect flows (contract 2).

``deploy`` runs one release of a project through blue-green (staging) or a canary
(production) on a deploy target behind NOA's Caddy; ``rollback`` returns an app to its
previous good release. They return a :class:`~noa_core.results.DeployReport` /
:class:`~noa_core.results.RollbackReport` (``app, env, strategy, steps, outcome
("promoted" | "rolled_back" | "failed" | "skipped"), release, reason``, ...) and
publish the steps as a table artifact.

A failed canary analysis is rolled back inside the deploy (weight 0 at once, canary
stopped). If the deploy itself breaks off (an exception), the flow recovers: traffic
goes back to the active release (or the previous good one) before the error is
re-raised. ``target_block="name"`` takes the target settings from a saved
``noa-local-target`` block (blocks/deploy.py). Manual judgement: ``pause_at=[25]`` pauses the flow run after the 25 % step
until someone resumes it in the Prefect UI (input ``approve``: true/false; no answer in
``approval_timeout_s`` means no).

Both flows are async: no heartbeat thread per run (see flows/runtime.py).
"""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.input import RunInput

from flows.run_names import deploy_run_name, rollback_run_name
from noa_core.config import NoaSettings
from noa_core.errors import NoaError
from noa_core.observability.logs import logs_in_home
from noa_core.results import DeployReport, RollbackReport
from tasks.deploy import deploy_task, recover_task, rollback_task

__all__ = ["Approval", "deploy", "rollback"]


class Approval(RunInput):
    approve: bool = True


def _home(home: str | None) -> str:
    return str((NoaSettings().home if home is None else NoaSettings(home=home).home).resolve())


async def _publish(res: DeployReport) -> None:
    rows = [{"step": s.get("name"), "weight": s.get("weight"), "verdict": s.get("verdict"),
             "duration_s": s.get("duration_s"), "reason": s.get("reason", "")} for s in res.get("steps", [])]
    try:
        await create_table_artifact(rows or [{"step": "-", "verdict": res.get("outcome")}],
                                    key=f"deploy-{str(res.get('app', 'app')).lower()}"[:100].replace("_", "-")
                                    .replace(".", "-"),
                                    description=f"{res.get('app')} {res.get('env')}: {res.get('outcome')} "
                                                f"({res.get('reason', '')})")
    except Exception:  # noqa: BLE001 - an artifact is a convenience, not the result
        pass


def _approver(loop: asyncio.AbstractEventLoop, timeout_s: float) -> Any:
    from prefect.flow_runs import pause_flow_run

    async def ask(weight: int) -> bool:
        try:
            pause = getattr(pause_flow_run, "aio", pause_flow_run)
            answer = pause(wait_for_input=Approval, timeout=int(timeout_s), key=f"approve-{weight}")
            if inspect.isawaitable(answer):
                answer = await answer
        except Exception as exc:  # noqa: BLE001 - timeout or no server: not approved
            get_run_logger().warning(f"no approval at {weight}%: {exc}")
            return False
        return bool(getattr(answer, "approve", False))

    def approve(weight: int) -> bool:  # called from the deploy task's worker thread
        return asyncio.run_coroutine_threadsafe(ask(weight), loop).result()

    return approve


@flow(name="deploy", flow_run_name=deploy_run_name, log_prints=False, persist_result=True)
@logs_in_home
async def deploy(project_dir: str, env: str = "staging", strategy: str | None = None, home: str | None = None,
                 app: str | None = None, **options: Any) -> DeployReport:
    """Deploy ``project_dir`` to ``env``: blue-green (staging) or canary (production).

    Needs the project's ``noa.yaml`` with a ``run`` command (else the outcome is ``skipped``);
    starts NOA's deploy supervisor (Caddy and the app processes) under NOA_HOME, which outlives
    the flow. A failed health check or canary analysis is an outcome (``failed`` /
    ``rolled_back``), not an error. Raises :class:`~noa_core.errors.BadInput` for a missing
    ``noa.yaml`` or a bad option, and re-raises any other error after putting traffic back.
    """
    h = _home(home)
    if options.get("target_block"):
        from blocks.deploy import LocalTargetBlock

        block = await LocalTargetBlock.load(str(options.pop("target_block")))
        options = {**block.options(), **options}
    approve = None
    if options.get("pause_at"):
        approve = _approver(asyncio.get_running_loop(), float(options.get("approval_timeout_s") or 3600))
    try:
        fut = deploy_task.submit(h, project_dir, env, strategy, app, options, approve)
        res = await asyncio.to_thread(fut.result)
    except Exception as exc:
        if isinstance(exc, NoaError) and exc.exit_code == 2:  # refused input: nothing was touched
            raise
        from noa_core.manifest import load_manifest

        name = app or load_manifest(Path(project_dir) / "noa.yaml").name
        get_run_logger().error(f"deploy of {name} broke off ({exc}); recovering the routing")
        try:
            await asyncio.to_thread(recover_task, h, name, env, str(options.get("target") or "local"))
        except Exception as again:  # noqa: BLE001 - report the first error, not the recovery's
            get_run_logger().error(f"recovery failed too: {again}")
        raise
    report = DeployReport.from_result(res)
    await _publish(report)
    return report


@flow(name="rollback", flow_run_name=rollback_run_name, log_prints=False, persist_result=True)
@logs_in_home
async def rollback(app: str, env: str = "production", home: str | None = None) -> RollbackReport:
    """Return ``app`` in ``env`` to the previous good release, blue-green style.

    Needs an earlier good release of ``app`` in NOA_HOME; raises
    :class:`~noa_core.errors.BadInput` for an unknown ``env``.
    """
    report = RollbackReport.from_result(await asyncio.to_thread(rollback_task, _home(home), app, env))
    await _publish(report)
    return report
