"""``noa webhook serve`` end to end (slow): a signed GitHub push for a repository mapped to a
local git repository becomes a ``cicd_pipeline`` run that the served deployment's Runner
executes for real (validate, build, swarm tests, change log) on the session's Prefect server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_cicd_pipeline import GOOD, make_repo
from webhook_helpers import SECRET, delivery, push_payload

REPO_DIR = Path(__file__).resolve().parents[1]
# `noa webhook serve` through the command module alone (the lead registers it in noa_core/cli/main.py)
SCRIPT = ("import typer; from noa_core.cli.webhook_cmd import register; app = typer.Typer(); "
          "app.command('noop', hidden=True)(lambda: None); register(app); app()")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _flow_run(run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_flow_run(run_id)

    return asyncio.run(read())


@pytest.mark.slow
def test_webhook_serve_runs_the_pipeline_for_a_signed_push(prefect_api_url: str, tmp_path: Path) -> None:
    from noa_core.cltree import change_entries
    from noa_core.config import NoaSettings

    repo, sha = make_repo(tmp_path, GOOD)
    home = tmp_path / "home"
    port = _free_port()
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url, "NOA_GITHUB_WEBHOOK_SECRET": SECRET,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(REPO_DIR)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, "webhook", "serve", "--port", str(port), "--home",
                             str(home), "--source", f"octo-org/tiny-calc={repo}"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line, proc.stderr.read() if proc.stderr else ""
        info = json.loads(line)
        assert info["deployment"].startswith("cicd_pipeline/cicd-")
        url = f"http://127.0.0.1:{port}/webhooks/github"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url.replace("/webhooks/github", "/"), timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, "the webhook server did not start"
                time.sleep(0.2)
        body, headers = delivery("push", push_payload(sha=sha, repo="octo-org/tiny-calc"))
        assert httpx.post(url, content=body, headers={**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64},
                          timeout=30).status_code == 401
        started = httpx.post(url, content=body, headers=headers, timeout=30)
        assert started.status_code == 202, started.text
        run_id = started.json()["flow_run_id"]
        assert httpx.post(url, content=body, headers=headers, timeout=30).json()["flow_run_id"] == run_id
        deadline = time.monotonic() + 240
        while True:
            flow_run = _flow_run(run_id)
            if flow_run.state is not None and flow_run.state.is_final():
                break
            assert time.monotonic() < deadline, f"run still {flow_run.state}"
            time.sleep(1)
        assert flow_run.state.is_completed(), flow_run.state
        assert flow_run.parameters["commit"] == sha and flow_run.parameters["source"] == str(repo)
        (entry,) = [e for e in change_entries(NoaSettings(home=home), kind="pipeline")]
        assert entry.payload["commit"] == sha and entry.payload["trigger"]["event"] == "push"
        assert entry.payload["stages"]["validate"] == "passed" and entry.payload["stages"]["test"] == "passed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
