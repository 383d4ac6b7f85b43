"""The VS Code extension (integrations/vscode): install its pinned dev dependencies from the
npm registry (``npm ci``, skipped when node_modules already matches the lock file), compile
it with tsc, and run its unit tests (API client and tree rows against a local HTTP server)
with node's built-in test runner. extension.ts runs against a fake `vscode` module; VS Code itself is not started: @vscode/test-electron would
download a VS Code build, which this machine cannot do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

EXT = Path(__file__).resolve().parent.parent / "integrations" / "vscode"


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=False, cwd=EXT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "npm_config_update_notifier": "false", "NO_COLOR": "1"})


def _installed_matches_lock() -> bool:
    """node_modules holds exactly the lock file's versions (npm writes node_modules/.package-lock.json)."""
    try:
        lock = json.loads((EXT / "package-lock.json").read_text())["packages"]
        hidden = json.loads((EXT / "node_modules" / ".package-lock.json").read_text())["packages"]
    except (OSError, ValueError, KeyError):
        return False
    wanted = {k: v.get("version") for k, v in lock.items() if k}
    return all(hidden.get(k, {}).get("version") == v for k, v in wanted.items())


def test_extension_compiles_and_its_unit_tests_pass(tmp_path: Path) -> None:
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("npm/node not installed: the VS Code extension cannot be built here")
    manifest = json.loads((EXT / "package.json").read_text())
    titles = {c["command"]: c["title"] for c in manifest["contributes"]["commands"]}
    assert titles["noa.dropFolder"] == "NOA: Drop this folder" and titles["noa.runPipeline"] == "NOA: Run pipeline"
    assert set(manifest["contributes"]["configuration"]["properties"]) >= {"noa.apiUrl", "noa.token"}
    if not _installed_matches_lock():
        done = _run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"], 300)
        if done.returncode != 0 and "ENOTFOUND" in done.stderr + done.stdout:
            pytest.skip("npm registry unreachable: " + done.stderr.strip().splitlines()[-1])
        assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "out"
    tsc = _run([str(EXT / "node_modules" / ".bin" / "tsc"), "-p", ".", "--outDir", str(out)], 180)
    assert tsc.returncode == 0, tsc.stdout[-3000:]
    assert (out / "extension.js").is_file() and (out / "client.js").is_file()
    tests = sorted(str(p) for p in (out / "test").glob("*.test.js"))
    result = _run([node, "--test", *tests], 120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = dict(line[2:].split(" ", 1) for line in result.stdout.splitlines()
                   if line.startswith("# ") and line[2:].split(" ", 1)[0] in ("tests", "pass", "fail"))
    assert summary["fail"] == "0" and int(summary["pass"]) >= 9, result.stdout[-2000:]
