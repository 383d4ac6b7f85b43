"""The ``workspace_maintenance`` flow on a real Prefect server: scan + graph, with artifacts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_workspace_graph import WORKSPACE, write


@pytest.mark.slow
def test_workspace_maintenance_flow_leaves_scan_and_graph_artifacts(prefect_api_url: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.workspace import workspace_maintenance

    root = write(tmp_path / "ws", WORKSPACE)
    result = asyncio.run(workspace_maintenance(root=str(root), home=str(tmp_path / "home"), graph=True))
    assert result["scan"]["added"] == len(WORKSPACE) and result["scan"]["cltree_entry"]
    assert result["graph"]["projects"] == 6 and Path(result["graph"]["files"]["image"]).is_file()
    assert result["flow_run_id"]

    async def artifacts() -> dict[str, str]:
        async with get_client() as client:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["workspace-dependency-graph", "workspace-scan"])))
        return {a.key: str(a.data) for a in found if str(a.flow_run_id) == result["flow_run_id"]}

    found = asyncio.run(artifacts())
    assert "acme-api" in found["workspace-dependency-graph"]
    assert "data:image/svg+xml;base64," in found["workspace-dependency-graph"]
    assert str(root) in found["workspace-scan"]
