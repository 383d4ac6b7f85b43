"""``noa pipeline`` end to end on the bundled example service, against the session's real
Prefect server: code drop -> sandbox A -> merge into D -> swarm -> seven stages."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

HELLO = Path(__file__).resolve().parents[1] / "examples" / "hello-service"
STAGE_NAMES = ["analysis", "testing", "performance", "security", "build", "staging", "production"]


def noa_app() -> Any:
    """The ``noa`` Typer app with ``noa pipeline`` registered (once)."""
    from noa_core.cli.main import app
    from noa_core.cli.pipeline_cmd import register

    if not any(c.name == "pipeline" for c in app.registered_commands):
        register(app)
    return app


def run_cli(args: list[str], api_url: str) -> Any:
    from typer.testing import CliRunner

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_API_URL", api_url)
        return CliRunner().invoke(noa_app(), args, catch_exceptions=False)


def test_noa_pipeline_on_the_example_service(prefect_api_url: str, tmp_path: Path) -> None:
    """One pipeline run (about 45 s), checked from three sides: the JSON, the build, Prefect."""
    import logging

    from prefect.logging.configuration import setup_logging
    from prefect.settings import PREFECT_LOGGING_LEVEL, temporary_settings

    home = tmp_path / "home"
    try:  # the test session runs Prefect at WARNING (conftest); a user's runs log INFO
        with temporary_settings(updates={PREFECT_LOGGING_LEVEL: "INFO"}):
            setup_logging()
            res = run_cli(["pipeline", str(HELLO), "--json", "--no-ai", "--no-deploy", "--home", str(home)],
                          prefect_api_url)
    finally:
        setup_logging()
        for name in ("prefect.flow_runs", "prefect.task_runs"):
            logging.getLogger(name).handlers = [h for h in logging.getLogger(name).handlers
                                                if type(h).__name__ != "FlowLogsHandler"]
    doc = json.loads(res.stdout)
    check_json(res, doc)
    check_build(doc, home)
    stage_runs = check_prefect(doc)
    check_traces(doc, home, stage_runs)
    check_logs(doc, home, stage_runs)


def check_json(res: Any, doc: dict) -> None:
    assert res.exit_code == 0, res.output[-3000:]
    assert [s["name"] for s in doc["stages"]] == STAGE_NAMES
    for s in doc["stages"]:
        assert {"name", "status", "duration_s", "details"} <= set(s) and s["status"] in ("passed", "failed", "skipped")
        assert s["status"] != "skipped" or s["details"].startswith("skipped: ")
    assert doc["verdict"] == "passed" and doc["deployed"] is False
    st = {s["name"]: s for s in doc["stages"]}
    assert st["analysis"]["status"] == "passed" and st["analysis"]["data"]["source"].startswith("code drop ")
    assert st["testing"]["status"] == "passed" and st["testing"]["details"].startswith("9 passed")
    assert st["performance"]["details"] == "skipped: no benchmarks found"
    assert st["security"]["status"] == "passed"
    assert {c["check"] for c in st["security"]["data"]["checks"]} == {"bandit", "secrets", "vulnerabilities", "semgrep"}
    assert st["build"]["status"] == "passed"
    for env in ("staging", "production"):  # never "passed" without a deployment
        assert (st[env]["status"], st[env]["details"]) == ("skipped", "skipped: deployment disabled (--no-deploy)")
    steps = doc["steps"]
    assert steps["code_drop"]["sandbox"] in ("A", "B", "C") and steps["code_drop"]["tests"] == "passed"
    assert steps["sandbox_merge"]["outcome"] == "merged"
    assert steps["swarm"]["mode"] == "embedded" and steps["swarm"]["counts"] == "9 passed"
    assert json.loads(Path(doc["report_path"]).read_text())["verdict"] == "passed"


def check_build(doc: dict, home: Path) -> None:
    from noa_core.build import hash_file

    build = next(s for s in doc["stages"] if s["name"] == "build")["data"]
    assert sorted(a["kind"] for a in build["artifacts"]) == ["sdist", "wheel"]
    for a in build["artifacts"]:
        path = Path(a["path"])
        assert path.is_relative_to(home / "builds" / "hello-service")
        assert hash_file(path)[0] == a["blake3"] and path.parent.name == a["blake3"][:16]
    sbom = json.loads(Path(build["sbom"]).read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.6"
    try:
        from noa_core.cltree import change_entries
    except ImportError:
        return
    from noa_core.config import NoaSettings

    entries = change_entries(NoaSettings(home=home))
    kinds = [e.kind for e in entries]
    assert kinds.count("stage") == 7 and kinds.count("build") == 1 and kinds.count("pipeline") == 1, kinds
    assert next(e for e in entries if e.kind == "pipeline").payload["verdict"] == "passed"


def check_prefect(doc: dict) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from test_stages_flow import subflows

    with get_client(sync_client=True) as client:
        top = subflows(client, doc["pipeline_run_id"])
        assert {"code_drop", "sandbox_merge", "swarm", "unified_workflow"} <= set(top)
        stages = subflows(client, str(top["unified_workflow"].id))
        assert {f"{n}_stage" for n in STAGE_NAMES} <= set(stages)
        assert all(r.state.is_completed() for r in stages.values())
        keys = {a.key for a in client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(
            any_=["pipeline-hello-service", "unified-hello-service", *(f"stage-hello-service-{n}" for n in STAGE_NAMES)])))}
    assert keys == {"pipeline-hello-service", "unified-hello-service",
                    *(f"stage-hello-service-{n}" for n in STAGE_NAMES)}
    return {name.removesuffix("_stage"): str(run.id) for name, run in stages.items()}


def check_logs(doc: dict, home: Path, stage_runs: dict[str, str]) -> None:
    """The runs' Prefect logs are also JSON lines on disk, each with its flow run id."""
    lines = [json.loads(line) for f in sorted((home / "logs").glob("flows-*.jsonl"))
             for line in f.read_text().splitlines()]
    by_run = {}
    for line in lines:
        by_run.setdefault(line.get("flow_run_id"), []).append(line)
    assert doc["pipeline_run_id"] in by_run
    testing = by_run[stage_runs["testing"]]
    assert any(line["msg"].startswith("stage testing: passed") and line["run_id"] == stage_runs["testing"]
               and line["flow_name"] == "testing_stage" for line in testing)


