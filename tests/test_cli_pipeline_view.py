"""What a person sees while ``noa pipeline`` runs, and the run names they find in Prefect.

``noa pipeline`` runs as a user runs it - a subprocess, stderr a pipe (not a TTY), from a
working directory under folders named ``noa`` and ``x.noa.y`` with no NOA_HOME set (so the
documented default ``./.noa`` of that directory) - against the session's real Prefect
server. The progress view reads the runs back from the Prefect API; Prefect's INFO lines
stay off the terminal unless ``-v``. The flows' run names are read back from the API."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from test_swarm_support import write_tree

from noa_core.cli.pipeline_view import STEPS, PipelineProgress, PlainLines
from noa_core.cli.run_watch import RunInfo

PROJECT = {  # its own noa.yaml: NOA's guessed build command (python -m build) needs `build` in NOA's venv
    "noa.yaml": "name: tinyproj\nlanguage: python\ntest:\n  command: [python, -m, pytest, -q]\n",
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "tinyproj"
        version = "0.1.0"
    """,
    "tinyproj/__init__.py": """
        def add(a, b):
            return a + b
    """,
    "tests/test_add.py": """
        from tinyproj import add


        def test_add():
            assert add(2, 2) == 4
    """,
}
BROKEN = {**PROJECT, "tests/test_add.py": "from tinyproj import add\n\n\ndef test_add():\n    assert add(2, 2) == 5\n"}
PREFECT_INFO = re.compile(r"\| INFO +\| (Flow|Task) run ")
STAGE_LINE = re.compile(r"^pipeline: (?P<step>[a-z ]+): (?P<state>[a-z ]+?)(?: \((?P<run>[^)]+)\))?"
                        r"(?: in (?P<s>[\d.]+) s)?(?: - (?P<d>.*))?$")


def run_noa(args: list[str], cwd: Path, api_url: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """``python -m noa_core.cli ARGS`` in ``cwd``: no NOA_HOME (default ./.noa), stderr a pipe."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NOA_", "FORCE_COLOR"))}
    env.update(PREFECT_API_URL=api_url, PREFECT_HOME=str(tmp / "prefect-client"), PREFECT_LOGGING_LEVEL="INFO",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", NOA_PYENV_CACHE=os.environ.get("NOA_PYENV_CACHE", ""))
    if not env["NOA_PYENV_CACHE"]:
        del env["NOA_PYENV_CACHE"]
    return subprocess.run([sys.executable, "-m", "noa_core.cli", *args], cwd=cwd, env=env, capture_output=True, check=False,
                          text=True, timeout=600)


def progress_lines(stderr: str) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for line in stderr.splitlines():
        m = STAGE_LINE.match(line)
        if m:
            out.setdefault(m["step"], []).append(m.groupdict())
    return out


def tagged_run_names(pipeline_run_id: str) -> dict[str, str]:
    """Every run carrying the pipeline run's ``noa-cli-`` tag: name -> flow name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with get_client(sync_client=True) as client:
        top = client.read_flow_run(pipeline_run_id)
        tag = next(t for t in top.tags if t.startswith("noa-cli-"))
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])))
        flows = {str(f.id): f.name for f in client.read_flows()}
    return {r.name: flows.get(str(r.flow_id), "?") for r in runs}


