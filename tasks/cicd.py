"""CI/CD tasks: the trigger (a guarded fetch, only network failures retried) and the validate stage,
run off the event loop over :mod:`noa_core.cicd`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prefect import task

from noa_core.cicd.checks import validate_tree
from noa_core.cicd.trigger import fetch_for_run
from noa_core.config import NoaSettings
from noa_core.intake.errors import NetworkError


def _settings(home: str) -> NoaSettings:
    return NoaSettings().model_copy(update={"home": Path(home)}) if home else NoaSettings()


@task(name="cicd-trigger", timeout_seconds=1800)
async def trigger_task(source: str, commit: str | None, home: str, run_id: str) -> dict[str, Any]:
    """Fetch ``source`` (guarded) into ``drops/cicd-<run>``; check ``commit`` against its HEAD.

    Only a network failure is retried (three tries, 2 s then 10 s apart); a refusal or a
    wrong commit is an answer."""
    for delay in (2.0, 10.0, None):
        try:
            return await asyncio.to_thread(fetch_for_run, source, commit, _settings(home), run_id)
        except NetworkError:
            if delay is None:
                raise
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


@task(name="cicd-validate", timeout_seconds=600)
async def validate_task(tree: str) -> dict[str, Any]:
    """Manifest (model + JSON schema) and blocking lint; ``{"status", "reason", ...}``."""
    return await asyncio.to_thread(validate_tree, tree)


__all__ = ["trigger_task", "validate_task"]
