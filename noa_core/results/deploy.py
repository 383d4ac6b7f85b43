"""``deploy`` and ``rollback``'s results: :class:`DeployReport` and :class:`RollbackReport`
(what ``noa deploy --json`` and ``noa rollback --json`` print).

The deploy controller (:mod:`noa_core.deploy.controller`) builds the result as a plain dict;
the flows turn it into these models at their edge (``DeployReport.model_validate(res)``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from noa_core.results.base import FlowResult, ResultPart

__all__ = ["DeployReport", "DeployStep", "RollbackReport"]

Outcome = Literal["promoted", "rolled_back", "failed", "skipped"]


class DeployStep(ResultPart):
    """One step of a release: health check, a canary weight, the switch, a drain, a monitor window."""

    name: str = Field(description="step name: health, switch, canary-<weight>, monitor, drain, build, ...")
    weight: int | None = Field(None, description="traffic weight (percent) on the new release in this step")
    duration_s: float = Field(0.0, description="seconds the step took")
    verdict: str = Field(description="passed, failed, skipped, ...")
    reason: str = Field("", description="why, in one line")
    metrics: dict[str, Any] = Field(default_factory=dict, description="what the step measured (error rates, "
                                                                      "latency, status code, log tail)")


class DeployReport(FlowResult):
    """One release of an app through blue-green (staging) or a canary (production) behind NOA's Caddy."""

    model_config = ConfigDict(extra="allow")  # a deploy target may add its own keys

    app: str = Field(description="the app (noa.yaml name unless given)")
    env: str = Field(description="staging or production")
    strategy: str = Field(description="blue-green or canary")
    outcome: Outcome = Field(description="promoted, rolled_back, failed or skipped")
    release: str | None = Field(None, description="id of the release deployed (or rolled back to)")
    reason: str = Field("", description="why this outcome, in one line")
    steps: list[DeployStep] = Field(default_factory=list, description="the steps, in order")
    previous: str | None = Field(None, description="the release that served before")
    endpoint: str | None = Field(None, description="host:port of the app's public route")
    url: str | None = Field(None, description="http URL of the app's public route")
    instance: dict[str, Any] | None = Field(None, description="the instance now serving: target, instance_id, "
                                                              "host, port, pid, logs, endpoint")
    switched_at: float | None = Field(None, description="blue-green: Unix time of the traffic switch")
    weight_zero_at: float | None = Field(None, description="canary: Unix time the failed canary got weight 0")
    rolled_back_from: str | None = Field(None, description="rollback: the release that was active before")
    cltree: str | None = Field(None, description="id of the CL tree entry recording this, or 'skipped: ...'")

    @classmethod
    def from_result(cls, res: Any) -> DeployReport:
        """The model of a deploy controller result (a dict), or ``res`` itself when it is one already."""
        return res if isinstance(res, cls) else cls.model_validate(dict(res))


class RollbackReport(DeployReport):
    """An app returned to its previous good release, deployed blue-green (``outcome`` rolled_back)."""
