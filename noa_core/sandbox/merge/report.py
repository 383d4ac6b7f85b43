"""The report of one merge run: its id, the :class:`MergeReport`, its markdown and its JSON file."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CLTREE_NOTE = "the CL tree (change log) does not exist yet in NOA ARK OS: this merge is recorded only in this report"


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class MergeReport:
    """The outcome of one ``sandbox_merge`` run (``noa merge --json`` prints :meth:`as_dict`)."""

    run_id: str
    outcome: str                      # merged | partially merged | nothing to merge | conflict | validation failed
                                      # | rolled back | concurrent update
    merged: bool
    requested: tuple[str, ...]
    to_merge: tuple[str, ...]
    integration_head_before: str
    integration_head_after: str
    candidate: str | None
    conflicts: tuple[dict[str, Any], ...]
    matrix: tuple[dict[str, str], ...]
    conflict_check: dict[str, Any]
    validation: dict[str, dict[str, Any]]
    culprit: tuple[str, ...] | None
    culprit_reason: str | None
    bisection: tuple[dict[str, Any], ...]
    per_sandbox: dict[str, dict[str, Any]]
    mergeable: tuple[str, ...]
    suggestion: str | None
    message: str
    recovered: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    started: str = ""
    finished: str = ""
    report_path: str | None = None
    flow_run_id: str | None = None    # the Prefect flow run that made this report
    cltree: dict[str, str] = field(default_factory=lambda: {"status": "skipped", "reason": CLTREE_NOTE})
    # per drop: {"merged": [{sandbox, drop_id, project, commit, superseded}], "held": [... + reason]}
    drops: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"merged": [], "held": []})

    @property
    def exit_code(self) -> int:
        return 0 if self.outcome in ("merged", "nothing to merge") else 1

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("requested", "to_merge", "conflicts", "matrix", "bisection", "mergeable", "recovered"):
            out[key] = list(out[key])
        out["culprit"] = list(self.culprit) if self.culprit is not None else None
        out["exit_code"] = self.exit_code
        return out


def render_markdown(report: MergeReport) -> str:
    lines = [f"# Sandbox merge {report.run_id}: {report.outcome}", "", report.message, ""]
    lines += [f"- requested: {', '.join(report.requested) or '-'}; merged: {', '.join(report.to_merge) or '-'}"
              if report.merged else f"- requested: {', '.join(report.requested) or '-'}",
              f"- D before: `{report.integration_head_before[:12]}`; D after: `{report.integration_head_after[:12]}`"
              + (" (unchanged)" if report.integration_head_before == report.integration_head_after else ""),
              f"- change log: {report.cltree['reason']}"]
    if report.recovered:
        lines += [f"- {r}" for r in report.recovered]
    if report.conflicts:
        lines += ["", "## Conflicts", "", "| sandboxes | path | kind |", "|---|---|---|"]
        lines += [f"| {' x '.join(c['sandboxes'])} | `{c['path']}` | {c['kind']} |" for c in report.conflicts]
    if report.validation:
        lines += ["", "## Validation of the integration candidate", "",
                  "| project | status | passed | failed | errors | note |", "|---|---|---|---|---|---|"]
        for name, v in report.validation.items():
            note = (v.get("summary_line") or v.get("reason") or "").replace("|", "/")
            lines.append(f"| {name} | {v['status']} | {v['passed']} | {v['failed']} | {v['errors']} | {note} |")
    if report.drops["merged"] or report.drops["held"]:
        lines += ["", "## Drops", "", "| drop | sandbox | project | result | reason |", "|---|---|---|---|---|"]
        lines += [f"| {d['drop_id']} | {d['sandbox']} | {d['project']} | merged | |" for d in report.drops["merged"]]
        lines += [f"| {d['drop_id']} | {d['sandbox']} | {d['project']} | held | {d['reason'].replace('|', '/')} |"
                  for d in report.drops["held"]]
    if report.culprit is not None:
        lines += ["", "## Held (culprits)", "", f"**{', '.join(report.culprit) or 'none'}**: {report.culprit_reason}"]
    if report.bisection:
        lines += ["", "## Bisection", "", "| probe (on top of D) | result |", "|---|---|"]
        lines += [f"| {' + '.join(p.get('drops') or p['sandboxes']) or 'D alone'}"
                  + (f" ({p['project']})" if p.get("project") else "")
                  + f" | {'fails' if p['failed'] else 'passes'} |" for p in report.bisection]
    lines += ["", "## Sandboxes", "", "| sandbox | status | message |", "|---|---|---|"]
    lines += [f"| {name} | {v['status']} | {v['message']} |" for name, v in report.per_sandbox.items()]
    if report.suggestion:
        lines += ["", f"Next: `{report.suggestion}`"]
    return "\n".join(lines) + "\n"


def write_report(reports: Path, report: MergeReport) -> MergeReport:
    """``reports/merge-<run id>.json`` (atomically); returns the report with its path set."""
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / f"merge-{report.run_id}.json"
    report = replace(report, report_path=str(path))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report.as_dict(), indent=2))
    os.replace(tmp, path)
    return report
