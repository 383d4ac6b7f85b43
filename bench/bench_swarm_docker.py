#!/usr/bin/env python
"""The docker pool's overhead per shard, beside the process pool's, on this machine's engine.

Two measurements, interleaved per round so the machine's load hits both alike:

1. **Per shard** (``--rounds`` x each backend): one test shard - ``python -m pytest -q`` on
   a small suite's files in a fresh work copy - run the way each pool runs it: with
   bubblewrap (the process pool's flow runs) or in a sibling container of the swarm image
   with ``--network none`` and the code read-only (the docker pool's flow runs,
   :mod:`noa_core.isolation.docker`). Also an empty command (``python -c pass``) in each:
   the pure cost of the sandbox.
2. **Per swarm run** (``--pools``, needs a Prefect test server: about a minute more): the
   Python swarm on the ``python-swarm`` process pool and on ``python-swarm-docker``
   (``run_swarm(mode="distributed")``, 2 shards, nothing reused), wall time seen by the
   master: worker pick-up, flow-run process or container, environment, collect, shards, lint.

Prints medians and the docker/process ratios. Needs ``scripts/dockerd.sh start``; builds or
reuses the swarm image (``noa docker images build --name swarm``).

Usage: bench/bench_swarm_docker.py [--rounds N] [--pools] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_swarm_support import SHARD_PROJECT, write_tree

from noa_core.config import ExecLimits
from noa_core.deploy.docker_images import DEFAULT_CACHE_DIR
from noa_core.isolation import make_work_copy, run_isolated
from noa_core.swarm.docker_image import VENV, ensure_swarm_image

SHARD_FILES = ["tests/test_many.py", "tests/test_params.py", "tests/test_fail.py"]


def _one(backend: str, image: str, tree: Path, work_parent: Path, argv: list[str]) -> tuple[float, int]:
    work = make_work_copy(tree, work_parent)
    env = {"PATH": f"{VENV}/bin:/usr/bin:/bin"} if backend == "docker" else {}
    old = os.environ.get("NOA_ISOLATION_BACKEND")
    os.environ["NOA_ISOLATION_BACKEND"] = backend
    os.environ["NOA_DOCKER_SANDBOX_IMAGE"] = image
    t0 = time.perf_counter()
    try:
        # no plugin autoload: NOA's venv (bubblewrap side) has many more pytest plugins than the image's;
        # the pools run shards in the project's own environment, where both sides load the same ones
        res = run_isolated(argv, work, ExecLimits(), env={**env, "PYTHONPATH": str(work),
                                                          "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    finally:
        if old is None:
            os.environ.pop("NOA_ISOLATION_BACKEND", None)
        else:
            os.environ["NOA_ISOLATION_BACKEND"] = old
        shutil.rmtree(work, ignore_errors=True)
    return time.perf_counter() - t0, res.returncode


def per_shard(image: str, rounds: int, scratch: Path) -> dict[str, dict[str, float]]:
    tree = write_tree(scratch / "shardme", SHARD_PROJECT)
    files = [f for f in SHARD_FILES if (tree / f).is_file()] or ["tests"]
    shard = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *files]
    empty = ["python", "-c", "pass"]
    times: dict[str, list[float]] = {k: [] for k in ("bwrap-shard", "docker-shard", "bwrap-empty", "docker-empty")}
    for r in range(rounds):
        for backend in ("bwrap", "docker"):
            s, _rc = _one(backend, image, tree, scratch, shard)
            times[f"{backend}-shard"].append(s)
            e, _ = _one(backend, image, tree, scratch, empty)
            times[f"{backend}-empty"].append(e)
        print(f"round {r + 1}: shard bwrap {times['bwrap-shard'][-1]:.2f} s, docker {times['docker-shard'][-1]:.2f} s;"
              f" empty bwrap {times['bwrap-empty'][-1]:.2f} s, docker {times['docker-empty'][-1]:.2f} s",
              file=sys.stderr)
    return {k: {"median": statistics.median(v), "min": min(v)} for k, v in times.items()}


def per_run(image: str, scratch: Path) -> dict[str, float]:
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    from deployments.swarm_docker import (
        DOCKER_POOL,
        deploy_docker_swarm,
        ensure_docker_pool,
    )
    from deployments.swarm_pools import deploy_swarms, ensure_pools, wait_for_workers
    from flows.swarm import run_swarm
    from noa_core.swarm.workers import start_workers, stop_workers

    tree = write_tree(scratch / "pool-project", SHARD_PROJECT)
    out: dict[str, float] = {}
    with prefect_test_harness(server_startup_timeout=120), \
            temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        api = str(PREFECT_API_URL.value())
        ensure_pools(["python-swarm"])
        deploy_swarms({"python": "python-swarm"})
        ensure_docker_pool()
        deploy_docker_swarm(image, scratch / "home-docker")
        state = scratch / "workers"
        start_workers(["python-swarm", DOCKER_POOL], 1, state_dir=state, query_seconds=1, die_with_parent=True,
                      env={"PREFECT_API_URL": api, "PREFECT_HOME": str(scratch / "prefect-home")})
        try:
            wait_for_workers("python-swarm", 1, timeout_s=120)
            wait_for_workers(DOCKER_POOL, 1, timeout_s=120)
            for pool_type in ("process", "docker"):
                home = scratch / f"home-{pool_type}"
                for attempt in ("first", "again"):  # the first builds the project's environment
                    t0 = time.perf_counter()
                    summary = run_swarm(project_dir=str(tree), languages=["python"], shards=2, home=str(home),
                                        mode="distributed", pool_type=pool_type, reuse=False, pickup_timeout_s=180)
                    out[f"{pool_type}-{attempt}"] = time.perf_counter() - t0
                    tests = next(r for r in summary["swarms"]["python"]["results"] if r["check"] == "tests")
                    print(f"{pool_type} pool ({attempt}): {out[f'{pool_type}-{attempt}']:.1f} s, "
                          f"{(tests.get('counts') or {}).get('passed')} passed, isolation {tests['isolation']}",
                          file=sys.stderr)
        finally:
            stop_workers(state)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pools", action="store_true", help="also time whole swarm runs on both pools")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cache = Path(os.environ.get("NOA_DOCKER_CACHE") or DEFAULT_CACHE_DIR)
    image = ensure_swarm_image(cache_dir=cache, log=lambda m: print(m, file=sys.stderr))
    print(f"swarm image {image.tag}: {image.how}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="noa-bench-swarm-docker-", dir="/var/tmp") as tmp:
        scratch = Path(tmp)
        doc: dict[str, object] = {"image": image.tag, "cores": os.cpu_count(), "rounds": args.rounds,
                                  "per_shard": per_shard(image.tag, args.rounds, scratch)}
        if args.pools:
            doc["per_run"] = per_run(image.tag, scratch)
    shard = doc["per_shard"]
    assert isinstance(shard, dict)
    doc["ratios"] = {"shard docker/bwrap": shard["docker-shard"]["median"] / shard["bwrap-shard"]["median"],
                     "empty docker/bwrap": shard["docker-empty"]["median"] / shard["bwrap-empty"]["median"]}
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"\nswarm image {image.tag}; {os.cpu_count()} cores; {args.rounds} rounds, median (min) seconds")
    for key, label in (("bwrap-shard", "shard, process pool (bubblewrap)"), ("docker-shard", "shard, docker pool"),
                       ("bwrap-empty", "empty command, bubblewrap"), ("docker-empty", "empty command, container")):
        print(f"  {label:36s} {shard[key]['median']:6.2f} ({shard[key]['min']:.2f})")
    extra = shard["docker-shard"]["median"] - shard["bwrap-shard"]["median"]
    print(f"  docker/process per shard: {doc['ratios']['shard docker/bwrap']:.2f}x (+{extra:.2f} s a shard); "
          f"sandbox alone {doc['ratios']['empty docker/bwrap']:.2f}x")
    if "per_run" in doc:
        run = doc["per_run"]
        assert isinstance(run, dict)
        print(f"  whole Python swarm run, 2 shards: process pool {run['process-again']:.1f} s "
              f"(first {run['process-first']:.1f}), docker pool {run['docker-again']:.1f} s "
              f"(first {run['docker-first']:.1f}); docker/process {run['docker-again'] / run['process-again']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
