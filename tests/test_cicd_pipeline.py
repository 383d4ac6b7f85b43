"""``cicd_pipeline`` on real git repositories with the session's Prefect server, and ``noa cicd run``.

The projects have no ``run.command``, so the deploy stage is "skipped" by contract and the
monitor has nothing to watch; the monitor's health watch and rollback call are exercised
against a real local HTTP server that starts failing.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

MANIFEST = """name: tiny-calc
language: python
test:
  command: [python, -m, pytest, -q]
  pythonpath: [src]
"""
CALC = "def add(a, b):\n    return a + b\n"
TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}


def git(repo: Path, *args: str) -> str:
    import os

    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def make_repo(root: Path, files: dict[str, str]) -> tuple[Path, str]:
    repo = root / "tiny-calc"
    repo.mkdir(parents=True)
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "init", "-q", "-b", "main", "--template=")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo, git(repo, "rev-parse", "HEAD")


GOOD = {"noa.yaml": MANIFEST, "src/calc.py": CALC, "tests/test_calc.py": TEST}


def run(**params: Any) -> dict[str, Any]:
    from flows.cicd_pipeline import run_cicd_pipeline

    return run_cicd_pipeline(**params)


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in doc["stages"]}


SERVICE_MANIFEST = """name: flaky-svc
language: python
test:
  command: [python, -m, pytest, -q]
run:
  command: [python, app.py]
  port_env: PORT
  health:
    path: /health
    interval_s: 0.2
"""
SERVICE_APP = """import os, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEALTHY_FOR = {healthy_for}  # seconds after start; None: always
STARTED = time.monotonic()


class H(BaseHTTPRequestHandler):
    def do_GET(self):
        ok = HEALTHY_FOR is None or time.monotonic() - STARTED < HEALTHY_FOR
        self.send_response(200 if ok else 500)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok" if ok else b"no")

    def log_message(self, *a):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""
SERVICE = {"noa.yaml": SERVICE_MANIFEST, "app.py": SERVICE_APP.format(healthy_for=None),
           "pyproject.toml": "[project]\nname = 'flaky-svc'\nversion = '1.0.0'\n\n[build-system]\n"
                             "requires = ['setuptools>=61']\nbuild-backend = 'setuptools.build_meta'\n\n"
                             "[tool.setuptools]\npy-modules = ['app']\n",
           "tests/test_app.py": "def test_truth():\n    assert True\n"}


@pytest.fixture
def service_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    yield home
    from noa_core.deploy.supervisor_client import (
        stop_supervisor,  # the deploy target's processes and Caddy
    )

    stop_supervisor(home)


@pytest.mark.slow  # two pipelines with build, swarm, a real deploy (local target + Caddy) and a monitor window
def test_pipeline_promotes_a_good_commit_and_rolls_back_one_that_turns_unhealthy(
        prefect_api_url: str, tmp_path: Path, service_home: Path) -> None:
    from noa_core.cltree import change_entries
    from noa_core.config import NoaSettings

    repo, good = make_repo(tmp_path, SERVICE)
    doc = run(source=str(repo), commit=good, ref="refs/heads/main", home=str(service_home), monitor_s=1.5,
              monitor_interval_s=0.25)
    stages = by_name(doc)
    assert [s["name"] for s in doc["stages"]] == ["trigger", "validate", "build", "test", "deploy", "monitor",
                                                  "record"]
    assert doc["status"] == "passed" and doc["outcome"] == "promoted", json.dumps(doc["stages"], indent=1)[:4000]
    assert stages["trigger"]["details"]["commit"] == good and stages["trigger"]["details"]["commit_verified"]
    assert stages["validate"]["details"]["lint"]["findings"] == 0
    assert stages["build"]["status"] == "passed" and all(a["blake3"] for a in doc["artifacts"])
    assert stages["monitor"]["status"] == "passed" and stages["monitor"]["details"]["failures"] == 0
    first_release = doc["release"]

    # the next commit passes the deploy's health check, then answers 500: the monitor rolls it back
    (repo / "app.py").write_text(SERVICE_APP.format(healthy_for=2.0))
    git(repo, "commit", "-q", "-am", "turns unhealthy")
    bad = git(repo, "rev-parse", "HEAD")
    doc = run(source=str(repo), commit=bad, home=str(service_home), monitor_s=30, monitor_interval_s=0.25,
              monitor_failures=3)
    stages = by_name(doc)
    assert stages["deploy"]["status"] == "passed", stages["deploy"]
    assert doc["status"] == "failed" and doc["failed_stage"] == "monitor" and doc["outcome"] == "rolled_back"
    mon = stages["monitor"]["details"]
    assert mon["failures"] == 3 and mon["last"] == "HTTP 500"
    assert mon["rollback"]["outcome"] in ("rolled_back", "promoted"), mon["rollback"]
    assert mon["rollback"].get("release") == first_release, mon["rollback"]
    entries = [e for e in change_entries(NoaSettings(home=service_home), kind="pipeline") if e.subject == "flaky-svc"]
    assert [(e.payload["commit"], e.payload["outcome"]) for e in entries] == [(good, "promoted"), (bad, "rolled_back")]
    assert entries[0].payload["artifacts"] and entries[0].payload["release"] == first_release


