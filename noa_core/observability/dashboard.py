"""``noa dashboard``: one self-contained HTML page (inline SVG, no scripts, no CDN) from the reports.

Read from ``NOA_HOME/reports/**/*.json``:

* drop reports (``noa drop``): ``timings`` (seconds per step) and ``tests.status``;
* any report with ``stages`` (a list of ``{"name", "status", "duration_s"}``: pipeline runs);
* any report with an ``outcome`` of ``promoted`` / ``rolled_back`` / ``failed`` / ``skipped``
  and an ``env`` (deploys), and ``rollback`` reports (``kind: rollback`` or a rollback outcome).
"""

from __future__ import annotations

import html
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import mean, median
from typing import Any

DEPLOY_OUTCOMES = ("promoted", "rolled_back", "failed", "skipped")
COLORS = {"passed": "#2e7d32", "failed": "#c62828", "skipped": "#9e9e9e", "promoted": "#2e7d32",
          "rolled_back": "#ef6c00", "bar": "#1565c0"}


@dataclass
class DashboardData:
    reports: int = 0
    stage_seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    stage_status: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    tests: Counter[str] = field(default_factory=Counter)
    deploys: Counter[tuple[str, str]] = field(default_factory=Counter)
    rollbacks: int = 0
    rollback_days: Counter[str] = field(default_factory=Counter)
    unreadable: list[str] = field(default_factory=list)


def _day(report: dict[str, Any], path: Path) -> str:
    for key in ("finished", "created_at", "created", "started"):
        value = report.get(key)
        if isinstance(value, str) and len(value) >= 10:
            return value[:10]
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d")


def _absorb(data: DashboardData, report: dict[str, Any], path: Path) -> None:
    timings = report.get("timings")
    if isinstance(timings, dict):
        for step, secs in timings.items():
            if isinstance(secs, (int, float)):
                data.stage_seconds[f"drop:{step}"].append(float(secs))
    tests = report.get("tests")
    if isinstance(tests, dict) and isinstance(tests.get("status"), str):
        data.tests[tests["status"]] += 1
    stages = report.get("stages")
    if isinstance(stages, dict):
        stages = [{"name": k, **v} for k, v in stages.items() if isinstance(v, dict)]
    if isinstance(stages, list):
        for st in stages:
            if not isinstance(st, dict) or not isinstance(st.get("name"), str):
                continue
            if isinstance(st.get("duration_s"), (int, float)):
                data.stage_seconds[st["name"]].append(float(st["duration_s"]))
            if isinstance(st.get("status"), str):
                data.stage_status[st["name"]][st["status"]] += 1
    outcome = report.get("outcome")
    deploy = report.get("deploy") if isinstance(report.get("deploy"), dict) else None
    if deploy is not None and outcome not in DEPLOY_OUTCOMES:
        outcome, report = deploy.get("outcome"), deploy
    if outcome in DEPLOY_OUTCOMES and ("env" in report or "strategy" in report):
        data.deploys[(str(report.get("env", "?")), str(outcome))] += 1
    if outcome == "rolled_back" or report.get("kind") == "rollback":
        data.rollbacks += 1
        data.rollback_days[_day(report, path)] += 1


def collect(reports_dir: Path) -> DashboardData:
    data = DashboardData()
    if not Path(reports_dir).is_dir():
        return data
    for path in sorted(Path(reports_dir).rglob("*.json")):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data.unreadable.append(path.name)
            continue
        if isinstance(report, dict):
            data.reports += 1
            _absorb(data, report, path)
    return data


# ---------------------------------------------------------------------------- SVG
def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def hbar_chart(title: str, rows: list[tuple[str, float, str]], *, unit: str = "", width: int = 640,
               max_value: float | None = None) -> str:
    """Horizontal bars: (label, value, colour)."""
    if not rows:
        return f'<figure><figcaption>{_esc(title)}</figcaption><p class="empty">no data yet</p></figure>'
    bar_h, gap, label_w = 22, 6, 190
    height = len(rows) * (bar_h + gap) + 10
    top = max_value or max(v for _, v, _ in rows) or 1.0
    plot_w = width - label_w - 90
    parts = [f'<svg role="img" aria-label="{_esc(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, value, color) in enumerate(rows):
        y = 5 + i * (bar_h + gap)
        w = max(1.0, plot_w * value / top)
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" font-size="12">{_esc(label[:28])}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}" rx="2">'
                     f'<title>{_esc(label)}: {value:.3g}{_esc(unit)}</title></rect>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="12">{value:.3g}{_esc(unit)}</text>')
    parts.append("</svg>")
    return f'<figure><figcaption>{_esc(title)}</figcaption>{"".join(parts)}</figure>'


