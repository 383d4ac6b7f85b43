"""``workspace_maintenance``'s result: :class:`WorkspaceReport`."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from noa_core.results.base import FlowResult

__all__ = ["WorkspaceReport"]


class WorkspaceReport(FlowResult):
    """A workspace scanned into the registry (SOT archive, versions, CL tree) and its dependency graph drawn."""

    root: str = Field(description="the workspace root scanned")
    scan: dict[str, Any] = Field(description="the scan: files seen, duplicates archived, versions, CL tree entry "
                                             "(as `noa workspace scan --json`)")
    graph: dict[str, Any] | None = Field(None, description="the dependency graph's summary (projects, ...) and "
                                                           "its files (graphml, json, image); null when "
                                                           "graph=False")
    flow_run_id: str | None = Field(None, description="the Prefect flow run")