def test_a_syntax_error_fails_validate_and_skips_the_rest(prefect_api_url: str, tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path, {**GOOD, "src/broken.py": "def broken(:\n    pass\n"})
    doc = run(source=str(repo), home=str(tmp_path / "home"), monitor_s=0)
    stages = by_name(doc)
    assert doc["status"] == "failed" and doc["failed_stage"] == "validate" and doc["outcome"] == "failed"
    assert stages["validate"]["reason"].startswith("lint: ") and "blocking finding" in stages["validate"]["reason"]
    assert stages["validate"]["details"]["lint"]["first"][0]["file"] == "src/broken.py"
    for name in ("build", "test", "deploy", "monitor"):
        assert stages[name] == {**stages[name], "status": "skipped", "reason": "skipped: validate failed"}
    assert stages["record"]["status"] == "passed"
    assert doc["commit"] == sha


def test_bad_manifest_and_wrong_commit_stop_the_pipeline(prefect_api_url: str, tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path, {**GOOD, "noa.yaml": MANIFEST + "deploy:\n  canary_steps: [50, 25]\n"})
    doc = run(source=str(repo), home=str(tmp_path / "home"), monitor_s=0)
    assert doc["failed_stage"] == "validate" and "canary_steps" in by_name(doc)["validate"]["reason"]
    other = "0" * 7 + sha[7:]
    doc = run(source=str(repo), commit=other, home=str(tmp_path / "home"), monitor_s=0)
    trig = by_name(doc)["trigger"]
    assert doc["failed_stage"] == "trigger" and f"commit {other[:12]} was requested" in trig["reason"]
    assert by_name(doc)["validate"]["reason"] == "skipped: trigger failed"