def stacked_chart(title: str, groups: dict[str, dict[str, int]], order: tuple[str, ...], *, width: int = 640) -> str:
    """One stacked horizontal bar per group (counts by category), with a legend."""
    if not groups:
        return f'<figure><figcaption>{_esc(title)}</figcaption><p class="empty">no data yet</p></figure>'
    bar_h, gap, label_w = 22, 6, 190
    height = len(groups) * (bar_h + gap) + 34
    top = max(sum(c.values()) for c in groups.values()) or 1
    plot_w = width - label_w - 60
    parts = [f'<svg role="img" aria-label="{_esc(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    for i, (group, counts) in enumerate(groups.items()):
        y = 5 + i * (bar_h + gap)
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" font-size="12">{_esc(group[:28])}</text>')
        x = float(label_w)
        for cat in order:
            n = counts.get(cat, 0)
            if not n:
                continue
            w = plot_w * n / top
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                         f'fill="{COLORS.get(cat, "#607d8b")}"><title>{_esc(group)} {_esc(cat)}: {n}</title></rect>')
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 15}" font-size="12">{sum(counts.values())}</text>')
    ly = height - 14
    for j, cat in enumerate(order):
        lx = label_w + j * 110
        parts.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{COLORS.get(cat, "#607d8b")}"/>'
                     f'<text x="{lx + 16}" y="{ly}" font-size="12">{_esc(cat)}</text>')
    parts.append("</svg>")
    return f'<figure><figcaption>{_esc(title)}</figcaption>{"".join(parts)}</figure>'


def render_html(data: DashboardData, *, title: str = "NOA ARK OS dashboard") -> str:
    timing_rows = [(name, median(v), COLORS["bar"]) for name, v in sorted(data.stage_seconds.items()) if v]
    pass_rows = []
    for name, counts in sorted(data.stage_status.items()):
        ran = counts.get("passed", 0) + counts.get("failed", 0)
        if ran:
            pass_rows.append((name, 100.0 * counts.get("passed", 0) / ran, COLORS["passed"]))
    test_ran = data.tests.get("passed", 0) + data.tests.get("failed", 0) + data.tests.get("error", 0)
    if test_ran:
        pass_rows.append(("drop tests", 100.0 * data.tests.get("passed", 0) / test_ran, COLORS["passed"]))
    stage_groups = {name: dict(c) for name, c in sorted(data.stage_status.items())}
    deploy_groups: dict[str, dict[str, int]] = defaultdict(dict)
    for (env, outcome), n in sorted(data.deploys.items()):
        deploy_groups[env][outcome] = n
    rollback_rows = [(day, float(n), COLORS["rolled_back"]) for day, n in sorted(data.rollback_days.items())]
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    mean_note = ""
    if timing_rows:
        all_times = [t for v in data.stage_seconds.values() for t in v]
        mean_note = f" (median per stage; mean of all {mean(all_times):.2f} s)"
    sections = [
        hbar_chart(f"Stage timings, seconds{mean_note}", timing_rows, unit=" s"),
        hbar_chart("Pass rates, %", pass_rows, unit=" %", max_value=100.0),
        stacked_chart("Stage outcomes", stage_groups, ("passed", "failed", "skipped")),
        stacked_chart("Deploys by environment", dict(deploy_groups), DEPLOY_OUTCOMES),
        hbar_chart(f"Rollbacks per day (total {data.rollbacks})", rollback_rows),
    ]
    stats = (f"<p>{data.reports} reports read; {sum(data.deploys.values())} deploys; {data.rollbacks} rollbacks"
             + (f"; unreadable: {_esc(', '.join(data.unreadable[:10]))}" if data.unreadable else "") + "</p>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#212121;background:#fafafa}}
figure{{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:12px;margin:0 0 16px 0;display:inline-block}}
figcaption{{font-weight:600;margin-bottom:8px}} .empty{{color:#9e9e9e}} main{{display:grid;gap:8px}}</style>
</head><body><h1>{_esc(title)}</h1><p>generated {generated}</p>{stats}<main>
{"".join(sections)}
</main></body></html>
"""
