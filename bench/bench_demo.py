#!/usr/bin/env python
"""The front door's wall time: ``make demo`` from a fresh clone, as a newcomer runs it.

The committed tree is cloned into a new folder named ``noa``; ``make demo`` runs there
twice and is timed each time: the first includes the whole install into ``./.venv`` (with
the compiled llama-cpp-python wheel already in the wheel cache: the "warm wheel cache"
case), the second finds the install done and a NOA_HOME with a Prefect server to reuse.
After each run the deployed services and the Prefect server are stopped. Prints both times
and whether both service addresses were printed (goal: under 60 s on a warm wheel cache).

Usage: bench/bench_demo.py [--keep] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_demo(checkout: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(["make", "demo"], cwd=checkout, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    bootstrap = re.search(r"bootstrap: done", out) is not None
    addresses = {env: bool(re.search(rf"^{env}: .* serving at https?://", proc.stdout, re.M))
                 for env in ("staging", "production")}
    noa = checkout / ".venv" / "bin" / "noa"
    for cmd in (["deploy-supervisor", "stop"], ["prefect", "stop"]):
        subprocess.run([str(noa), *cmd], cwd=checkout, capture_output=True)
    return {"seconds": round(seconds, 1), "exit": proc.returncode, "installed": bootstrap, **addresses,
            "tail": out.strip().splitlines()[-3:] if proc.returncode else []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="noa-bench-demo-"))
    checkout = tmp / "noa"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(checkout)], check=True)
    try:
        rows = [{"run": "fresh clone (install + demo)", **run_demo(checkout)},
                {"run": "again (installed, same NOA_HOME)", **run_demo(checkout)}]
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"{r['run']:<34} {r['seconds']:>7.1f} s  exit {r['exit']}  staging address "
              f"{'yes' if r['staging'] else 'NO'}, production address {'yes' if r['production'] else 'NO'}")
        for line in r["tail"]:
            print("   ", line)
    sys.exit(0 if all(r["exit"] == 0 for r in rows) else 1)


if __name__ == "__main__":
    main()
