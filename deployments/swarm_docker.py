"""The ``python-swarm-docker`` work pool: Python swarm flow runs in containers of the swarm image.

How a swarm run gets there (``noa swarm up --pools python-swarm-docker`` sets it up,
``noa swarm run --distributed --docker`` uses it):

* :func:`ensure_docker_pool` creates the pool with the ``docker`` worker type's default
  job template (the ``prefect-docker`` collection);
* :func:`deploy_docker_swarm` registers ``python_swarm/python-swarm-docker``: entrypoint
  ``flows/swarm.py:python_swarm``, pulled from the image itself (the pull step sets the
  working directory to ``/opt/noa/src``, where the image has NOA's source), with
  :func:`noa_core.swarm.docker_pool.job_variables` as defaults;
* a ``prefect worker --type docker`` (started like the process workers,
  :func:`noa_core.swarm.workers.start_workers`) starts each flow run as a container of
  the swarm image (:mod:`noa_core.swarm.docker_image`, never pulled) with the host's
  network (it talks to the Prefect API), ``NOA_HOME`` bind-mounted at the same path (hive,
  work copies, project environments), the project read-only at its own path, and the
  engine's socket;
* inside, ``NOA_ISOLATION_BACKEND=docker`` makes every isolated command of the run - the
  project environment's build, collection, each test shard, lint - a sibling container
  with ``--network none`` (:mod:`noa_core.isolation.docker`), the test runs' code
  read-only. The flow run writes its report to the hive under its flow-run id, as a
  process-pool run does, and the master reads it from there.

The flow-run container holds the engine's socket (it starts the sandboxes), so it is as
trusted as the worker; the dropped code only ever runs in the socket-less sandboxes.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from noa_core.swarm.docker_image import SRC
from noa_core.swarm.docker_pool import DOCKER_POOL, ENTRYPOINT, job_variables

__all__ = ["DOCKER_POOL", "deploy_docker_swarm", "ensure_docker_pool"]


def ensure_docker_pool(pool: str = DOCKER_POOL) -> bool:
    """Create the docker work pool when missing (``prefect work-pool create --type docker``); True if created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect_docker.worker import DockerWorker

    with get_client(sync_client=True) as client:
        try:
            existing = client.read_work_pool(pool)
        except ObjectNotFound:
            existing = None
        if existing is not None:
            if existing.type != "docker":
                from noa_core.errors import BadInput

                raise BadInput(f"work pool {pool} exists with type {existing.type}, not docker")
            return False
        try:
            client.create_work_pool(WorkPoolCreate(
                name=pool, type="docker", description="NOA ARK OS Python swarm in containers of the swarm image",
                base_job_template=DockerWorker.get_default_base_job_template()))
        except ObjectAlreadyExists:
            return False
    return True


def deploy_docker_swarm(image: str, home: Path, *, pool: str = DOCKER_POOL, database_url: str | None = None,
                        tags: Sequence[str] = ("noa", "swarm", "python", "docker")) -> str:
    """Register ``python_swarm/<pool>`` (the flow's code is the image's own); its id."""
    from prefect.client.orchestration import get_client

    from flows.swarm import python_swarm

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(python_swarm.name)
        with contextlib.redirect_stdout(sys.stderr):
            dep_id = client.create_deployment(
                flow_id=flow_id, name=pool, work_pool_name=pool, entrypoint=ENTRYPOINT, path=SRC,
                pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": SRC}}],
                job_variables=job_variables(image, home, database_url=database_url), tags=list(tags),
                parameter_openapi_schema=python_swarm.parameters.model_dump(),
                description="NOA ARK OS Python swarm in containers of the swarm image (noa swarm up)")
    return str(dep_id)
