"""`noa dashboard` in a real browser: headless Debian Chromium (via Playwright, no browser download)
opens the self-contained page offline, renders every chart, and a screenshot is taken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from noa_core.observability.dashboard import collect, render_html

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_dashboard_renders_in_headless_chromium(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium")
    playwright = pytest.importorskip("playwright.sync_api")
    reports = tmp_path / "reports"
    reports.mkdir()
    for i in range(6):
        (reports / f"p{i}.json").write_text(json.dumps({
            "stages": [{"name": s, "status": "passed" if (i + j) % 4 else "failed", "duration_s": 1.5 * (j + 1) + i}
                       for j, s in enumerate(("analysis", "testing", "performance", "security", "build", "staging",
                                              "production"))],
            "deploy": {"env": "production" if i % 2 else "staging",
                       "outcome": "rolled_back" if i == 3 else "promoted", "finished": f"2026-11-2{i}T10:00:00Z"}}))
    page_file = tmp_path / "dashboard.html"
    page_file.write_text(render_html(collect(reports)), encoding="utf-8")
    shot = tmp_path / "dashboard.png"
    requests: list[str] = []
    with playwright.sync_playwright() as p:
        # Playwright gives the browser a new, empty profile directory of its own (DESIGN.md's --user-data-dir)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri())
            assert page.title() == "NOA ARK OS dashboard"
            assert page.locator("svg").count() == 5
            assert page.locator("figure:has-text('Deploys by environment') rect").count() >= 3
            box = page.locator("svg").first.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 100
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert requests == [page_file.as_uri()]  # self-contained: nothing else was fetched
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
