"""Deploy tasks: one release through blue-green or canary, a rollback, a recovery.

The deploy itself is one task (``deploy-release``): its steps share live state (the new
instance, the analysis counters), and a sub-second analysis loop does not fit one
Prefect task per tick. It runs in a worker thread so the flow's event loop stays free
for a manual-judgement pause. No retries: a deploy is not idempotent; a failed one is
undone by :func:`recover_task`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from noa_core.deploy.run import deploy_project, restore_active, rollback_app


def _logger() -> Callable[[str], None]:
    try:
        log = get_run_logger()
        return log.info
    except Exception:  # noqa: BLE001 - outside a run context
        return lambda _m: None


@task(name="deploy-release", cache_policy=NO_CACHE, retries=0)
def deploy_task(home: str, project_dir: str, env: str, strategy: str | None, app: str | None,
                options: Mapping[str, Any], approve: Callable[[int], bool] | None = None) -> dict[str, Any]:
    """Snapshot the project, start it on the target, shift traffic per the strategy."""
    return deploy_project(Path(home), Path(project_dir), env, strategy, app, options, log=_logger(),
                          approve=approve)


@task(name="rollback-release", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def rollback_task(home: str, app: str, env: str, target: str = "local") -> dict[str, Any]:
    """Return ``app`` in ``env`` to its previous good release, blue-green."""
    return rollback_app(Path(home), app, env, target=target, log=_logger())


@task(name="recover-routing", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def recover_task(home: str, app: str, env: str, target: str = "local") -> dict[str, Any]:
    """After a deploy broke off: traffic back to the active release (or roll back)."""
    return restore_active(Path(home), app, env, target=target)
