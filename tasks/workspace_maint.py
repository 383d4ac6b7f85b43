"""Prefect tasks over noa_core.workspace: scan (registry, SOT, versions) and the dependency graph."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from noa_core.config import NoaSettings
from tasks.retry import retry_unless_bad_input


@task(name="workspace-scan", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, timeout_seconds=3600,
      retry_condition_fn=retry_unless_bad_input)
async def scan_task(settings: NoaSettings, root: str) -> dict[str, Any]:
    """stat check -> BLAKE3 -> SOT check (duplicate: zstd archive / unique: registry, version) -> CL tree."""
    from noa_core.workspace.scan import scan

    report = await asyncio.to_thread(scan, settings, Path(root))
    doc = report.as_dict()
    get_run_logger().info("scan %s: %d files, +%d ~%d -%d, %d hashed, SOT saved %d bytes", root, doc["files"],
                          doc["added"], doc["modified"], doc["deleted"], doc["hashed_files"], doc["saved_bytes"])
    await acreate_table_artifact(key="workspace-scan", table=[
        {k: doc[k] for k in ("root", "files", "bytes", "added", "modified", "deleted", "unchanged", "hashed_files",
                             "racy", "duplicate_files", "archive_bytes", "saved_bytes", "cltree_entry")}],
        description=f"workspace scan of {root}")
    return doc


@task(name="workspace-graph", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=1, timeout_seconds=1800,
      retry_condition_fn=retry_unless_bad_input)
async def graph_task(settings: NoaSettings, root: str, out: str | None = None,
                     image: str = "svg") -> dict[str, Any]:
    """The dependency graph: GraphML, JSON, a rendered image, and a markdown artifact showing it."""
    from noa_core.workspace.deps import build_graph, graph_json, markdown, write_graph

    def work() -> tuple[Any, dict[str, str]]:
        graph = build_graph(Path(root), skip=[str(settings.layout().root)])
        target = Path(out) if out else settings.layout().reports / "workspace-graph"
        return graph, write_graph(graph, target, image=image)

    graph, files = await asyncio.to_thread(work)
    text = markdown(graph, files)
    image_path = Path(files["image"])
    if image_path.suffix == ".svg" and image_path.stat().st_size < 400_000:
        encoded = base64.b64encode(image_path.read_bytes()).decode("ascii")
        text += f"\n![dependency graph](data:image/svg+xml;base64,{encoded})\n"
    await acreate_markdown_artifact(key="workspace-dependency-graph", markdown=text,
                                    description=f"dependency graph of {root}")
    summary = {k: v for k, v in graph_json(graph).items() if k not in ("nodes", "links")}
    return {**summary, "files": files}
