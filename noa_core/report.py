"""The code-drop report: the pydantic model printed by ``noa drop --json`` and its markdown."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class TestsSummary(BaseModel):
    command: list[str] | None = None
    status: Literal["passed", "failed", "error", "no tests", "timeout", "skipped", "unknown"] = "skipped"
    reason: str = ""
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    subtests_passed: int = 0
    subtests_failed: int = 0
    summary_line: str = ""
    seconds: float = 0.0
    isolation: str | None = None
    log: str | None = None
    environment: dict[str, Any] | None = Field(
        None, description="the project's own environment: hash, packages, sources, seconds (Python suites)")


class AnalyzerStatus(BaseModel):
    status: Literal["ok", "unknown", "skipped"]
    reason: str = ""
    seconds: float = 0.0
    cached: bool = False


class Contribution(BaseModel):
    signal: str
    value: float
    weight: float
    contribution: float
    why: str


class ConfidenceReport(BaseModel):
    raw: float
    calibrated: float
    contributions: list[Contribution]
    calibration: list[dict[str, Any]] = Field(default_factory=list)


class DropReport(BaseModel):
    drop_id: str
    source: str
    source_kind: str
    project: str
    is_update: bool = False
    languages: dict[str, int] = Field(default_factory=dict, description="bytes per language")
    primary_language: str | None = None
    build_system: str | None = None
    dependencies: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    tests: TestsSummary = TestsSummary()
    licence: str | None = None
    findings: list[dict[str, Any]] = Field(default_factory=list)
    confidence: float
    confidence_detail: ConfidenceReport
    sandbox: Literal["A", "B", "C"]
    sandbox_reason: str
    analyzers: dict[str, AnalyzerStatus]
    ai: dict[str, Any] = Field(default_factory=dict)
    manifest: dict[str, Any] = Field(default_factory=dict)
    manifest_origin: Literal["source", "generated"] = "generated"
    commit: str
    branch: str
    files: int = 0
    bytes: int = 0
    tree_hash: str = ""
    timings: dict[str, float] = Field(default_factory=dict)
    report_path: str | None = None
    flow_run_id: str | None = None


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |")
    return "\n".join(out)


def findings_table(report: DropReport, limit: int = 30) -> str:
    order = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
    rows = sorted(report.findings, key=lambda f: (order.get(f.get("severity", "info"), 9), f.get("path") or ""))
    shown = [[f["severity"], f["analyzer"], f["rule"], f"{f.get('path') or ''}:{f.get('line') or ''}", f["message"][:100]]
             for f in rows[:limit]]
    text = _table(["severity", "analyzer", "rule", "where", "message"], shown) if shown else "_none_"
    if len(rows) > limit:
        text += f"\n\n{len(rows) - limit} more in the JSON report."
    return text


def render_markdown(report: DropReport) -> str:
    t = report.tests
    total = sum(report.languages.values()) or 1
    langs = _table(["language", "bytes", "share"],
                   [[k, v, f"{100 * v / total:.1f}%"] for k, v in sorted(report.languages.items(), key=lambda kv: -kv[1])[:10]])
    analyzers = _table(["analyzer", "status", "reason", "seconds", "cached"],
                       [[k, a.status, a.reason or "", f"{a.seconds:.2f}", "yes" if a.cached else ""]
                        for k, a in report.analyzers.items()])
    contrib = _table(["signal", "value", "weight", "contribution", "why"],
                     [[c.signal, f"{c.value:.2f}", f"{c.weight:.2f}", f"{c.contribution:.3f}", c.why]
                      for c in report.confidence_detail.contributions])
    calib = (_table(["bin", "drops", "passed", "pass rate"],
                    [[c.get("bin"), c.get("n"), c.get("passed"), c.get("rate")] for c in report.confidence_detail.calibration])
             if report.confidence_detail.calibration else "_no validation history yet: calibrated = raw_")
    deps = ", ".join(f"{eco}: {len(items)}" for eco, items in report.dependencies.items() if items) or "none declared"
    ai = report.ai
    ai_text = (f"**{ai.get('opinion') or 'no opinion'}** - {ai.get('summary', '')}\n\n"
               f"<details><summary>prompt and raw answer</summary>\n\n```\n{ai.get('prompt', '')}\n```\n\n"
               f"```\n{ai.get('raw_answer', '')}\n```\n</details>") if ai.get("status") == "ok" or ai.get("raw_answer") \
        else f"{ai.get('status') or 'skipped'}: {ai.get('reason', 'not run')}"
    env = t.environment or {}
    env_text = ("none (not a Python suite)" if not env else
                f"`{str(env.get('hash', ''))[:12]}` - {env.get('packages', 0)} packages"
                f"{' (reused)' if env.get('reused') else ''}, from {', '.join(env.get('sources') or ['nothing declared'])}"
                f", {sum((env.get('seconds') or {}).get(k, 0.0) for k in ('resolve', 'fetch', 'install', 'project')):.1f} s"
                if env.get("status") == "ready" else f"{env.get('status')}: {env.get('reason', '')}")
    return f"""# Code drop `{report.drop_id}`

| | |
|---|---|
| source | `{report.source}` ({report.source_kind}) |
| project | **{report.project}** {'(update of a known project)' if report.is_update else '(new project)'} |
| sandbox | **{report.sandbox}** - {report.sandbox_reason} |
| commit | `{report.commit[:12]}` on `{report.branch}` |
| confidence | **{report.confidence:.2f}** (raw {report.confidence_detail.raw:.2f}) |
| tests | {t.status}: {t.passed} passed, {t.failed} failed, {t.errors} errors, {t.skipped} skipped{f', {t.subtests_passed} subtests passed' if t.subtests_passed else ''} {('- ' + t.reason) if t.reason else ''} |
| test environment | {env_text} |
| licence | {report.licence or 'unknown'} |
| build | {report.build_system or 'not detected'} |
| dependencies | {deps} |
| files | {report.files} files, {report.bytes:,} bytes |

## Languages
{langs}

## Analyzers
{analyzers}

## Findings
{findings_table(report)}

## Confidence
{contrib}

### Calibration from past validations
{calib}

## AI opinion
{ai_text}
"""
