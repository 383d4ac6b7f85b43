#!/usr/bin/env python
"""Orchestration overhead of the seven-stage ``unified_workflow`` against the same tools
run by a shell script, in the same run on the same machine (issue 4, bench b).

Project: ``examples/hello-service`` (or ``--project DIR``). Configurations:

* shell: one ``bash -e`` script in a copy of the tree running ``pytest``, ``ruff check``,
  ``bandit -r``, ``semgrep scan`` (NOA's shipped rules, offline) and ``pip wheel``
  (+ ``python -m build``-like sdist via ``setup.py``-free ``pip``: the wheel only) - no
  isolation, no gates, no records;
* NOA cold: ``unified_workflow`` (deploy off) in a fresh NOA_HOME against NOA's embedded
  Prefect server: every analyzer (licence, complexity, secrets, pip-audit ... too),
  the swarm (pytest in 2 isolated shards + ruff), semgrep, bandit, wheel + sdist +
  BLAKE3 + SBOM, each command isolated with bubblewrap, every stage a subflow with
  artifacts and change-log entries;
* NOA warm: the same again on the same home (the hive reuses the swarm's results, the
  build environment is cached).

Prints the wall times, each stage's time, and the ratios NOA / shell.
Usage: bench/bench_pipeline.py [--project DIR] [--rounds N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
BIN = Path(PY).parent
sys.path.insert(0, str(ROOT))

SHELL = """
set -e
export PYTHONPATH=src
"{py}" -m pytest -q -p no:cacheprovider tests > /dev/null
"{bin}/ruff" check --no-cache . > /dev/null || true
"{py}" -m bandit -q -r -f json -o bandit.json src tests || true
"{bin}/semgrep" scan --metrics off --disable-version-check --quiet --json -o semgrep.json \
    --config "{rules}/python.yaml" --config "{rules}/generic.yaml" . || true
"{py}" -m pip wheel -q --no-deps -w dist . > /dev/null 2>&1
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_shell(project: Path, scratch: Path) -> float:
    work = scratch / f"shell-{time.monotonic_ns()}"
    shutil.copytree(project, work)
    script = SHELL.format(py=PY, bin=BIN, rules=ROOT / "noa_core" / "data" / "semgrep")
    t0 = time.perf_counter()
    subprocess.run(["bash", "-c", script], cwd=work, check=True, stdin=subprocess.DEVNULL)
    took = time.perf_counter() - t0
    shutil.rmtree(work, ignore_errors=True)
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--project", type=Path, default=ROOT / "examples" / "hello-service")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    project = args.project.resolve()
    scratch = Path(tempfile.mkdtemp(prefix="noa-bench-pipeline-"))
    from noa_core.orchestration.prefect_server import EmbeddedPrefectServer

    home = scratch / "home"
    server = EmbeddedPrefectServer(home / "prefect", free_port())
    info = server.ensure()
    os.environ.update(PREFECT_API_URL=info.api_url, PREFECT_LOGGING_LEVEL="WARNING",
                      PREFECT_SERVER_ANALYTICS_ENABLED="false")
    try:
        from flows.unified_workflow import run_unified

        shell: list[float] = []
        cold: list[float] = []
        warm: list[float] = []
        stages: dict[str, list[dict]] = {"cold": [], "warm": []}
        for i in range(args.rounds):
            shell.append(run_shell(project, scratch))
            h = scratch / f"home-{i}"
            for label, bucket in (("cold", cold), ("warm", warm)):
                t0 = time.perf_counter()
                doc = run_unified(project_dir=str(project), home=str(h), deploy=False)
                bucket.append(time.perf_counter() - t0)
                stages[label] = doc["stages"]
                assert doc["verdict"] == "passed", [(s["name"], s["details"]) for s in doc["stages"]]
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in (("shell", shell), ("noa_cold", cold), ("noa_warm", warm))}
    out = {"project": str(project), "rounds": args.rounds, "median_s": {k: round(v, 2) for k, v in med.items()},
           "ratio_cold": round(med["noa_cold"] / med["shell"], 2), "ratio_warm": round(med["noa_warm"] / med["shell"], 2),
           "stages_cold": {s["name"]: round(s["duration_s"], 2) for s in stages["cold"]},
           "stages_warm": {s["name"]: round(s["duration_s"], 2) for s in stages["warm"]}}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"project {project.name}, {args.rounds} round(s), medians:")
        print(f"  shell script (pytest, ruff, bandit, semgrep, pip wheel): {med['shell']:.2f} s")
        print(f"  NOA unified_workflow, cold home: {med['noa_cold']:.2f} s  -> {out['ratio_cold']:.2f}x the shell")
        print(f"  NOA unified_workflow, warm home: {med['noa_warm']:.2f} s  -> {out['ratio_warm']:.2f}x the shell")
        print("  stages cold: " + ", ".join(f"{k} {v:.1f}s" for k, v in out["stages_cold"].items()))
        print("  stages warm: " + ", ".join(f"{k} {v:.1f}s" for k, v in out["stages_warm"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
