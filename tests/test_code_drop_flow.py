"""The code_drop flow run in-process against the session's Prefect server."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from flows.code_drop import code_drop
from flows.runtime import run_in_process
from noa_core.manifest import NoaManifest
from noa_core.sandbox.sandboxes import Sandbox

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hello-service"


def drop(source: Path | str, home: Path, **kw: object) -> dict:
    return run_in_process(code_drop, source=str(source), home=str(home), use_ai=False, **kw)


def git_show(home: Path, rev_path: str) -> str:
    return subprocess.run(["git", "--git-dir", str(home / "repo"), "show", rev_path], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture()
def service_without_manifest(tmp_path: Path) -> Path:
    src = tmp_path / "greeter"
    shutil.copytree(EXAMPLE, src)
    (src / "noa.yaml").unlink()
    return src


def test_generated_manifest_is_committed_and_valid(prefect_api_url: str, tmp_path: Path,
                                                   service_without_manifest: Path) -> None:
    report = drop(service_without_manifest, tmp_path / "home")
    assert report["manifest_origin"] == "generated"
    committed = git_show(tmp_path / "home", f"{report['commit']}:projects/hello-service/noa.yaml")
    manifest = NoaManifest.model_validate(yaml.safe_load(committed))
    assert manifest.test.command and "pytest" in " ".join(manifest.test.command)
    assert manifest.test.pythonpath == ["src"]
    assert report["tests"]["passed"] == 9
    # the received source itself was not modified
    assert not (service_without_manifest / "noa.yaml").exists()


def test_same_content_again_reuses_cached_analysis_and_calibrates(prefect_api_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = drop(EXAMPLE, home)
    second = drop(EXAMPLE, home)
    assert first["tree_hash"] == second["tree_hash"]
    cached = {name for name, a in second["analyzers"].items() if a["cached"]}
    assert {"languages", "secrets", "sast", "complexity"} <= cached
    # the first validation now calibrates the second drop's confidence
    table = second["confidence_detail"]["calibration"]
    assert sum(row["n"] for row in table) == 1
    assert second["confidence_detail"]["raw"] == pytest.approx(first["confidence_detail"]["raw"])
    # each drop is one CL tree entry, the second chained to the first
    from noa_core.cltree import change_entries
    from noa_core.config import NoaSettings

    drops = change_entries(NoaSettings(home=home), kind="drop")
    assert [d.payload["drop_id"] for d in drops] == [first["drop_id"], second["drop_id"]]
    assert drops[0].id in drops[1].parents
    # ... and a Prefect event (what an automation would trigger on), pointing at that entry
    ours = {d.id for d in drops}
    events = noa_events(prefect_api_url, "noa.drop.recorded",
                        until=lambda found: ours <= {e["payload"].get("cl_entry") for e in found})
    by_entry = {e["payload"].get("cl_entry"): e for e in events}
    assert ours <= set(by_entry)
    assert {by_entry[d.id]["payload"]["drop_id"] for d in drops} == {first["drop_id"], second["drop_id"]}


def noa_events(api_url: str, name: str, *, until: Callable[[list[dict]], bool], timeout_s: float = 20.0) -> list[dict]:
    """Events named ``name`` on the Prefect server (the server persists them asynchronously)."""
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        r = httpx.post(f"{api_url}/events/filter", json={"filter": {"event": {"name": [name]}}, "limit": 50})
        r.raise_for_status()
        found = r.json()["events"]
        if until(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_update_of_known_project_lands_on_top_of_integration(prefect_api_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    v1 = tmp_path / "v1"
    shutil.copytree(EXAMPLE, v1)
    first = drop(v1, home)
    # put v1 into D as the sandbox merge would
    from noa_core.config import NoaSettings
    from noa_core.sandbox.repository import WorkspaceRepo

    repo = WorkspaceRepo(NoaSettings(home=home).layout())
    repo.land_drop(home / "drops" / first["drop_id"] / "src", "hello-service", Sandbox.D, "integrate v1")

    v2 = tmp_path / "v2"
    shutil.copytree(v1, v2)
    greeting = v2 / "src" / "hello_service" / "greeting.py"
    greeting.write_text(greeting.read_text().replace("MAX_NAME = 64", "MAX_NAME = 64  # capped"))
    second = drop(v2, home)
    assert second["is_update"] is True
    assert second["sandbox"] == "B", second["sandbox_reason"]
    diff = subprocess.run(["git", "--git-dir", str(home / "repo"), "diff", "--name-only", Sandbox.D.branch,
                           second["commit"], "--", "projects/hello-service"], capture_output=True, text=True,
                          check=True).stdout.split()
    assert diff == ["projects/hello-service/src/hello_service/greeting.py"]


def test_low_confidence_always_goes_to_c(prefect_api_url: str, tmp_path: Path) -> None:
    src = tmp_path / "scraps"
    src.mkdir()
    (src / "notes.txt").write_text("some notes\n")
    (src / "run.sh").write_text("#!/bin/sh\necho hi\n")
    report = drop(src, tmp_path / "home")
    assert report["confidence"] < 0.5
    assert report["sandbox"] == "C"
    assert "below" in report["sandbox_reason"]
    assert report["tests"]["status"] == "skipped"


def test_forced_sandbox_is_honoured(prefect_api_url: str, tmp_path: Path) -> None:
    report = drop(EXAMPLE, tmp_path / "home", sandbox="C")
    assert report["sandbox"] == "C"
    assert "asked for" in report["sandbox_reason"]
