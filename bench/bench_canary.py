#!/usr/bin/env python
"""How fast NOA undoes a bad canary, and what a good one costs, beside Flagger's and
Argo Rollouts' documented defaults - in one run on this machine.

Setup: a scratch NOA_HOME; a stable release of a tiny HTTP service on the local target
behind NOA's Caddy (edge + router); a load generator in its own process sending GETs
at ``--rps`` to the public endpoint, one connection per request. Then, with NOA's
*default* analysis settings (noa.yaml defaults: steps 5,25,50,100, interval 30 s,
error rate > 1 %, p99 > 500 ms; tick 0.25 s, failure limit 1):

* ``--bad`` bad releases that answer 500 to every request: seconds from the first failed
  request the load generator saw to the moment the canary's weight was 0, and the
  failed requests per bad release;
* one release whose process crashes after a few requests: seconds from the crash to
  weight 0, failed requests;
* one good release promoted through every step: failed requests (goal 0). With the
  default 30 s interval this takes about 2 minutes; ``--interval S`` shortens it.

Flagger and Argo Rollouts are not run here (no cluster); their figures come from their
documented defaults / examples, scaled to the same request rate and canary weight:

* Flagger: the analysis runs every ``interval`` (docs: 1m) and rolls back after
  ``threshold`` failed checks (docs examples: 5) -> about 5 min at 5 % weight.
* Argo Rollouts: a metric without ``interval`` is measured once; the docs' background
  analysis example measures every 5m with ``failureLimit: 3`` -> the run fails on the
  4th failed measurement, about 15-20 min.

Usage: bench/bench_canary.py [--bad N] [--rps R] [--interval S] [--json]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from deploy_helpers import cleanup_home, failed_share, load, make_app

from noa_core.deploy.run import deploy_project

FLAGGER_S = 60 * 5   # interval 1m x threshold 5
ARGO_S = 5 * 60 * 4  # interval 5m, failureLimit 3 -> 4th failed measurement


DEFAULT_INTERVAL_S = 30.0  # noa.yaml's deploy.interval_s default; the bench apps' noa.yaml says so explicitly


def app(parent: Path, **kw: object) -> Path:
    return make_app(parent, interval=DEFAULT_INTERVAL_S, **kw)


def run(home: Path, project: Path, **options: object) -> dict:
    return deploy_project(home, project, "production", None, None, options)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bad", type=int, default=3, help="bad releases to roll back")
    ap.add_argument("--rps", type=float, default=100.0)
    ap.add_argument("--interval", type=float, default=None, help="canary step interval for the good release")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="noa-bench-canary-"))
    home = tmp / "home"
    out: dict = {"rps": a.rps, "bad": [], "crash": None, "good": None}
    try:
        first = run(home, app(tmp, version="1.0"))
        url = f"http://{first['endpoint']}/hello"
        for i in range(a.bad):
            with load(url, tmp / f"bad{i}.txt", rps=a.rps) as hits:
                res = run(home, app(tmp, version=f"bad{i}", mode="error"))
                time.sleep(0.5)
            bad = [h for h in hits if h.failed]
            det = res["weight_zero_at"] - bad[0].t if bad else float("nan")
            out["bad"].append({"outcome": res["outcome"], "detect_s": round(det, 3), "failed": len(bad),
                               "requests": len(hits), "weight": res["steps"][-1]["weight"]})
            print(f"bad release {i + 1}: {res['outcome']} at {res['steps'][-1]['weight']}%, "
                  f"first failed request -> weight 0 in {det:.2f} s, {len(bad)} failed of {len(hits)}",
                  file=sys.stderr)
        with load(url, tmp / "crash.txt", rps=a.rps) as hits:
            t0 = time.time()
            res = run(home, app(tmp, version="crash", mode="crash", crash_after=5))
            time.sleep(0.5)
        log = next((home / "deploy" / "logs").glob("svc-crash-*.log")).read_text()
        failed, total, _ = failed_share(hits)
        out["crash"] = {"outcome": res["outcome"], "reason": res["reason"], "failed": failed, "requests": total,
                        "deploy_s": round(time.time() - t0, 2), "exits_logged": log.count("exited with code")}
        print(f"crashing release: {res['outcome']} ({res['reason']}); {failed} failed of {total}", file=sys.stderr)
        opts = {"interval_s": a.interval} if a.interval else {}
        with load(url, tmp / "good.txt", rps=a.rps) as hits:
            t0 = time.time()
            res = run(home, app(tmp, version="good"), **opts)
        failed, total, _ = failed_share(hits)
        out["good"] = {"outcome": res["outcome"], "reason": res["reason"], "failed": failed, "requests": total,
                       "seconds": round(time.time() - t0, 1), "interval_s": a.interval or 30.0}
    finally:
        cleanup_home(home)
        shutil.rmtree(tmp, ignore_errors=True)

    dets = [b["detect_s"] for b in out["bad"]]
    fails = [b["failed"] for b in out["bad"]]
    med = statistics.median(dets)
    w = out["bad"][0]["weight"] / 100 if out["bad"] else 0.05
    out["summary"] = {
        "noa_detect_s_median": med, "noa_failed_per_bad_release_median": statistics.median(fails),
        "flagger_detect_s": FLAGGER_S, "argo_detect_s": ARGO_S,
        "flagger_failed_est": round(a.rps * w * FLAGGER_S), "argo_failed_est": round(a.rps * w * ARGO_S),
        "good_release_failed": out["good"]["failed"],
    }
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    s = out["summary"]
    print(f"\nbad canary (500 on every request) at {a.rps:g} req/s, canary weight {w:.0%}, NOA default settings")
    print(f"{'':28}{'to weight 0':>14}{'failed requests':>18}{'vs NOA':>10}")
    print(f"{'NOA (median of ' + str(len(dets)) + ')':28}{med:>12.2f} s{s['noa_failed_per_bad_release_median']:>18g}"
          f"{'1.0x':>10}")
    print(f"{'Flagger (1m x threshold 5)':28}{FLAGGER_S:>12d} s{s['flagger_failed_est']:>18d}"
          f"{FLAGGER_S / med:>9.0f}x")
    print(f"{'Argo (5m, failureLimit 3)':28}{ARGO_S:>12d} s{s['argo_failed_est']:>18d}{ARGO_S / med:>9.0f}x")
    c = out["crash"]
    print(f"\ncrashing canary: {c['outcome']} - {c['reason']}; {c['failed']} failed of {c['requests']} requests")
    g = out["good"]
    print(f"good release, steps 5,25,50,100 x {g['interval_s']:g} s: {g['outcome']} in {g['seconds']} s, "
          f"{g['failed']} failed of {g['requests']} requests ({g['reason']})")
    print(f"goal: rolled back within 10 s -> {'met' if med < 10 else 'NOT met'}; "
          f"good release promoted with zero failed -> "
          f"{'met' if g['failed'] == 0 and g['outcome'] == 'promoted' else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
