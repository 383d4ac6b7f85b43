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

from noa_core.isolation.docker import HOST_PATHS_ENV, IMAGE_ENV, LABEL

__all__ = ["DOCKER_DEPLOYMENT", "DOCKER_POOL", "ENTRYPOINT", "docker_socket", "job_variables", "run_job_variables"]

DOCKER_POOL = "python-swarm-docker"
DOCKER_DEPLOYMENT = f"python_swarm/{DOCKER_POOL}"
ENTRYPOINT = "flows/swarm.py:python_swarm"
HOST_CA = "/etc/ssl/noa-host-ca.pem"  # the host's SSL_CERT_FILE, mounted read-only


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
    shared = [str(home)]
    if project_dir is not None:
        project = Path(project_dir).resolve()
        if project != home and home not in project.parents:
            volumes.append(f"{project}:{project}:ro")
            shared.append(str(project))
    env = {"NOA_HOME": str(home), "NOA_ISOLATION_BACKEND": "docker", IMAGE_ENV: image,
           HOST_PATHS_ENV: os.pathsep.join(shared),
           "DOCKER_HOST": f"unix://{sock}", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    if database_url:
        env["NOA_DATABASE_URL"] = database_url
    ca = os.environ.get("SSL_CERT_FILE", "")
    if ca and os.path.isfile(ca):  # trust what the host trusts (PyPI through a TLS-inspecting proxy)
        volumes.append(f"{os.path.realpath(ca)}:{HOST_CA}:ro")
        env.update({"SSL_CERT_FILE": HOST_CA, "REQUESTS_CA_BUNDLE": HOST_CA, "PIP_CERT": HOST_CA})
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        if os.environ.get(var):
            env[var] = os.environ[var]
    return {"image": image, "image_pull_policy": "Never", "auto_remove": True, "network_mode": "host",
            "volumes": volumes, "env": env, "labels": {LABEL: "flow-run", "noa.home": str(home)[-200:]},
            "mem_limit": mem_limit, "stream_output": True}


def run_job_variables(image: str, settings: Any, project_dir: str) -> Mapping[str, Any]:
    """Per-run job variables: the deployment's, plus this project mounted read-only."""
    return job_variables(image, settings.layout().root, project_dir=Path(project_dir),
                         database_url=settings.database_url)