def check_traces(doc: dict, home: Path, stage_runs: dict[str, str]) -> None:
    """Every stage is a span linked to its own flow run, all in one trace: the pipeline run's id."""
    import uuid

    from noa_core.observability.tracing import read_spans

    spans = {s["name"]: s for s in read_spans(home / "traces" / "spans.jsonl") if s["name"].startswith("stage ")}
    assert set(spans) == {f"stage {n}" for n in STAGE_NAMES}
    for name in STAGE_NAMES:
        span = spans[f"stage {name}"]
        assert span["attributes"]["noa.run_id"] == stage_runs[name]
        assert span["trace_id"] == uuid.UUID(doc["pipeline_run_id"]).hex
        assert span["duration_ms"] > 0 and span["service"] == "noa-flows"
    assert spans["stage testing"]["attributes"]["noa.status"] == "passed"


def test_pipeline_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    for args, words in ((["pipeline", str(tmp_path / "nope")], "does not exist"),
                        (["pipeline", str(HELLO), "--sandbox", "Z"], "--sandbox"),
                        (["pipeline", str(HELLO), "--shards", "0"], "--shards")):
        res = runner.invoke(noa_app(), [*args, "--home", str(tmp_path / "home")])
        assert res.exit_code == 2, (args, res.output)
        assert words in res.output and res.output.count("noa: error:") == 1


@pytest.mark.slow
def test_failed_gate_from_noa_yaml_exits_1_and_skips_the_rest(prefect_api_url: str, tmp_path: Path) -> None:
    tree = tmp_path / "strict-hello"
    shutil.copytree(HELLO, tree)
    with open(tree / "noa.yaml", "a") as fh:
        fh.write(textwrap.dedent("""
            gates:
              min_confidence: 0.99
        """))
    res = run_cli(["pipeline", str(tree), "--json", "--no-ai", "--home", str(tmp_path / "home")], prefect_api_url)
    assert res.exit_code == 1, res.output[-2000:]
    doc = json.loads(res.stdout)
    assert doc["verdict"] == "failed"
    first, *rest = doc["stages"]
    assert first["status"] == "failed" and "below 0.99" in first["details"]
    assert first["data"]["error_handling"]["action"] == "mark failed"
    assert all(s["details"] == "skipped: earlier gate failed (analysis)" for s in rest)


@pytest.mark.slow
def test_staging_and_production_deploy_for_real_when_the_deploy_flows_exist(prefect_api_url: str,
                                                                            tmp_path: Path) -> None:
    try:
        import flows.deploy  # noqa: F401
    except ImportError:
        pytest.skip("flows/deploy.py is not installed")
    from deploy_helpers import cleanup_home

    from flows.unified_workflow import run_unified

    home = tmp_path / "home"
    try:
        doc = run_unified(project_dir=str(HELLO), home=str(home),
                          deploy_options={"interval_s": 1.0, "steps": [50, 100], "tick_s": 0.1})
    finally:
        cleanup_home(home)
    st = {s["name"]: s for s in doc["stages"]}
    for env in ("staging", "production"):
        assert st[env]["status"] == "passed", st[env]
        assert st[env]["data"]["deploy"]["outcome"] == "promoted" and st[env]["data"]["deploy"]["env"] == env
    assert doc["deployed"] is True and doc["verdict"] == "passed"
