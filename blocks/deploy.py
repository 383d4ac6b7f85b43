"""Deploy target blocks: how a deploy target is configured, by name, in the Prefect UI.

``noa-local-target``: supervised local processes (the default target). Deployments and
scheduled runs name a block (``LocalTargetBlock.load("staging")``) instead of carrying
target settings as parameters. The Docker and Kubernetes target blocks live beside
their adapters (helper "cicd").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field


class LocalTargetBlock(Block):
    """Supervised local processes behind NOA's Caddy."""

    _block_type_name = "NOA Local Target"
    _block_type_slug = "noa-local-target"
    _description = "Run releases as supervised local processes (free port, health check, logs, restarts)."

    max_restarts: int = Field(3, ge=0, le=100, description="crash restarts within 60 s before 'crashed'")
    health_timeout_s: float = Field(30.0, gt=0, le=3600, description="time a new release has to become healthy")
    drain_timeout_s: float = Field(10.0, ge=0, le=3600, description="wait for in-flight requests before stopping")
    interval_s: float | None = Field(None, gt=0, le=86400, description="canary step hold time; None = noa.yaml")
    tick_s: float = Field(0.25, gt=0, le=60, description="canary analysis measurement period")

    def options(self) -> dict[str, Any]:
        """``deploy`` flow options for this target."""
        opts: dict[str, Any] = {"target": "local", "max_restarts": self.max_restarts,
                                "health_timeout_s": self.health_timeout_s,
                                "drain_timeout_s": self.drain_timeout_s, "tick_s": self.tick_s}
        if self.interval_s is not None:
            opts["interval_s"] = self.interval_s
        return opts

    def target(self, home: Path):
        from noa_core.deploy.local_target import LocalTarget

        return LocalTarget(home, max_restarts=self.max_restarts)
