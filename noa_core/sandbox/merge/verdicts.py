"""What each sandbox is told after a merge: ``reports/sandboxes/<X>.json`` (shown by ``noa sandbox list``)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Verdict:
    status: str        # merged | manual resolution needed | failed | not merged | nothing to merge
    message: str
    files: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "message": self.message}
        if self.files:
            out["files"] = list(self.files)
        return out


def verdict_path(reports: Path, sandbox: str) -> Path:
    return reports / "sandboxes" / f"{sandbox}.json"


def write_verdicts(reports: Path, verdicts: Mapping[str, Verdict], *, run_id: str, report_path: str,
                   when: str) -> None:
    """Tell each sandbox the outcome: ``reports/sandboxes/<X>.json`` (shown by ``noa sandbox list``)."""
    for name, verdict in verdicts.items():
        path = verdict_path(reports, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        tmp.write_text(json.dumps({**verdict.as_dict(), "run_id": run_id, "report": report_path, "at": when},
                                  indent=2))
        os.replace(tmp, path)


def read_verdict(reports: Path, sandbox: str) -> dict[str, Any] | None:
    try:
        return json.loads(verdict_path(reports, sandbox).read_text())
    except (OSError, ValueError):
        return None