@pytest.mark.timeout(300)
def test_pipeline_from_another_cwd_on_a_pipe_shows_progress_not_prefect_info(prefect_api_url: str,
                                                                            tmp_path: Path) -> None:
    """The short path (a drop whose test fails: the merge refuses it, the stages never run), as a
    user runs it from a folder of their own named ``noa`` (inside ``x.noa.y``): relative SOURCE,
    no NOA_HOME (so ./.noa there), stderr a pipe."""
    cwd = tmp_path / "x.noa.y" / "noa"
    write_tree(cwd / "proj", BROKEN)
    res = run_noa(["pipeline", "proj", "--json", "--no-ai"], cwd, prefect_api_url, tmp_path)
    assert res.returncode == 1, res.stderr[-3000:]
    doc = json.loads(res.stdout)  # exactly one JSON document on stdout
    assert doc["verdict"] == "failed" and doc["steps"]["sandbox_merge"]["outcome"] == "validation failed"
    assert Path(doc["report_path"]).is_relative_to(cwd / ".noa")  # ./.noa of the command's cwd, made absolute
    err = res.stderr
    assert not PREFECT_INFO.search(err), err[:3000]
    assert "\x1b[" not in err  # a pipe gets plain lines, no escape codes
    lines = progress_lines(err)
    assert lines["code drop"][0] == {"step": "code drop", "state": "running", "run": "drop-proj", "s": None, "d": None}
    assert lines["code drop"][-1]["state"] == "done" and float(lines["code drop"][-1]["s"]) > 0
    assert lines["merge"][-1]["state"] == "validation failed", err
    assert lines["analysis"][-1]["state"] == "failed" and "sandbox merge refused" in lines["analysis"][-1]["d"]
    assert all(lines[s][-1]["state"] == "skipped" for s in ("swarm", "testing", "build", "production")), err
    assert len(err.splitlines()) < 25, err  # a few lines, not Prefect's log


@pytest.mark.timeout(300)
def test_verbose_brings_prefect_log_lines_back(prefect_api_url: str, tmp_path: Path) -> None:
    """A drop whose test fails: the merge refuses it, the stages never run (the short path)."""
    write_tree(tmp_path / "proj", BROKEN)
    res = run_noa(["pipeline", str(tmp_path / "proj"), "--no-ai", "-v", "--home", str(tmp_path / "home")],
                  tmp_path, prefect_api_url, tmp_path)
    assert res.returncode == 1, res.stderr[-3000:]
    err = res.stderr
    assert PREFECT_INFO.search(err), err[:3000]
    assert "Flow run 'drop-proj'" in err
    lines = progress_lines(err)
    assert lines["code drop"][-1]["state"] == "done", err
    assert lines["merge"][-1]["state"] == "validation failed", err  # from Prefect "done" to the merge's outcome
    assert lines["analysis"][-1]["state"] == "failed" and "sandbox merge refused" in lines["analysis"][-1]["d"]
    assert all(lines[s][-1]["state"] == "skipped" for s in ("swarm", "testing", "build", "production"))
    assert "pipeline tinyproj: failed" in res.stdout  # the final table stays


def test_progress_rows_follow_the_runs_and_the_result() -> None:
    """The rows from API snapshots (the pipeline's own runs are the first of each flow name)."""
    def run(name: str, flow: str, state: str, created: float, verdict: str | None = None,
            details: str = "") -> RunInfo:
        return RunInfo(name, name, flow, state, state.title(), 1.5, created, 0.0, verdict, details)

    progress = PipelineProgress()
    out = io.StringIO()
    lines = PlainLines(Console(file=out), progress)
    lines.show(progress.update([run("pipeline-x", "noa_pipeline", "RUNNING", 0), run("drop-x", "code_drop", "RUNNING", 1)]))
    lines.show(progress.update([run("drop-x", "code_drop", "COMPLETED", 1), run("merge-A", "sandbox_merge", "RUNNING", 2)]))
    lines.show(progress.update([run("drop-x", "code_drop", "COMPLETED", 1), run("merge-A", "sandbox_merge", "COMPLETED", 2),
                                run("swarm-x", "swarm", "COMPLETED", 3), run("analysis-x", "analysis_stage", "COMPLETED", 4,
                                                                             "failed", "confidence 0.10"),
                                run("swarm-x2", "swarm", "RUNNING", 5)]))  # a later swarm is not the pipeline's
    lines.show(progress.finish({"steps": {"sandbox_merge": {"outcome": "rolled back", "message": "tests failed"}},
                                "stages": [{"name": "analysis", "status": "failed", "details": "confidence 0.10"},
                                           {"name": "testing", "status": "skipped", "details": "skipped: earlier"}]}))
    assert out.getvalue().splitlines() == [
        "pipeline: code drop: running (drop-x)",
        "pipeline: code drop: done in 1.5 s",
        "pipeline: merge: running (merge-A)",
        "pipeline: merge: done in 1.5 s",
        "pipeline: swarm: done in 1.5 s",
        "pipeline: analysis: failed in 1.5 s - confidence 0.10",
        "pipeline: merge: rolled back in 1.5 s - tests failed",  # done, then the result said otherwise
        "pipeline: testing: skipped - skipped: earlier",
    ]


