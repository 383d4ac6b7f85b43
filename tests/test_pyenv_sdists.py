"""`noa drop pypi:NAME==VERSION` on real sdists with dependencies: NOA's counts equal a plain venv's.

The expected counts in ``tests/data/pyenv_corpus.json`` were obtained by hand, the way a user
would: a fresh venv from the base interpreter, ``pip install`` of the sdist plus the test
requirements the project declares, then ``python -m pytest -q -p no:cacheprovider`` in the
sdist's directory (the corpus says, per project, exactly what was installed). Here each sdist
goes through the real ``noa`` CLI against the session's Prefect server; NOA must build the
project's own environment from what the project declares and report the same counts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from noa_core.pyenv.interpreter import base_interpreter

pytestmark = [pytest.mark.slow, pytest.mark.network]

CORPUS_PATH = Path(__file__).resolve().parent / "data" / "pyenv_corpus.json"
CORPUS: list[dict[str, Any]] = json.loads(CORPUS_PATH.read_text(encoding="utf-8"))["sdists"]
COUNTED = ("passed", "failed", "errors", "skipped")


def noa_drop(source: str, home: Path, api_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it; only the session's shared environment cache (conftest) is kept."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NOA_"))}
    env.update(PREFECT_API_URL=api_url, PREFECT_LOGGING_LEVEL="WARNING", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    if os.environ.get("NOA_PYENV_CACHE"):
        env["NOA_PYENV_CACHE"] = os.environ["NOA_PYENV_CACHE"]
    return subprocess.run([sys.executable, "-m", "noa_core.cli", "drop", source, "--json", "--no-ai",
                           "--home", str(home)], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)


@dataclass(frozen=True)
class Drop:
    returncode: int
    report: dict[str, Any]
    stderr: str
    python: str

    def detail(self) -> dict[str, Any]:
        tests = self.report["tests"]
        return {k: tests.get(k) for k in ("command", "status", "reason", "summary_line", "log", "environment")}


@pytest.fixture(scope="module")
def dropped(prefect_api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[[dict[str, Any]], Drop]:
    """Each corpus entry dropped once per module (the subtests check reuses the counts test's drop)."""
    done: dict[str, Drop] = {}

    def drop(entry: dict[str, Any]) -> Drop:
        key = f"{entry['name']}-{entry['version']}"
        if key not in done:
            here = base_interpreter().version
            recorded = entry["by_hand"]["python"]
            if here.split(".")[:2] != recorded.split(".")[:2]:
                pytest.skip(f"by-hand counts were taken on Python {recorded}; NOA's base interpreter here is {here}")
            base = tmp_path_factory.mktemp(key)
            (base / "outside").mkdir()
            proc = noa_drop(f"pypi:{entry['name']}=={entry['version']}", base / "home", prefect_api_url,
                            base / "outside")
            assert proc.stdout.strip(), proc.stderr[-3000:]
            done[key] = Drop(proc.returncode, json.loads(proc.stdout), proc.stderr, here)
        return done[key]

    return drop


def test_corpus_is_complete() -> None:
    """Every entry says how its counts were obtained; the packaging styles the issue asks for are there."""
    styles = set()
    for entry in CORPUS:
        assert entry["by_hand"]["pip_install"] and entry["by_hand"]["pytest"], entry["name"]
        assert set(entry["counts"]) >= {*COUNTED, "xfailed", "xpassed"}, entry["name"]
        assert entry["counts"]["passed"] > 100, entry["name"]
        styles.add(entry["style"]["backend"])
        styles.update(entry["style"]["declares"])
    assert {"setuptools", "flit_core", "hatchling"} <= styles
    assert {"requirements file", "dependency group", "optional extra", "lock file"} <= styles


@pytest.mark.parametrize("entry", CORPUS, ids=[f"{e['name']}-{e['version']}" for e in CORPUS])
def test_drop_counts_equal_plain_venv(entry: dict[str, Any], dropped: Callable[[dict[str, Any]], Drop]) -> None:
    drop = dropped(entry)
    report, detail = drop.report, drop.detail()
    tests = report["tests"]
    env = tests["environment"]

    assert report["project"] == entry["name"], detail
    assert env is not None and env["status"] == "ready", detail
    assert tests["status"] == "passed", detail
    assert drop.returncode == 0, drop.stderr[-3000:]
    expected = entry["counts"]
    assert {k: tests[k] for k in COUNTED} == {k: expected[k] for k in COUNTED}, detail

    # The report names the environment: its content hash, its size and what it was resolved from.
    assert re.fullmatch(r"[0-9a-f]{12,64}", env["hash"]), env
    assert env["packages"] >= len(entry["by_hand"]["key_packages"]), env
    assert env["interpreter"].endswith(drop.python), env
    for declared in entry["noa_sources_include"]:
        assert any(s.startswith(declared) for s in env["sources"]), (declared, env["sources"])


WITH_SUBTESTS = [e for e in CORPUS if "subtests_passed" in e["counts"]]


@pytest.mark.parametrize("entry", WITH_SUBTESTS, ids=[f"{e['name']}-{e['version']}" for e in WITH_SUBTESTS])
def test_subtests_counted_like_plain_pytest(entry: dict[str, Any], dropped: Callable[[dict[str, Any]], Drop]) -> None:
    drop = dropped(entry)
    assert drop.report["tests"]["subtests_passed"] == entry["counts"]["subtests_passed"], drop.detail()
