#!/usr/bin/env python
"""Time NOA's GitHub webhook (signature check, delivery-id claim, run_deployment) against a
plain ``run_deployment`` call, on one real Prefect server (the test harness, SQLite).

Timed, median of ``--repeat`` requests each:

* NOA new delivery: ``POST /webhooks/github`` (uvicorn on loopback) with a signed ``push``
  -> 202 with the flow run id (HMAC check, parse, claim in the registry DB, run created);
* plain: ``arun_deployment(name, parameters, timeout=0)`` from a client: what the
  webhook does for a new delivery, without the webhook;
* NOA replayed delivery -> 200 with the first run's id (no Prefect call);
* bad signature -> 401.

GitHub waits 10 s for an answer before it marks a delivery failed; the figures are far below.
Usage: bench/bench_webhook.py [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    import httpx
    import uvicorn
    from fastapi import FastAPI
    from prefect.deployments.flow_runs import arun_deployment
    from prefect.runner import Runner
    from prefect.testing.utilities import prefect_test_harness

    from deployments.cicd import FLOW_NAME, add_cicd_deployment
    from noa_core.server.github_webhook import (
        DeploymentStarter,
        WebhookConfig,
        github_webhook_router,
    )
    from noa_core.storage.database import make_engine
    from noa_core.webhooks.deliveries import DeliveryStore
    from noa_core.webhooks.github import sign

    secret = "bench-secret"
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        home = Path(tmp)
        name = f"cicd-bench-{uuid.uuid4().hex[:6]}"
        asyncio.run(add_cicd_deployment(Runner(name="bench"), name=name, home=home))
        ref = f"{FLOW_NAME}/{name}"
        store = DeliveryStore(make_engine(home / "registry.db"))
        app = FastAPI()
        app.include_router(github_webhook_router(WebhookConfig(secret=secret, home=str(home)),
                                                 DeploymentStarter(ref), store))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=contextvars.copy_context().run, args=(server.run,), daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/webhooks/github"

        def payload(i: int) -> bytes:
            sha = uuid.uuid4().hex + uuid.uuid4().hex[:8]
            return json.dumps({"ref": "refs/heads/main", "after": sha, "deleted": False,
                               "repository": {"full_name": "octo-org/app", "clone_url": "https://github.com/octo-org/app.git"},
                               "pad": i}).encode()

        def headers(body: bytes, delivery: str, sig: str | None = None) -> dict[str, str]:
            return {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
                    "X-Hub-Signature-256": sig or sign(body, secret)}

        new, replay, bad, plain = [], [], [], []
        loop = asyncio.new_event_loop()  # the plain calls, interleaved with the webhook's (same load)
        with httpx.Client(timeout=60) as client:
            for i in range(args.repeat + 2):
                t0 = time.perf_counter()
                loop.run_until_complete(arun_deployment(
                    ref, parameters={"source": "https://github.com/octo-org/app.git",
                                     "commit": uuid.uuid4().hex + uuid.uuid4().hex[:8]}, timeout=0, as_subflow=False))
                if i >= 2:
                    plain.append(time.perf_counter() - t0)
                body, delivery = payload(i), str(uuid.uuid4())
                t0 = time.perf_counter()
                r = client.post(url, content=body, headers=headers(body, delivery))
                t1 = time.perf_counter()
                assert r.status_code == 202, r.text
                r2 = client.post(url, content=body, headers=headers(body, delivery))
                t2 = time.perf_counter()
                assert r2.status_code == 200
                r3 = client.post(url, content=body, headers=headers(body, str(uuid.uuid4()), "sha256=" + "0" * 64))
                t3 = time.perf_counter()
                assert r3.status_code == 401
                if i >= 2:  # warm-up
                    new.append(t1 - t0)
                    replay.append(t2 - t1)
                    bad.append(t3 - t2)

        loop.close()
        server.should_exit = True
        thread.join(30)
        store.engine.dispose()

    med = {k: statistics.median(v) * 1000 for k, v in
           (("new", new), ("replay", replay), ("bad", bad), ("plain", plain))}
    print(f"{'case':<44}{'median ms':>10}")
    print(f"{'NOA webhook, new delivery -> 202 + run':<44}{med['new']:>10.1f}")
    print(f"{'plain run_deployment (no webhook)':<44}{med['plain']:>10.1f}")
    print(f"{'NOA webhook, replayed delivery -> 200':<44}{med['replay']:>10.1f}")
    print(f"{'NOA webhook, bad signature -> 401':<44}{med['bad']:>10.1f}")
    print(f"ratio NOA new delivery / plain run_deployment: {med['new'] / med['plain']:.2f}x "
          f"(GitHub's delivery timeout: 10,000 ms); runs {args.repeat} each")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
