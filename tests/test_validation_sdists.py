"""run_test_suite on real PyPI source distributions: its counts must equal what pytest
itself says when run by hand (not isolated) on another copy of the same tree.

The sdists are downloaded once with pip into a cache directory
(``$NOA_TEST_SDIST_CACHE``, default ``~/.cache/noa-test-sdists``) and extracted with
tarfile: they are this test's own fixtures, not untrusted drops.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from noa_core.config import ExecLimits
from noa_core.isolation import make_work_copy
from noa_core.validation import parse_pytest_summary, run_test_suite, suggest_pythonpath

pytestmark = [pytest.mark.slow, pytest.mark.network]

CACHE = Path(os.environ.get("NOA_TEST_SDIST_CACHE") or Path.home() / ".cache" / "noa-test-sdists")

# name, version, "passed" as measured on these machines (DESIGN.md, "Facts measured")
SDISTS = [
    ("cachetools", "8.0.2", 476),
    ("toolz", "1.2.0", 192),
    ("click", "8.5.1", 2434),
]

_DURATION = re.compile(r" in \d+(?:\.\d+)?s(?: \(.*\))?$")


def _sdist_archive(name: str, version: str) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / f"{name}-{version}.tar.gz"
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel workers download each sdist once
        if not archive.exists():
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                 f"{name}=={version}", "-d", str(CACHE)],
                capture_output=True, text=True, timeout=600,
            )
            if proc.returncode != 0 or not archive.exists():
                pytest.fail(f"pip download {name}=={version} failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
    return archive


def _extract(archive: Path, dest: Path) -> Path:
    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter="data")
    (tree,) = [p for p in dest.iterdir() if p.is_dir()]
    return tree


@pytest.mark.parametrize(("name", "version", "design_passed"), SDISTS, ids=[f"{n}-{v}" for n, v, _ in SDISTS])
def test_isolated_counts_equal_plain_pytest(name: str, version: str, design_passed: int, tmp_path: Path,
                                            record_property) -> None:
    tree = _extract(_sdist_archive(name, version), tmp_path / "sdist")
    pythonpath = suggest_pythonpath(tree)  # cachetools and click: ["src"] (shadows the venv's copies)

    # isolated, through NOA
    t0 = time.monotonic()
    run = run_test_suite(tree, ["python", "-m", "pytest", "-q"], work_parent=tmp_path / "isolated",
                         limits=ExecLimits(wall_seconds=600, cpu_seconds=600), pythonpath=pythonpath)
    isolated_total = time.monotonic() - t0

    # by hand, not isolated, on another copy
    plain = make_work_copy(tree, tmp_path / "plain")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(tmp_path / "home"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(plain / p) for p in pythonpath)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=plain, env=env,
                          capture_output=True, text=True, timeout=900)
    plain_seconds = time.monotonic() - t0
    by_hand = parse_pytest_summary(proc.stdout)

    log_tail = run.log_path.read_text(errors="replace")[-3000:]
    assert run.counts is not None, log_tail
    assert run.counts.as_dict() | {"summary_line": ""} == by_hand.as_dict() | {"summary_line": ""}, (
        f"isolated: {run.counts.summary_line}\nby hand:  {by_hand.summary_line}\n{log_tail}")
    assert _DURATION.sub("", run.counts.summary_line) == _DURATION.sub("", by_hand.summary_line)
    assert run.outcome == "passed" and run.returncode == proc.returncode == 0
    assert not run.retried_without_addopts
    assert run.counts.passed == design_passed, "pytest here disagrees with DESIGN.md: trust pytest, tell the lead"

    timing = (f"{name} {version}: {run.counts.summary_line!r} | isolated {run.seconds:.2f}s "
              f"(with copy {isolated_total:.2f}s, {run.isolation}) vs plain {plain_seconds:.2f}s "
              f"-> x{run.seconds / plain_seconds:.2f}")
    record_property("timing", timing)
    print(timing)
