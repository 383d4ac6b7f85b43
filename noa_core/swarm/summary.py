"""The master's side of a swarm run: which swarms a project needs, how their reports are
aggregated (one code path for embedded and distributed runs), and how the result reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from noa_core.errors import BadInput
from noa_core.manifest import MANIFEST_FILENAME, load_manifest
from noa_core.swarm.interface import CheckResult, SwarmReport, overall_status
from noa_core.swarm.shard_counts import format_counts
from noa_core.validation.counts import TestCounts

__all__ = ["LANGUAGES", "aggregate_reports", "crashed_report", "detect_languages", "render_markdown",
           "summary_rows", "validate_languages"]

LANGUAGES = ("python", "rust", "go", "javascript")
#: the Prefect work pool of each language swarm (its workers come from `noa swarm up`)
POOLS: dict[str, str] = {"python": "python-swarm", "rust": "rust-swarm", "go": "go-swarm",
                         "javascript": "javascript-swarm"}


def validate_languages(languages: Sequence[str] | None) -> list[str] | None:
    if languages is None:
        return None
    out: list[str] = []
    for lang in languages:
        name = str(lang).strip().lower()
        if name not in LANGUAGES:
            raise BadInput(f"unknown swarm language {lang!r}: expected one of {', '.join(LANGUAGES)}")
        if name not in out:
            out.append(name)
    return out


def detect_languages(tree: Path) -> list[str]:
    """The swarms a project needs: ``swarm.languages`` of its noa.yaml, else what is found
    (pyproject/setup.py or Python files; Cargo.toml; go.mod; package.json with a test script)."""
    from noa_core.swarm.go import GoToolchain
    from noa_core.swarm.javascript import test_script
    from noa_core.swarm.python_env import has_python
    from noa_core.swarm.rust import RustToolchain

    tree = Path(tree)
    if not tree.is_dir():
        raise BadInput(f"{tree} is not a directory")
    path = tree / MANIFEST_FILENAME
    if path.is_file():
        wanted: list[str] = [lang for lang in load_manifest(path).swarm.languages if lang in LANGUAGES]
        if wanted:
            return wanted
    found = []
    if has_python(tree):
        found.append("python")
    if RustToolchain().detect(tree):
        found.append("rust")
    if GoToolchain().detect(tree):
        found.append("go")
    if test_script(tree) is not None:
        found.append("javascript")
    return found


def crashed_report(language: str, reason: str, **extra: Any) -> SwarmReport:
    """A swarm whose run did not finish: failed, never passed."""
    result = CheckResult(toolchain=language, check="swarm", status="failed", reason=reason)
    return SwarmReport(language=language, status="failed", results=(result,), reason=reason, extra=extra)


def aggregate_reports(reports: Sequence[SwarmReport], *, project: str, project_dir: str, content: str,
                      mode: str, knowledge: Mapping[str, Any], seconds: float, run_id: str = "") -> dict[str, Any]:
    """One summary of every language swarm: status, counts (tests apart from subtests), checks."""
    total: TestCounts | None = None
    for rep in reports:
        c = rep.counts
        if c is not None:
            total = c if total is None else total + c
    results = [r for rep in reports for r in rep.results]
    return {
        "project": project, "project_dir": project_dir, "content_hash": content, "mode": mode, "run_id": run_id,
        "status": overall_status([rep.status for rep in reports]),
        "languages": [rep.language for rep in reports],
        "counts": total.as_dict() if total else None,
        "counts_line": format_counts(total) if total else "",
        "checks": len(results), "cached_checks": sum(1 for r in results if r.cached),
        "swarms": {rep.language: rep.as_dict() for rep in reports},
        "hive": {"before": dict(knowledge)}, "seconds": round(seconds, 3),
    }


def summary_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for lang, rep in summary["swarms"].items():
        for r in rep["results"]:
            c = r.get("counts") or {}
            rows.append({"swarm": lang, "check": r["check"], "status": r["status"],
                         "passed": c.get("passed", ""), "failed": c.get("failed", ""), "errors": c.get("errors", ""),
                         "skipped": c.get("skipped", ""), "subtests passed": c.get("subtests_passed", ""),
                         "findings": r.get("findings", 0), "seconds": r.get("seconds", 0.0),
                         "cached": r.get("cached", False), "reason": (r.get("reason") or "")[:200],
                         "where": (rep.get("extra") or {}).get("worker") or (rep.get("extra") or {}).get("mode", "")})
    return rows


def render_markdown(summary: Mapping[str, Any]) -> str:
    lines = [f"# Swarm: {summary['project']} - {summary['status']}", "",
             f"- mode: **{summary['mode']}**, {len(summary['languages'])} swarm(s): "
             f"{', '.join(summary['languages']) or 'none'}",
             f"- tests: {summary.get('counts_line') or 'none'}",
             f"- checks: {summary['checks']} ({summary['cached_checks']} reused from the hive)",
             f"- content hash: `{summary['content_hash'][:16]}`, {summary['seconds']:.1f} s", ""]
    before = summary.get("hive", {}).get("before", {})
    if before:
        lines.append(f"Hive before the run: {before.get('durations_known', 0)} file durations, "
                     f"{before.get('flaky_known', 0)} flaky tests, {before.get('results_for_content', 0)} results "
                     "for this content.")
        lines.append("")
    for lang, rep in summary["swarms"].items():
        extra = rep.get("extra") or {}
        where = ", ".join(f"{k} {v}" for k, v in extra.items() if k in ("mode", "work_pool", "worker") and v)
        lines += [f"## {lang}: {rep['status']}" + (f" ({where})" if where else ""), "",
                  "| check | status | result | seconds | reused |", "|---|---|---|---|---|"]
        for r in rep["results"]:
            c = r.get("counts") or {}
            what = c.get("summary_line") or (f"{r.get('findings')} findings" if r.get("findings") else "")
            if r.get("reason"):
                what = f"{what} - {r['reason']}" if what else r["reason"]
            what = what.replace("|", "\\|")[:300]
            lines.append(f"| {r['check']} | {r['status']} | {what} | {r.get('seconds', 0):.2f} | "
                         f"{'yes' if r.get('cached') else 'no'} |")
            plan = (r.get("data") or {}).get("plan")
            if plan and plan.get("shards") and len(plan["shards"]) > 1:
                lines.append(f"| | | {len(plan['shards'])} shards by {plan['basis']}: "
                             + ", ".join(f"#{s['index']} {len(s['files'])} files ~{s['weight']:.2f}"
                                         for s in plan["shards"]) + " | | |")
        lines.append("")
    return "\n".join(lines)
