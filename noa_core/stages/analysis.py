"""Stage 1's input: what the analyzers found in a project, from its code-drop report or analysed afresh."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from noa_core.analysis.confidence import score_confidence
from noa_core.analysis.registry import all_analyzers, run_analyzer


def read_drop_analysis(report: Mapping[str, Any]) -> dict[str, Any]:
    """The analysis part of a code-drop report: per analyzer its status and findings."""
    analyzers: dict[str, dict[str, Any]] = {
        name: {"status": a.get("status"), "reason": a.get("reason", ""), "findings": []}
        for name, a in (report.get("analyzers") or {}).items()}
    for f in report.get("findings") or []:
        analyzers.setdefault(f.get("analyzer", "?"), {"status": "ok", "reason": "", "findings": []})
        analyzers[f.get("analyzer", "?")]["findings"].append(f)
    return {"source": f"code drop {report.get('drop_id')}", "drop_id": report.get("drop_id"),
            "confidence": report.get("confidence"), "analyzers": analyzers,
            "dependencies": report.get("dependencies") or {}, "primary_language": report.get("primary_language")}


def analyse_tree(tree: Path) -> dict[str, Any]:
    """Every analyzer in parallel and the confidence score, for a tree no code drop analysed (the same
    shape as :func:`read_drop_analysis`)."""
    analyzers = all_analyzers()
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="noa-analyzer") as pool:
        results = dict(zip([a.name for a in analyzers], pool.map(lambda a: run_analyzer(a, tree), analyzers)))
    confidence = score_confidence(results).as_dict()
    deps = results["dependencies"].data if "dependencies" in results else {}
    return {"source": "analysed by the unified workflow", "drop_id": None, "confidence": confidence["calibrated"],
            "confidence_detail": confidence,
            "analyzers": {n: {"status": r.status, "reason": r.reason, "findings": [f.as_dict() for f in r.findings]}
                          for n, r in results.items()},
            "dependencies": {k: v for k, v in deps.items() if isinstance(v, list)},
            "primary_language": (results["languages"].data.get("primary") if "languages" in results else None)}


__all__ = ["analyse_tree", "read_drop_analysis"]
