#!/usr/bin/env python
"""A dropped project's environment: NOA's cold build beside ``uv pip install`` of the same set,
and a warm drop's reuse.

Cold, in the same run and round by round, each with empty caches of its own:

* NOA: ``prepare_python_env`` on a small project declaring ``REQUIREMENTS``: resolve with
  ``uv pip compile`` (wheels only), download the wheels with NOA's fetcher, build the venv
  inside bubblewrap with no network (``uv venv`` + ``uv pip install --no-index``), build and
  install the project itself into its site directory;
* plain: ``uv venv`` + ``uv pip install REQUIREMENTS`` + ``uv pip install ./project`` (no
  isolation; uv resolves, downloads and installs in one go).

Warm: ``prepare_python_env`` again on the same tree (what every later drop, shard and stage
pays): goal under 0.5 s. Prints seconds and ratios (goal for cold: at most 1.2x).

Usage: bench/bench_pyenv.py [--rounds 3] [--json] [REQUIREMENT ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noa_core.config import ExecLimits  # noqa: E402
from noa_core.pyenv.interpreter import base_interpreter, find_uv  # noqa: E402
from noa_core.pyenv.provider import CACHE_ENV, prepare_python_env  # noqa: E402

REQUIREMENTS = ["pytest", "pygments", "more_itertools>=8.5.0", "typeguard>=4.0.1", "requests", "pydantic<2",
                "hypothesis"]


def write_project(root: Path, requirements: list[str]) -> Path:
    (root / "benchproj").mkdir(parents=True)
    (root / "benchproj" / "__init__.py").write_text("VALUE = 1\n")
    deps = ", ".join(json.dumps(r) for r in requirements)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "benchproj"\nversion = "0.1"\ndependencies = [{deps}]\n'
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n')
    return root


def noa_cold(project: Path, work: Path) -> tuple[float, dict]:
    os.environ[CACHE_ENV] = str(work / "noa-cache")
    home = work / "home"
    t0 = time.perf_counter()
    env = prepare_python_env(project, home=home, limits=ExecLimits(), test_runner=None)
    seconds = time.perf_counter() - t0
    if not env.ready:
        raise SystemExit(f"NOA could not build the environment: {env.reason}")
    return seconds, env.summary()


def noa_warm(project: Path, work: Path) -> float:
    os.environ[CACHE_ENV] = str(work / "noa-cache")
    t0 = time.perf_counter()
    env = prepare_python_env(project, home=work / "home", limits=ExecLimits(), test_runner=None)
    seconds = time.perf_counter() - t0
    assert env.ready and env.env is not None and env.env.reused
    return seconds


def plain_cold(project: Path, requirements: list[str], work: Path) -> float:
    uv = str(find_uv())
    python = str(base_interpreter().executable)
    env = {**os.environ, "UV_CACHE_DIR": str(work / "uv-cache"), "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"}
    venv = work / "plain-venv"
    t0 = time.perf_counter()
    subprocess.run([uv, "venv", "--quiet", "--python", python, str(venv)], check=True, env=env)
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *requirements],
                   check=True, env=env)
    subprocess.run([uv, "pip", "install", "--quiet", "--no-deps", "--python", str(venv / "bin" / "python"),
                    str(project)], check=True, env=env)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements", nargs="*", default=REQUIREMENTS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="noa-bench-pyenv-") as tmp:
            base = Path(tmp)
            project = write_project(base / "src", args.requirements)
            # alternate who goes first: the index's own caches warm up for whoever goes second
            order = ["plain", "noa"] if i % 2 else ["noa", "plain"]
            got: dict[str, float] = {}
            summary: dict = {}
            for who in order:
                work = base / who
                work.mkdir()
                if who == "noa":
                    got["noa"], summary = noa_cold(project, work)
                else:
                    got["plain"] = plain_cold(project, args.requirements, work)
            warm = [noa_warm(project, base / "noa") for _ in range(5)]
            rows.append({"round": i + 1, "noa_cold_s": round(got["noa"], 3), "uv_cold_s": round(got["plain"], 3),
                         "ratio": round(got["noa"] / got["plain"], 2), "noa_warm_s": round(statistics.median(warm), 4),
                         "packages": summary.get("packages"), "steps_s": summary.get("seconds")})
            shutil.rmtree(base, ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'round':>5} {'packages':>8} {'NOA cold':>9} {'uv cold':>8} {'ratio':>6} {'NOA warm':>9}  NOA steps (s)")
    for r in rows:
        print(f"{r['round']:>5} {r['packages']:>8} {r['noa_cold_s']:>8.2f}s {r['uv_cold_s']:>7.2f}s "
              f"{r['ratio']:>5.2f}x {r['noa_warm_s']:>8.3f}s  {r['steps_s']}")
    ratios = [r["ratio"] for r in rows]
    print(f"median cold ratio {statistics.median(ratios):.2f}x (goal <= 1.2x); "
          f"median warm {statistics.median(r['noa_warm_s'] for r in rows):.3f} s (goal < 0.5 s)")


if __name__ == "__main__":
    main()
