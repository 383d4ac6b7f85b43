#!/usr/bin/env python
"""A real test suite sharded over 2 NOA agents, against one plain ``pytest`` and against
``pytest -n 2`` (pytest-xdist), in the same run on the same machine.

Suite: the click 8.5.1 sdist from PyPI (or ``--sdist more-itertools==11.2.1``), its own
tests, ``src`` on the path. Per round, interleaved so that the machine's load hits all
three alike:

* plain:  ``python -m pytest -q`` in a copy of the tree (not isolated);
* xdist:  ``python -m pytest -q -n 2`` in a copy (not isolated);
* NOA:    the Python swarm's test check (noa_core.swarm.python: the same steps the
          ``python_swarm`` flow runs as tasks) with 2 shards, each an agent isolated with
          bubblewrap in its own work copy, against a hive in a scratch registry.db.

Before the rounds NOA runs once "cold": nothing in the hive, so it collects
(``pytest --collect-only``) and plans by test counts; that run records per-file durations
and the collection. Every round then changes one test file's content (a comment), as a
code change would: the content hash differs, so nothing is reused from the hive but the
knowledge - the file layout's collection and the recorded durations (warm plan).

Prints each configuration's median wall time, the counts each reported (they must agree)
and the ratios. Goal (issue 4): NOA sharded at least as fast as pytest -n 2.

Usage: bench/bench_swarm.py [--sdist NAME==VERSION] [--rounds N] [--shards N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
sys.path.insert(0, str(ROOT))

from noa_core.config import ExecLimits  # noqa: E402
from noa_core.swarm.hive import open_hive  # noqa: E402
from noa_core.swarm.interface import SwarmContext  # noqa: E402
from noa_core.swarm.python import PythonToolchain  # noqa: E402
from noa_core.validation import parse_pytest_summary, suggest_pythonpath  # noqa: E402

CACHE = Path(os.environ.get("NOA_TEST_SDIST_CACHE") or Path.home() / ".cache" / "noa-test-sdists")
FIELDS = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed", "subtests_passed", "subtests_failed")


def sdist(spec: str, dest: Path) -> Path:
    name, version = spec.split("==")
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / f"{name.replace('-', '_')}-{version}.tar.gz"
    if not archive.exists():
        archive = CACHE / f"{name}-{version}.tar.gz"
    if not archive.exists():
        subprocess.run([PY, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps", spec, "-d",
                        str(CACHE)], check=True)
        found = sorted(CACHE.glob(f"{name.replace('-', '_')}-{version}.tar.gz")) + sorted(
            CACHE.glob(f"{name}-{version}.tar.gz"))
        archive = found[0]
    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter="data")
    (tree,) = [p for p in dest.iterdir() if p.is_dir()]
    return tree


def plain(tree: Path, work: Path, extra: list[str], pythonpath: list[str]) -> tuple[float, dict[str, int], str]:
    copy = work / f"plain-{time.monotonic_ns()}"
    shutil.copytree(tree, copy, symlinks=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(work / "home"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(copy / p) for p in pythonpath)
    t0 = time.perf_counter()
    proc = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra], cwd=copy, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    shutil.rmtree(copy, ignore_errors=True)
    counts = parse_pytest_summary(proc.stdout)
    return seconds, {f: getattr(counts, f) for f in FIELDS}, counts.summary_line


def noa(tree: Path, work: Path, hive_db: Path, shards: int) -> tuple[float, dict[str, int], str, dict]:
    ctx = SwarmContext(work_parent=work / "noa", limits=ExecLimits(wall_seconds=1800, cpu_seconds=1800),
                       hive=open_hive(hive_db), shards=shards, project=tree.name)
    t0 = time.perf_counter()
    result = PythonToolchain().run_tests(tree, ctx)
    seconds = time.perf_counter() - t0
    assert not result.cached, "the bench must measure real runs"
    c = result.counts
    assert c is not None, result.one_line
    info = {"plan": result.data["plan"]["basis"], "collection_reused": result.data["collection_reused"],
            "confirmed_by_whole_run": bool(result.data["confirmed_shards"]),
            "collect_s": result.data["collect_seconds"],
            "shards_s": [s["seconds"] for s in result.data["shards"]],
            "shard_files": [len(s["files"]) for s in result.data["plan"]["shards"]],
            "rerun": bool(result.data["rerun"])}
    return seconds, {f: getattr(c, f) for f in FIELDS}, c.summary_line, info


def touch(tree: Path, round_no: int) -> None:
    """A code change: one test file gets a different comment (content hash changes, layout does not)."""
    target = sorted((tree / "tests").rglob("test_*.py"))[0]
    lines = target.read_text().splitlines()
    lines = [ln for ln in lines if not ln.startswith("# noa-bench round")]
    target.write_text("\n".join([*lines, f"# noa-bench round {round_no}"]) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sdist", default="click==8.5.1")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        import xdist  # noqa: F401
    except ImportError:
        raise SystemExit("pytest-xdist is not installed (it is in the 'test' extra): "
                         "pip install pytest-xdist") from None

    with tempfile.TemporaryDirectory(prefix="noa-bench-swarm-") as tmp:
        work = Path(tmp)
        tree = sdist(args.sdist, work / "src")
        pythonpath = suggest_pythonpath(tree)
        hive_db = work / "registry.db"
        print(f"suite: {args.sdist} ({tree.name}), pythonpath {pythonpath or '-'}, {os.cpu_count()} cores, "
              f"load {os.getloadavg()[0]:.1f}", file=sys.stderr)

        cold_s, cold_counts, cold_line, cold_info = noa(tree, work, hive_db, args.shards)
        print(f"NOA cold: {cold_s:.1f} s {cold_info}", file=sys.stderr)
        times: dict[str, list[float]] = {"plain": [], "xdist": [], "noa": []}
        counts: dict[str, dict[str, int]] = {"noa cold": cold_counts}
        lines: dict[str, str] = {"noa cold": cold_line}
        infos = []
        disagreements: list[str] = []
        for r in range(args.rounds):
            touch(tree, r)
            s, c, line = plain(tree, work, [], pythonpath)
            times["plain"].append(s)
            counts["plain"], lines["plain"] = c, line
            s, c, line = plain(tree, work, ["-n", str(args.shards)], pythonpath)
            times["xdist"].append(s)
            counts["xdist"], lines["xdist"] = c, line
            s, c, line, info = noa(tree, work, hive_db, args.shards)
            times["noa"].append(s)
            counts["noa"], lines["noa"] = c, line
            infos.append(info)
            if counts["noa"] != counts["plain"]:
                disagreements.append(f"round {r + 1}: plain {lines['plain']!r} vs NOA {lines['noa']!r}")
            print(f"round {r + 1}: plain {times['plain'][-1]:.1f} s, xdist {times['xdist'][-1]:.1f} s, "
                  f"NOA {times['noa'][-1]:.1f} s {info}", file=sys.stderr)

    med = {k: statistics.median(v) for k, v in times.items()}
    agree = not disagreements and counts["plain"] == counts["noa cold"]
    doc = {
        "suite": args.sdist, "shards": args.shards, "rounds": args.rounds, "cores": os.cpu_count(),
        "median_seconds": {k: round(v, 2) for k, v in med.items()}, "noa_cold_seconds": round(cold_s, 2),
        "all_seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "ratios": {"noa/plain": round(med["noa"] / med["plain"], 3), "noa/xdist": round(med["noa"] / med["xdist"], 3),
                   "xdist/plain": round(med["xdist"] / med["plain"], 3),
                   "noa_cold/plain": round(cold_s / med["plain"], 3)},
        "counts": counts, "summary_lines": lines, "counts_agree_noa_plain": agree,
        "counts_agree_xdist_plain": counts["xdist"] == counts["plain"], "noa_rounds": infos, "cold": cold_info,
        "disagreements": disagreements,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"\n{args.sdist}: {args.rounds} rounds, median wall seconds ({os.cpu_count()} cores)")
        print(f"  plain pytest            {med['plain']:7.2f}")
        print(f"  pytest -n {args.shards} (xdist)     {med['xdist']:7.2f}   "
              f"xdist/plain {doc['ratios']['xdist/plain']:.2f}")
        print(f"  NOA {args.shards} shards (isolated) {med['noa']:7.2f}   NOA/plain {doc['ratios']['noa/plain']:.2f}   "
              f"NOA/xdist {doc['ratios']['noa/xdist']:.2f}")
        print(f"  NOA cold (collect+plan) {cold_s:7.2f}   cold/plain {doc['ratios']['noa_cold/plain']:.2f}")
        print(f"counts: plain {lines['plain']!r}")
        print(f"        xdist {lines['xdist']!r}")
        print(f"        NOA   {lines['noa']!r}")
        print(f"        agree in every round (NOA vs plain, outcomes): {agree}; "
              f"xdist vs plain: {doc['counts_agree_xdist_plain']}")
        confirmed = sum(1 for i in [cold_info, *infos] if i["confirmed_by_whole_run"])
        print(f"NOA runs whose shard failures were confirmed by a whole run: {confirmed} of {len(infos) + 1}")
        for d in disagreements:
            print("  DISAGREE " + d)
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
