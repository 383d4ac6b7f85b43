#!/usr/bin/env python
"""CL tree appends: constant cost as the log grows, beside git keeping the same audit trail.

For each log size N (default 1,000 / 20,000 / 100,000 entries, filled by a bulk insert of
synthetic entries): the first append after the fill (which builds the stored Merkle
frontier from every id once, as after a migration), then ``--appends`` appends through
``record_change`` (one transaction each: lock, head, insert, frontier fold, commit, plus the
checkpoint line), and what one append would cost if it re-hashed the whole log as NOA did
before the stored frontier (read every id + RFC 6962 head).

The plain tool: git, appending the same entries as empty commits to a repository (a hash
chain too), one ``git commit --allow-empty`` per entry, as a shell script keeping an audit
trail would. Prints milliseconds per append and the ratios.

Usage: bench/bench_cltree.py [--sizes 1000,20000,100000] [--appends 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from noa_core.cltree import record_change  # noqa: E402
from noa_core.cltree.log import T, entry_ids  # noqa: E402
from noa_core.cltree.merkle import tree_head  # noqa: E402
from noa_core.config import NoaSettings  # noqa: E402
from noa_core.storage.database import open_database  # noqa: E402


def fill(engine, n: int) -> None:
    """``n`` synthetic entries (random ids; the bench measures appends, not verification)."""
    rows = [{"seq": i, "id": secrets.token_hex(32), "kind": "stage", "subject": f"s{i % 50}", "payload": "{}",
             "parents": "[]", "created_at": "2026-11-25T00:00:00.000000+00:00"} for i in range(1, n + 1)]
    with engine.begin() as conn:
        for start in range(0, n, 5000):
            conn.execute(insert(T), rows[start:start + 5000])


def noa_appends(n: int, appends: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="noa-bench-cltree-") as tmp:
        settings = NoaSettings(home=Path(tmp) / "home")
        engine = open_database(settings)
        try:
            fill(engine, n)
            t0 = time.perf_counter()
            record_change(settings, "stage", "bench", {"n": 0}, engine=engine)
            first = time.perf_counter() - t0
            times = []
            for i in range(appends):
                t0 = time.perf_counter()
                record_change(settings, "stage", f"bench{i % 7}", {"n": i, "note": "bench append"}, engine=engine)
                times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            head = tree_head(entry_ids(engine))
            rehash = time.perf_counter() - t0
            assert head["size"] == n + 1 + appends
        finally:
            engine.dispose()
    return {"size": n, "first_ms": first * 1000, "append_ms": statistics.median(times) * 1000,
            "append_p99_ms": sorted(times)[int(len(times) * 0.99) - 1] * 1000, "rehash_ms": rehash * 1000}


def git_appends(appends: int) -> float:
    with tempfile.TemporaryDirectory(prefix="noa-bench-git-") as tmp:
        env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
               "GIT_COMMITTER_EMAIL": "b@x"}
        subprocess.run(["git", "init", "-q", tmp], check=True, env=env)
        times = []
        for i in range(appends):
            t0 = time.perf_counter()
            subprocess.run(["git", "-C", tmp, "commit", "-q", "--allow-empty", "--no-verify", "-m",
                            json.dumps({"kind": "stage", "subject": f"bench{i % 7}", "n": i})], check=True, env=env)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,20000,100000")
    ap.add_argument("--appends", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results = [noa_appends(n, args.appends) for n in sizes]
    git_ms = git_appends(args.appends)
    if args.json:
        print(json.dumps({"noa": results, "git_commit_ms": git_ms, "load": os.getloadavg()}, indent=2))
        return 0
    print(f"{'entries':>9} {'append ms':>10} {'p99 ms':>8} {'first ms':>9} {'re-hash ms':>11} {'vs git':>7}")
    for r in results:
        print(f"{r['size']:>9,} {r['append_ms']:>10.2f} {r['append_p99_ms']:>8.2f} {r['first_ms']:>9.1f} "
              f"{r['rehash_ms']:>11.1f} {r['append_ms'] / git_ms:>6.2f}x")
    print(f"git commit --allow-empty: {git_ms:.2f} ms per entry (median of {args.appends})")
    growth = results[-1]["append_ms"] / results[0]["append_ms"]
    print(f"append at {results[-1]['size']:,} / at {results[0]['size']:,} entries: {growth:.2f}x; "
          f"re-hashing the whole log instead would cost {results[-1]['rehash_ms']:.0f} ms per append there")
    print(f"load average {os.getloadavg()} ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
