"""The backup, restore, verify and cleanup flows on a real Prefect server, with a real block."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from backup_helpers import assert_same_tree, build_tree
from noa_core.backup.repository import pack_key


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tree(tmp_path_factory.mktemp("flow-src") / "tree", specs=("cachetools==8.0.2",))


async def _artifacts(flow_run_id: str) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        arts = await client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
        run = await client.read_flow_run(flow_run_id)
    return {"artifacts": {a.key: a for a in arts}, "parameters": run.parameters}


def test_flows_backup_verify_restore_with_a_block(prefect_api_url: str, tree: Path, tmp_path: Path) -> None:
    from prefect.context import get_run_context  # noqa: F401 - Prefect is configured by the fixture

    from blocks.backup import NoaBackupRepository
    from flows.backup import backup, restore, verify
    from pydantic import SecretStr

    home = tmp_path / "home"
    repo_dir = tmp_path / "repo"
    block_name = f"flow-test-{os.getpid()}-{time.monotonic_ns()}"
    NoaBackupRepository(kind="local", location=str(repo_dir), password=SecretStr("block-password")).save(block_name)

    state = asyncio.run(backup(source=str(tree), block=block_name, home=str(home), return_state=True))
    doc = state.result()
    assert doc["encrypted"] is True and doc["files"] > 20
    info = asyncio.run(_artifacts(str(state.state_details.flow_run_id)))
    assert "backup-summary" in info["artifacts"] and "backup-progress" in info["artifacts"]
    assert "block-password" not in repr(info["parameters"])

    out = tmp_path / "out"
    restored = asyncio.run(restore(snapshot="latest", target=str(out), block=block_name, home=str(home)))
    assert restored["files"] == doc["files"]
    assert_same_tree(tree, out)

    # corrupt one blob; the verify flow's table names it
    from blocks.backup import load_backend_config
    from noa_core.backup.service import open_repository

    repo = open_repository(load_backend_config(block_name))
    index = repo.load_index()
    blob = next(iter(index.blobs))
    ref = index.blobs[blob]
    p = repo_dir / pack_key(ref.pack)
    data = bytearray(p.read_bytes())
    data[ref.offset + 1] ^= 0x10
    p.write_bytes(bytes(data))
    vstate = asyncio.run(verify(block=block_name, home=str(home), return_state=True))
    report = vstate.result()
    assert not report["ok"] and [c["blob"] for c in report["corrupted"]] == [blob]
    arts = asyncio.run(_artifacts(str(vstate.state_details.flow_run_id)))["artifacts"]
    assert blob in str(arts["verify-bad-blobs"].data)


def test_cleanup_flow_lists_first_and_removes_only_when_asked(prefect_api_url: str, tree: Path,
                                                             tmp_path: Path) -> None:
    from flows.backup import backup, cleanup
    from noa_core.config import NoaSettings

    home = tmp_path / "home"
    layout = NoaSettings(home=home).layout().ensure()
    old = time.time() - 90 * 86400
    for i in range(7):
        d = layout.drops / f"drop-{i}"
        d.mkdir()
        (d / "f.txt").write_text("x" * 100)
        os.utime(d, (old + i, old + i))
    stray = layout.sandboxes / "leftover-worktree"
    stray.mkdir()
    os.utime(stray, (old, old))
    (layout.sandboxes / "A").mkdir()
    os.utime(layout.sandboxes / "A", (old, old))
    junk = layout.tmp / "old-junk"
    junk.write_text("junk")
    os.utime(junk, (old, old))
    orphan = layout.archive / ("f" * 64)
    orphan.write_bytes(b"zstd")
    repo = str(tmp_path / "repo")
    for _ in range(3):
        asyncio.run(backup(source=str(tree), repo=repo, home=str(home), no_encryption=True))

    plan = asyncio.run(cleanup(home=str(home), repo=repo, keep_last=1, keep_daily=0, keep_weekly=0))
    assert plan["dry_run"] and plan["counts"] == {"snapshot": 2, "drop": 2, "sandbox": 1, "archive": 1, "tmp": 1,
                                                 "pyenv": 0, "results": 0}
    assert (layout.drops / "drop-0").exists() and stray.exists() and orphan.exists()

    done = asyncio.run(cleanup(home=str(home), repo=repo, keep_last=1, keep_daily=0, keep_weekly=0, dry_run=False))
    assert len(done["applied"]["removed"]) == 7
    assert not (layout.drops / "drop-0").exists() and (layout.drops / "drop-6").exists()
    assert not stray.exists() and (layout.sandboxes / "A").exists() and not orphan.exists() and not junk.exists()
    from noa_core.backup.local import LocalBackend
    from noa_core.backup.repository import Repository

    assert len(Repository.open(LocalBackend(Path(repo)), None).snapshots()) == 1


@pytest.mark.slow
def test_cli_backup_flow_option_records_a_flow_run(prefect_api_url: str, tree: Path, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from backup_helpers import REPO_ROOT

    env = {**os.environ, "PREFECT_API_URL": prefect_api_url, "NOA_HOME": str(tmp_path / "home"),
           "PYTHONPATH": str(REPO_ROOT), "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("NOA_BACKUP_PASSWORD", None)
    env.pop("NOA_BACKUP_REPO", None)
    proc = subprocess.run([sys.executable, "-m", "noa_core.cli.backup_app", "backup", str(tree), "--repo",
                           str(tmp_path / "repo"), "--flow", "--json"], env=env, capture_output=True, text=True,
                          timeout=300, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["files"] > 20 and doc["encrypted"] is False

    from prefect.client.orchestration import get_client

    async def backup_runs() -> list:
        async with get_client() as client:
            runs = await client.read_flow_runs()
            flows = {f.id: f.name for f in await client.read_flows()}
        return [r for r in runs
                if flows.get(r.flow_id) == "backup" and r.parameters.get("repo") == str(tmp_path / "repo")]

    runs = asyncio.run(backup_runs())
    assert len(runs) == 1 and runs[0].state.is_completed()
