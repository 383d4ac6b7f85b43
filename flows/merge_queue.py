"""The merge queue inside ``sandbox_merge``: its decisions run with this flow's tasks as their steps.

What to hold and what to merge when a batch fails validation is decided in the domain
(:mod:`noa_core.sandbox.drop_holding`); this module only binds the steps it needs to the
Prefect tasks of :mod:`tasks.merge` (building a candidate, reading test plans) and to the
flow run's logger.
"""

from __future__ import annotations

from prefect import get_run_logger

from noa_core.config import NoaSettings
from noa_core.sandbox.drop_holding import QueueOutcome, QueueSteps, Validator
from noa_core.sandbox.drop_holding import hold_failing_drops as hold_drops
from noa_core.sandbox.drop_queue import DropUnit, HeldDrop
from noa_core.sandbox.merge import MergePlan, ProjectValidation
from tasks.merge import (
    build_drop_integration_task,
    open_workspace,
    read_test_plans_task,
)


def hold_failing_drops(settings: NoaSettings, plan: MergePlan, units: list[DropUnit],
                       validation: dict[str, ProjectValidation], validator: Validator, run_id: str,
                       already_held: dict[str, HeldDrop] | None = None) -> QueueOutcome:
    """Hold the drops that make ``validation`` fail (besides ``already_held``); build and validate the rest."""
    logger = get_run_logger()
    steps = QueueSteps(
        git=open_workspace(settings).git,
        build=lambda keep, message: build_drop_integration_task(settings, plan, units, keep, message),
        test_plans=lambda commit, projects: read_test_plans_task(settings, commit, projects),
        validator=validator,
        log=logger.info,
    )
    return hold_drops(steps, plan, units, validation, run_id, already_held)
