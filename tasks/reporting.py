"""Reports: the JSON file under NOA_HOME/reports and Prefect artifacts a person reads."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from uuid import UUID

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from noa_core.report import DropReport, render_markdown


def artifact_key(*parts: str) -> str:
    key = "-".join(parts).lower()
    return re.sub(r"[^a-z0-9-]+", "-", key).strip("-")[:100]


@task(name="write-report", cache_policy=NO_CACHE)
def write_report_task(report: DropReport, reports_dir: Path) -> DropReport:
    reports_dir.mkdir(parents=True, exist_ok=True)
    json_path = reports_dir / f"{report.drop_id}.json"
    md_path = reports_dir / f"{report.drop_id}.md"
    report = report.model_copy(update={"report_path": str(json_path)})
    markdown = render_markdown(report)
    for path, text in ((json_path, report.model_dump_json(indent=2)), (md_path, markdown)):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    key = artifact_key("drop", report.project)
    create_markdown_artifact(markdown, key=key, description=f"code drop report {report.drop_id}")
    create_table_artifact(
        [{"analyzer": k, "status": v.status, "reason": v.reason, "seconds": round(v.seconds, 2), "cached": v.cached}
         for k, v in report.analyzers.items()],
        key=artifact_key("drop", report.project, "analyzers"), description="analyzer outcomes")
    create_table_artifact(
        [c.model_dump() for c in report.confidence_detail.contributions],
        key=artifact_key("drop", report.project, "confidence"), description="what the confidence is made of")
    if report.findings:
        create_table_artifact(report.findings[:200], key=artifact_key("drop", report.project, "findings"),
                              description=f"{len(report.findings)} findings")
    return report


class FlowProgress:
    """A Prefect progress artifact that follows the steps of a flow run."""

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps
        self.done = 0
        self._id: UUID | None = None

    def start(self) -> None:
        try:
            self._id = create_progress_artifact(0.0, description=f"starting: {self.steps[0]}")
        except Exception:  # progress must never sink the flow
            self._id = None

    def step(self, name: str) -> None:
        self.done += 1
        if self._id is None:
            return
        try:
            update_progress_artifact(self._id, 100.0 * self.done / len(self.steps), description=f"done: {name}")
        except Exception:
            pass


def load_report(path: Path) -> dict:
    return json.loads(path.read_text())
