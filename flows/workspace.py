"""``workspace_maintenance``: the seed's Workspace Management Flow as one Prefect flow.

file change -> SOT check -> duplicate: compress and archive / unique: registry, hash,
version -> dependencies -> CL tree -> graphs. Backups are the ``backup`` flow's job.
Async (no per-flow heartbeat cost, see flows/runtime.py). The CLI runs the same steps
without Prefect unless ``--flow`` is given.
"""

from __future__ import annotations

from prefect import flow

from noa_core.config import NoaSettings
from noa_core.results import WorkspaceReport
from tasks.workspace_maint import graph_task, scan_task


def _run_name() -> str:
    from prefect.runtime import flow_run

    root = str(flow_run.parameters.get("root", "")).rstrip("/")
    return "workspace-" + (root.rsplit("/", 1)[-1] or "root")[:60]


@flow(name="workspace_maintenance", flow_run_name=_run_name, log_prints=False)
async def workspace_maintenance(root: str, home: str | None = None, graph: bool = True, out: str | None = None,
                                image: str = "svg") -> WorkspaceReport:
    """Scan ``root`` into the workspace registry (SOT archive, versions, CL tree) and draw its dependency graph.

    ``out`` is where the graph files go (default under NOA_HOME), ``image`` the rendered
    graph's format. Raises :class:`~noa_core.errors.BadInput` when ``root`` is not a directory.
    """
    from prefect.runtime import flow_run

    settings = NoaSettings(home=home) if home else NoaSettings()
    report = WorkspaceReport(root=root, scan=await scan_task(settings, root))
    if graph:
        report.graph = await graph_task(settings, root, out, image)
    report.flow_run_id = str(flow_run.id) if flow_run.id else None
    return report