def test_flow_runs_are_named_from_their_parameters(prefect_api_url: str, tmp_path: Path) -> None:
    """Each flow that had no run name of its own: one real run (a small backup and its restore,
    the others refuse their input at once), its name read back from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.app_switch import app_switch
    from flows.backup import backup, cleanup, forget, restore, verify
    from flows.deploy import deploy, rollback
    from noa_core.deploy.supervisor_client import stop_supervisor

    home, repo = str(tmp_path / "home"), str(tmp_path / "backups" / "offsite")
    src = write_tree(tmp_path / "site-data", {"a.txt": "a\n"})

    async def run(fn: Any, **params: Any) -> tuple[str, Any]:
        state = await fn(**params, return_state=True)
        return str(state.state_details.flow_run_id), state

    async def run_all() -> list[tuple[str, str]]:
        got: list[tuple[str, str]] = []
        run_id, state = await run(backup, source=str(src), repo=repo, home=home, no_encryption=True)
        assert state.is_completed(), state.message
        got.append((run_id, "backup-site-data-to-offsite"))
        snapshot = str((await state.result())["snapshot"]["id"])
        got.append(((await run(restore, snapshot=snapshot, target=str(tmp_path / "out"), repo=repo, home=home))[0],
                    f"restore-{snapshot[:12]}-to-out"))
        for fn, params, want in [
            (deploy, {"project_dir": str(tmp_path / "missing" / "hello-service"), "env": "production", "home": home},
             "deploy-hello-service-production"),
            (deploy, {"project_dir": str(tmp_path / "x"), "app": "web", "home": home}, "deploy-web-staging"),
            (rollback, {"app": "hello-service", "env": "production", "home": home}, "rollback-hello-service-production"),
            (verify, {"repo": repo, "home": home}, "verify-offsite"),
            (forget, {"repo": repo, "home": home, "dry_run": True, "keep_last": 1}, "forget-offsite-dry-run"),
            (cleanup, {"home": home, "dry_run": True}, "cleanup-home-dry-run"),
            (app_switch, {"app": "new-app", "from_app": "old-app", "home": home}, "switch-old-app-to-new-app"),
        ]:
            got.append(((await run(fn, **params))[0], want))
        return got

    try:
        with temporary_settings(updates={PREFECT_API_URL: prefect_api_url}):
            ids = asyncio.run(run_all())
            with get_client(sync_client=True) as client:
                names = [(client.read_flow_run(run_id).name, want) for run_id, want in ids]
    finally:
        stop_supervisor(Path(home))
    assert [n for n, _ in names] == [w for _, w in names]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_whole_pipeline_on_a_pipe_shows_each_stage_verdict(prefect_api_url: str, tmp_path: Path) -> None:
    """The full run (about 30 s): every row's verdict as the API reports it, every run's name."""
    cwd = tmp_path / "noa" / "x.noa.y" / "work"
    write_tree(cwd / "proj", PROJECT)
    res = run_noa(["pipeline", "proj", "--json", "--no-ai", "--no-deploy"], cwd, prefect_api_url, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)  # exactly one JSON document on stdout
    assert doc["verdict"] == "passed"
    assert Path(doc["report_path"]).is_relative_to(cwd / ".noa")  # ./.noa of the command's cwd, made absolute
    err = res.stderr
    assert not PREFECT_INFO.search(err), err[:3000]
    assert "\x1b[" not in err  # a pipe gets plain lines
    lines = progress_lines(err)
    assert {s.label for s in STEPS} <= set(lines), err
    assert lines["code drop"][0] == {"step": "code drop", "state": "running", "run": "drop-proj", "s": None, "d": None}
    assert [x["state"] for x in lines["code drop"]][-1] == "done"
    assert lines["testing"][-1]["state"] == "passed" and lines["testing"][-1]["d"].startswith("1 passed")
    for stage in ("analysis", "security", "build"):
        assert lines[stage][-1]["state"] == "passed" and float(lines[stage][-1]["s"]) >= 0
    for env in ("staging", "production"):
        assert lines[env][-1]["state"] == "skipped"
        assert lines[env][-1]["d"] == "skipped: deployment disabled (--no-deploy)"
    assert len(err.splitlines()) < 40  # a few lines, not Prefect's log
    # the runs behind the lines: every subflow has a name a person can place
    names = tagged_run_names(doc["pipeline_run_id"])
    stages = ("analysis", "testing", "performance", "security", "build", "staging", "production")
    assert {"pipeline-proj", "drop-proj", "swarm-tinyproj", "python_swarm-tinyproj", "unified-tinyproj",
            *(f"{s}-tinyproj" for s in stages)} <= set(names), names
    readable = re.compile(rf"^(pipeline|drop|merge|swarm|python_swarm|unified|error|{'|'.join(stages)})-[\w.-]+$")
    assert all(readable.match(n) for n in names), names  # no generated adjective-animal names
    assert {n for n in names if n.startswith("merge-")} == {f"merge-{doc['steps']['code_drop']['sandbox']}"}


def test_live_table_on_a_terminal_and_prefect_console_held_back() -> None:
    """The terminal view: a spinner and the inner run for the running row, verdicts for the rest;
    Prefect's console handlers show WARNING and above only while the view runs."""
    import logging
    import time

    from prefect.logging.handlers import PrefectConsoleHandler

    from noa_core.cli.pipeline_view import LiveTable, quiet_prefect_console

    now = time.monotonic()
    progress = PipelineProgress()
    progress.update([
        RunInfo("p", "pipeline-hello", "noa_pipeline", "RUNNING", "Running", 30.0, 0, now),
        RunInfo("d", "drop-hello", "code_drop", "COMPLETED", "Completed", 11.4, 1, now),
        RunInfo("u", "unified-hello", "unified_workflow", "RUNNING", "Running", 9.0, 2, now),
        RunInfo("a", "analysis-hello", "analysis_stage", "COMPLETED", "Completed", 0.3, 3, now, "passed", "conf 0.87"),
        RunInfo("s", "staging-hello", "staging_stage", "RUNNING", "Running", 3.3, 4, now),
        RunInfo("x", "deploy-hello-staging", "deploy", "RUNNING", "Running", 3.0, 5, now),
    ])
    console = Console(file=io.StringIO(), force_terminal=True, width=100, record=True)
    console.print(LiveTable(console, progress, "pipeline hello").render())
    rows = {line.split()[1]: line for line in console.export_text().splitlines()[1:] if line.strip()}
    assert rows["code"].split()[:4] == ["✔", "code", "drop", "done"] and "11.4 s" in rows["code"]
    assert "passed" in rows["analysis"] and "conf 0.87" in rows["analysis"]
    assert "running" in rows["staging"] and rows["staging"].rstrip().endswith("deploy-hello-staging")
    assert rows["testing"].split()[:3] == ["·", "testing", "pending"]

    handler = PrefectConsoleHandler(stream=io.StringIO())
    logger = logging.getLogger("noa.test.view")
    logger.addHandler(handler)
    try:
        with quiet_prefect_console() as n:
            assert n >= 1 and handler.level == logging.WARNING
        assert handler.level == logging.NOTSET
    finally:
        logger.removeHandler(handler)
