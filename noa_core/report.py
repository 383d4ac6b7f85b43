"""The code-drop report as markdown; the model itself is :class:`noa_core.results.drop.DropReport`."""

from __future__ import annotations

from typing import Any

from noa_core.results.drop import AnalyzerStatus, ConfidenceReport, Contribution, DropReport, TestsSummary

__all__ = ["AnalyzerStatus", "ConfidenceReport", "Contribution", "DropReport", "TestsSummary", "findings_table",
           "render_markdown"]


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
