"""Retry only what a retry can help: transient network errors, never refused input."""

from __future__ import annotations

from typing import Any

from noa_core.errors import BadInput


def _exception_of(state: Any) -> BaseException | None:
    try:
        value = state.result(raise_on_failure=False)
    except BaseException as exc:  # noqa: BLE001 - result() may itself raise the stored exception
        return exc
    return value if isinstance(value, BaseException) else None


def retry_unless_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed task unless it failed because the input was refused."""
    return not isinstance(_exception_of(state), BadInput)


def retry_on_network_error(task: Any, task_run: Any, state: Any) -> bool:
    from noa_core.intake.errors import NetworkError

    return isinstance(_exception_of(state), NetworkError)
