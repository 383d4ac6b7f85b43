"""The ``noa-workspace`` block: where a workspace lives and how to reach its databases.

Deployments and scheduled runs name a block instead of carrying paths and connection
strings as parameters; the database and cache URLs may hold passwords, so they are
``SecretStr`` and never appear in parameters, logs or reports.
"""

from __future__ import annotations

from pathlib import Path

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from noa_core.config import NoaSettings


class NoaWorkspace(Block):
    """A NOA workspace (NOA_HOME) and its services."""

    _block_type_name = "NOA Workspace"
    _block_type_slug = "noa-workspace"
    _description = "Where a NOA ARK OS workspace lives (NOA_HOME) and how to reach its database and cache."

    home: str = Field(..., description="NOA_HOME: drops, workspace repository, reports, registry")
    database_url: SecretStr | None = Field(None, description="SQLAlchemy URL; default SQLite in NOA_HOME")
    redis_url: SecretStr | None = Field(None, description="Redis URL for the shared cache; default in-process")
    low_confidence: float = Field(0.5, ge=0.0, le=1.0, description="below this a drop always goes to sandbox C")

    def settings(self, base: NoaSettings | None = None) -> NoaSettings:
        """NoaSettings for this workspace (environment settings fill the rest)."""
        base = base or NoaSettings()
        return base.model_copy(update={
            "home": Path(self.home),
            "database_url": self.database_url.get_secret_value() if self.database_url else base.database_url,
            "redis_url": self.redis_url.get_secret_value() if self.redis_url else base.redis_url,
            "low_confidence": self.low_confidence,
        })
