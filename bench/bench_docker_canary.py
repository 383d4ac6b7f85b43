#!/usr/bin/env python
"""A Docker canary's time to promote and to roll back, beside the local target's, in one run.

For each target (``local``: supervised processes; ``docker``: real containers on a real
engine, image built from NOA's runtime base image) in a scratch NOA_HOME behind NOA's
Caddy, with a load generator in its own process sending ``--rps`` GETs to the public
endpoint:

* a stable release (first deploy: for docker this includes building its image);
* ``--rounds`` x a good release canaried through 5, 25, 50, 100 % (``--interval`` s per
  step): seconds from ``deploy`` called to promoted, the part before the first canary
  step (prepare: image build, never from the layer cache: every tree is new; start; health) and the finalise step (stable drained and
  stopped), and failed requests (goal 0);
* ``--rounds`` x a release answering 500: seconds from ``deploy`` called to rolled back,
  seconds from the first failed request to weight 0, failed requests.

Prints medians per target and the docker / local ratios. Needs a Docker engine
(``scripts/dockerd.sh start``) and NOA's base image (built on first use, minutes).

Usage: bench/bench_docker_canary.py [--rounds N] [--rps R] [--interval S] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from deploy_helpers import cleanup_home, failed_share, load, make_app

from noa_core.deploy.docker_housekeeping import remove_containers, remove_images
from noa_core.deploy.docker_images import RUNTIME, ensure_base_image
from noa_core.deploy.docker_target import DockerTarget
from noa_core.deploy.run import deploy_project


def run(home: Path, project: Path, target: str, interval: float) -> tuple[dict[str, Any], float]:
    t0 = time.monotonic()
    res = deploy_project(home, project, "production", None, None,
                         {"target": target, "interval_s": interval, "tick_s": 0.1})
    return res, time.monotonic() - t0


def bench_target(target: str, tmp: Path, rounds: int, rps: float, interval: float) -> dict[str, Any]:
    home = tmp / f"home-{target}"
    nonce = f"{time.time_ns() % 10**9:x}"  # fresh trees: no image build hits the engine's layer cache
    src = tmp / f"src-{target}"
    out: dict[str, Any] = {"target": target, "good": [], "bad": []}
    try:
        first, first_s = run(home, make_app(src, version=f"1.0-{nonce}"), target, interval)
        if first["outcome"] != "promoted":
            raise SystemExit(f"{target}: first release {first['outcome']}: {first['reason']}")
        out["first_s"] = round(first_s, 2)
        url = f"http://{first['endpoint']}/hello"
        for i in range(rounds):
            with load(url, tmp / f"{target}-good{i}.txt", rps=rps) as hits:
                res, secs = run(home, make_app(src, version=f"2.{i}-{nonce}"), target, interval)
            failed, total, _ = failed_share(hits)
            steps = {s["name"]: s["duration_s"] for s in res["steps"]}
            canary_s = sum(v for k, v in steps.items() if k.startswith("canary"))
            out["good"].append({"outcome": res["outcome"], "seconds": round(secs, 2),
                                "before_canary_s": round(secs - canary_s - steps.get("finalise", 0.0), 2),
                                "health_s": steps.get("health"), "finalise_s": steps.get("finalise"),
                                "failed": failed, "requests": total})
            print(f"{target} good {i + 1}: {res['outcome']} in {secs:.1f} s "
                  f"(before canary {out['good'][-1]['before_canary_s']} s, finalise {steps.get('finalise')} s), "
                  f"{failed}/{total} failed", file=sys.stderr)
            with load(url, tmp / f"{target}-bad{i}.txt", rps=rps) as hits:
                res, secs = run(home, make_app(src, version=f"9.{i}-{nonce}", mode="error"), target, interval)
                time.sleep(0.3)
            bad = [h for h in hits if h.failed]
            det = res.get("weight_zero_at", float("nan")) - bad[0].t if bad else float("nan")
            out["bad"].append({"outcome": res["outcome"], "seconds": round(secs, 2), "detect_s": round(det, 3),
                               "failed": len(bad), "requests": len(hits)})
            print(f"{target} bad {i + 1}: {res['outcome']} in {secs:.1f} s, first failure -> weight 0 "
                  f"{det:.2f} s, {len(bad)}/{len(hits)} failed", file=sys.stderr)
    finally:
        cleanup_home(home)
        if target == "docker":
            remove_containers(home)
            remove_images(home)
    return out


def med(rows: list[dict[str, Any]], key: str) -> float:
    vals = [float(r[key]) for r in rows if r.get(key) is not None]
    return round(statistics.median(vals), 3) if vals else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rps", type=float, default=100.0)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds per canary step")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    avail = DockerTarget().availability()
    if not avail.ok:
        print(f"bench_docker_canary: {avail.reason} (scripts/dockerd.sh start)", file=sys.stderr)
        return 1
    base = ensure_base_image(RUNTIME, log=lambda m: print(m, file=sys.stderr))
    tmp = Path(tempfile.mkdtemp(prefix="noa-bench-docker-"))
    try:
        results = {t: bench_target(t, tmp, a.rounds, a.rps, a.interval) for t in ("local", "docker")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary: dict[str, Any] = {"rounds": a.rounds, "rps": a.rps, "interval_s": a.interval, "base_image": base.tag}
    for t, r in results.items():
        summary[t] = {"first_s": r["first_s"], "promote_s": med(r["good"], "seconds"),
                      "before_canary_s": med(r["good"], "before_canary_s"), "finalise_s": med(r["good"], "finalise_s"),
                      "rollback_s": med(r["bad"], "seconds"), "detect_s": med(r["bad"], "detect_s"),
                      "good_failed": sum(g["failed"] for g in r["good"]),
                      "bad_failed_median": med(r["bad"], "failed")}
    loc, dk = summary["local"], summary["docker"]
    summary["ratio_docker_over_local"] = {k: round(dk[k] / loc[k], 2) if loc[k] else None
                                          for k in ("first_s", "promote_s", "before_canary_s", "rollback_s",
                                                    "detect_s")}
    if a.json:
        print(json.dumps({"summary": summary, "runs": results}, indent=2))
        return 0
    print(f"canary {a.rounds} rounds at {a.rps:g} rps, {a.interval:g} s per step (5,25,50,100 %); median seconds")
    print(f"{'':26}{'local':>9}{'docker':>9}{'docker/local':>14}")
    for key, label in (("first_s", "first release"), ("promote_s", "good canary -> promoted"),
                       ("before_canary_s", "  prepare+start+health"), ("finalise_s", "  finalise (stop stable)"),
                       ("rollback_s", "500 canary -> rolled back"), ("detect_s", "  1st failure -> weight 0")):
        ratio = summary["ratio_docker_over_local"].get(key)
        if ratio is None and loc[key]:
            ratio = round(dk[key] / loc[key], 2)
        print(f"{label:26}{loc[key]:>9.2f}{dk[key]:>9.2f}{(f'{ratio:.2f}x' if ratio else ''):>14}")
    print(f"failed requests: good canaries local {loc['good_failed']}, docker {dk['good_failed']}; "
          f"per 500 canary (median) local {loc['bad_failed_median']:g}, docker {dk['bad_failed_median']:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
