"""The Prefect UI served by NOA's embedded server shows a pipeline's ``unified_workflow``
run and its seven stage subflows (Debian chromium, headless, driven by Playwright)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HELLO = Path(__file__).resolve().parents[1] / "examples" / "hello-service"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
NOA = ("from noa_core.cli.main import app\nfrom noa_core.cli.pipeline_cmd import register\n"
       "if not any(c.name == 'pipeline' for c in app.registered_commands): register(app)\napp()\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_prefect_ui_shows_unified_workflow_and_its_stage_subflows(tmp_path: Path) -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium not installed")
    from playwright.sync_api import sync_playwright

    from noa_core.orchestration.prefect_server import EmbeddedPrefectServer

    home = tmp_path / "home"
    port = free_port()
    server = EmbeddedPrefectServer(home / "prefect", port)
    info = server.ensure()  # sets PREFECT_UI_API_URL for this port
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NOA_"))}
        env.update(NOA_HOME=str(home), NOA_PREFECT_PORT=str(port), PREFECT_LOGGING_LEVEL="WARNING")
        proc = subprocess.run([sys.executable, "-c", NOA, "pipeline", str(HELLO), "--json", "--no-ai", "--no-deploy"],
                              env=env, capture_output=True, text=True, check=False, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        doc = json.loads(proc.stdout)
        assert doc["ui_url"].startswith(info.ui_url.rstrip("/"))  # the CLI used NOA's server for this home
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                page.goto(f"{info.ui_url.rstrip('/')}/runs/flow-run/{doc['unified_run_id']}")
                page.get_by_text("unified-hello-service").first.wait_for(timeout=30_000)
                page.get_by_text("unified_workflow", exact=True).first.wait_for(timeout=30_000)
                page.get_by_text("Subflow Runs", exact=True).first.click()
                for stage in ("analysis", "testing", "performance", "security", "build", "staging", "production"):
                    page.get_by_text(f"{stage}-hello-service", exact=True).first.wait_for(timeout=30_000)
                page.screenshot(path=str(tmp_path / "unified_workflow_subflows.png"), full_page=True)
                body = page.inner_text("body")
            finally:
                browser.close()
    finally:
        server.stop()
    assert "pipeline-hello-service" in body  # the parent run
    assert (tmp_path / "unified_workflow_subflows.png").stat().st_size > 10_000
