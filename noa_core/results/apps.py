"""``app_switch``'s result: :class:`SwitchReport` (what ``noa apps switch --json`` prints).

The switch controller (:mod:`noa_core.apps.switch`) builds it as a dict; the flow validates it
into this model at its edge.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from noa_core.results.base import FlowResult, ResultPart

__all__ = ["SwitchReport", "SwitchStep"]


class SwitchStep(ResultPart):
    """One step of the switch: init owned, ready, route, drain external, shutdown, status, report."""

    name: str = Field(description="step name")
    verdict: str = Field(description="passed, failed, skipped, undone, ...")
    duration_s: float = Field(0.0, description="seconds the step took")
    reason: str = Field("", description="why, in one line")


class SwitchReport(FlowResult):
    """A service's traffic moved from the app serving it to another (or put back when a step failed)."""

    service: str | None = Field(None, description="the service switched")
    from_app: str | None = Field(None, alias="from", description="the app that served before (JSON key 'from')")
    to: str = Field(description="the app asked to serve")
    outcome: Literal["switched", "failed"] = Field(description="switched, or failed (traffic put back)")
    reason: str = Field(description="why this outcome, in one line")
    endpoint: str | None = Field(None, description="the service's public host:port")
    route: str | None = Field(None, description="the router's route name")
    serving: str | None = Field(None, description="the app serving now")
    steps: list[SwitchStep] = Field(default_factory=list, description="the steps, in order")
    duration_s: float = Field(description="seconds the switch took")
    cltree: str | None = Field(None, description="id of the CL tree entry recording the switch, or 'skipped: ...'")
