"""The trigger stage: the source of one pipeline run, fetched and its commit checked."""

from __future__ import annotations

import shutil
from typing import Any

from noa_core.config import NoaSettings
from noa_core.errors import BadInput
from noa_core.intake.fetch import fetch_source
from noa_core.intake.source import parse_source


def fetch_for_run(source: str, commit: str | None, settings: NoaSettings, run_id: str) -> dict[str, Any]:
    """Fetch ``source`` through the ingestion guards into ``drops/cicd-<run>`` (a plain copy, no
    ``.git``) and check a requested ``commit`` against the fetched HEAD (BadInput when it differs)."""
    spec = parse_source(source)
    dest = settings.layout().ensure().drops / f"cicd-{run_id[:12]}"
    if dest.exists() and any(dest.iterdir()):  # a task retry after a fetch that landed
        shutil.rmtree(dest)
    fetched = fetch_source(spec, dest, settings.ingest)
    head = fetched.head_commit
    if commit and head and not head.startswith(commit.lower()):
        raise BadInput(f"commit {commit[:12]} was requested but {source} is at {head[:12]}")
    return {"source": str(spec), "kind": spec.kind, "tree": str(fetched.tree), "head_commit": head,
            "commit": head or commit, "commit_verified": bool(head and commit) or (head is not None and not commit),
            "files": fetched.files_total, "bytes": fetched.bytes_total}


__all__ = ["fetch_for_run"]
