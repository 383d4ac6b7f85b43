"""The language swarms' process work pools and their deployments (``noa swarm up``):
creating the pools, deploying each language's swarm flow from this repository, waiting
for workers. The names come from :mod:`noa_core.swarm.process_pools`; the docker pool is
in :mod:`deployments.swarm_docker`."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from noa_core.errors import BadInput
from noa_core.swarm.process_pools import ENTRYPOINTS
from noa_core.swarm.summary import POOLS

__all__ = ["deploy_swarms", "ensure_pools", "wait_for_workers"]

REPO_DIR = Path(__file__).resolve().parents[1]


def ensure_pools(pools: Sequence[str], *, pool_type: str = "process") -> dict[str, bool]:
    """Create the work pools that do not exist (``prefect work-pool create --type process``,
    through the client, with the worker type's default job template). ``{pool: created}``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    if pool_type != "process":
        raise BadInput("noa swarm up creates process pools; create docker or kubernetes pools with "
                       "`prefect work-pool create --type ...` and the job variables in prefect.yaml")
    out: dict[str, bool] = {}
    with get_client(sync_client=True) as client:
        for pool in pools:
            try:
                client.read_work_pool(pool)
                out[pool] = False
                continue
            except ObjectNotFound:
                pass
            try:
                client.create_work_pool(WorkPoolCreate(
                    name=pool, type="process", description=f"NOA ARK OS {pool} agents",
                    base_job_template=ProcessWorker.get_default_base_job_template()))
                out[pool] = True
            except ObjectAlreadyExists:
                out[pool] = False
    return out


def deploy_swarms(pools: Mapping[str, str] | None = None, *, source: Path = REPO_DIR) -> dict[str, str]:
    """Deploy each language's swarm flow into its pool, from this repository on local disk
    (``flow.from_source(<repo>, entrypoint=...).deploy(...)``: no image, no push).
    ``pools`` maps language -> pool (default :data:`POOLS`); returns language -> deployment id."""
    from prefect import Flow

    out: dict[str, str] = {}
    for lang, pool in (pools or POOLS).items():
        if lang not in ENTRYPOINTS:
            raise BadInput(f"unknown swarm language {lang!r}")
        remote = Flow.from_source(source=str(source), entrypoint=ENTRYPOINTS[lang])
        with contextlib.redirect_stdout(sys.stderr):  # deploy() prints a table; stdout is for results
            dep_id = remote.deploy(name=POOLS[lang], work_pool_name=pool, build=False, push=False,
                                   print_next_steps=False, tags=["noa", "swarm", lang],
                                   description=f"NOA ARK OS {lang} swarm (noa swarm up)", ignore_warnings=True)
        out[lang] = str(dep_id)
    return out


def wait_for_workers(pool: str, count: int, *, timeout_s: float = 60.0) -> int:
    """Wait until ``count`` workers of ``pool`` are online; returns how many are."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout_s
    online = 0
    with get_client(sync_client=True) as client:
        while True:
            workers = client.read_workers_for_work_pool(pool)
            online = sum(1 for w in workers if str(getattr(w.status, "value", w.status)).upper() == "ONLINE")
            if online >= count or time.monotonic() > deadline:
                return online
            time.sleep(0.5)