# ------------------------------------------------------------------ the monitor, on a real HTTP server
class _Flaky(BaseHTTPRequestHandler):
    healthy = True

    def do_GET(self) -> None:
        self.send_response(200 if type(self).healthy else 500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def app_server() -> Iterator[tuple[str, type[_Flaky]]]:
    handler = type("Flaky", (_Flaky,), {"healthy": True})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _monitor(endpoint: str, home: Path, **kw: Any) -> dict[str, Any]:
    import asyncio

    from prefect import flow

    from flows.cicd_pipeline import _monitor as monitor

    @flow(name="cicd-monitor-probe")
    async def probe() -> dict[str, Any]:
        deploy_stage = {"details": {"result": {"app": "tiny-calc", "outcome": "promoted",
                                               "release": {"release_id": "r1", "url": f"http://{endpoint}"}}}}
        return await monitor(deploy_stage, {"name": "tiny-calc", "run": {"health": {"path": "/health"}}},
                             "staging", str(home), **kw)

    return asyncio.run(probe())


def test_monitor_watches_the_window_and_a_failing_release_triggers_rollback(
        prefect_api_url: str, app_server: tuple[str, type[_Flaky]], tmp_path: Path) -> None:
    endpoint, handler = app_server
    ok = _monitor(endpoint, tmp_path, window_s=0.6, interval_s=0.1, failures_allowed=3)
    assert ok["status"] == "passed" and ok["details"]["probes"] >= 3 and ok["details"]["failures"] == 0
    handler.healthy = False
    bad = _monitor(endpoint, tmp_path, window_s=30, interval_s=0.05, failures_allowed=3)
    assert bad["status"] == "failed" and bad["details"]["failures"] == 3  # stopped at the limit, not after 30 s
    assert "failed 3 health checks in a row (HTTP 500)" in bad["reason"]
    assert "rollback" in bad["details"]  # flows.deploy.rollback was called (or said why it could not be)


# ------------------------------------------------------------------ noa cicd run
def _cli() -> Any:
    import typer

    from noa_core.cli.cicd_cmd import register

    app = typer.Typer()
    app.command("noop", hidden=True)(lambda: None)
    register(app)
    return app


def test_cli_cicd_run_prints_stage_results_as_json(prefect_api_url: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    monkeypatch.setenv("PREFECT_API_URL", prefect_api_url)
    repo, sha = make_repo(tmp_path, {**GOOD, "src/broken.py": "x = (\n"})
    runner = CliRunner()
    result = runner.invoke(_cli(), ["cicd", "run", str(repo), "--commit", sha, "--json",
                                    "--home", str(tmp_path / "home"), "--monitor-s", "0"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["commit"] == sha and doc["failed_stage"] == "validate"
    assert [s["status"] for s in doc["stages"]][:3] == ["passed", "failed", "skipped"]
    for args, msg in ((["cicd", "run", str(tmp_path / "nope")], "does not exist"),
                      (["cicd", "run", str(repo), "--commit", "not-a-sha!"], "is not a commit id"),
                      (["cicd", "run", str(repo), "--env", "qa"], "staging or production")):
        bad = runner.invoke(_cli(), args)
        assert bad.exit_code == 2 and msg in bad.stderr and bad.stdout == ""


def test_result_goes_back_to_github_as_status_check_run_and_pr_comment(prefect_api_url: str, tmp_path: Path) -> None:
    """A local server stands in for api.github.com and records what the pipeline posts."""
    from pydantic import SecretStr

    from blocks.github import NoaGitHub
    from tests.integrations_helpers import Reply, recording_server

    repo, sha = make_repo(tmp_path, {**GOOD, "src/broken.py": "def broken(:\n    pass\n"})
    with recording_server(lambda call: Reply(201, {"id": 1, "html_url": "http://x/1"})) as gh:
        NoaGitHub(base_url=gh.url, owner="acme", repo="tiny-calc",
                  token=SecretStr("ghp_not_a_real_token")).save("cicd-test-github", overwrite=True)
        doc = run(source=str(repo), home=str(tmp_path / "home"), monitor_s=0, github_block="cicd-test-github",
                  trigger={"kind": "github", "event": "pull_request", "pr_number": 7})
    report = by_name(doc)["report"]
    assert report["status"] == "passed", report
    posted = {(c.method, c.path): c for c in gh.calls}
    status = posted[("POST", f"/repos/acme/tiny-calc/statuses/{sha}")]
    assert status.body["state"] == "failure" and len(status.body["description"]) <= 140
    check = posted[("POST", "/repos/acme/tiny-calc/check-runs")]
    assert check.body["head_sha"] == sha and check.body["conclusion"] == "failure"
    comment = posted[("POST", "/repos/acme/tiny-calc/issues/7/comments")]
    assert "validate" in comment.body["body"]
    assert all("ghp_not_a_real_token" not in json.dumps(s, default=str) for s in doc["stages"])
