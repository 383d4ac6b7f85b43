"""The ``python-swarm-docker`` work pool's names and job variables: what a flow run in a container
of the swarm image gets (NOA_HOME and the engine's socket bind-mounted at the same paths, the
project read-only, the docker isolation backend). Pure data, no Prefect: the flows choose the
pool with it and :mod:`deployments.swarm_docker` registers the pool and deployment with it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from noa_core.isolation.docker import IMAGE_ENV, LABEL

__all__ = ["DOCKER_DEPLOYMENT", "DOCKER_POOL", "ENTRYPOINT", "docker_socket", "job_variables", "run_job_variables"]

DOCKER_POOL = "python-swarm-docker"
DOCKER_DEPLOYMENT = f"python_swarm/{DOCKER_POOL}"
ENTRYPOINT = "flows/swarm.py:python_swarm"


def docker_socket() -> str:
    """The engine's unix socket on this host (``DOCKER_HOST=unix://...``, else the default)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return host.removeprefix("unix://") if host.startswith("unix://") else "/var/run/docker.sock"


def job_variables(image: str, home: Path, *, project_dir: Path | None = None, database_url: str | None = None,
                  mem_limit: str = "4g") -> dict[str, Any]:
    """The docker worker's job variables for one flow run (or the deployment's defaults)."""
    home = Path(home).resolve()
    sock = docker_socket()
    volumes = [f"{home}:{home}:rw", f"{sock}:{sock}:rw"]
    if project_dir is not None:
        project = Path(project_dir).resolve()
        if project != home and home not in project.parents:
            volumes.append(f"{project}:{project}:ro")
    env = {"NOA_HOME": str(home), "NOA_ISOLATION_BACKEND": "docker", IMAGE_ENV: image,
           "DOCKER_HOST": f"unix://{sock}", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    if database_url:
        env["NOA_DATABASE_URL"] = database_url
    return {"image": image, "image_pull_policy": "Never", "auto_remove": True, "network_mode": "host",
            "volumes": volumes, "env": env, "labels": {LABEL: "flow-run", "noa.home": str(home)[-200:]},
            "mem_limit": mem_limit, "stream_output": True}


def run_job_variables(image: str, settings: Any, project_dir: str) -> Mapping[str, Any]:
    """Per-run job variables: the deployment's, plus this project mounted read-only."""
    return job_variables(image, settings.layout().root, project_dir=Path(project_dir),
                         database_url=settings.database_url)
