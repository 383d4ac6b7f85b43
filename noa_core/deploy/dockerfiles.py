"""The Dockerfiles NOA writes for a release tree that has none, from its ``noa.yaml`` ``run`` section.

:func:`noa_dockerfile` (engines without a bridge): ``FROM`` NOA's registry-free runtime base
image, the requirements installed from wheels fetched outside the image, no network in the
build. :func:`generated_dockerfile` (bridge engines): ``python:3.11-slim`` + ``pip install .``.
Both run the service as uid 10001.
"""

from __future__ import annotations

import json

from noa_core.deploy.docker_context import WHEELS_DIR
from noa_core.deploy.interface import DeployError, Release

CONTAINER_PORT = 8000
DEFAULT_BASE_IMAGE = "python:3.11-slim"
GENERATED_DOCKERFILE = "Dockerfile.noa"
REQUIREMENTS_FILE = ".noa-requirements.txt"
APP_VENV = "/opt/app-venv"


def generated_dockerfile(release: Release, *, base_image: str = DEFAULT_BASE_IMAGE, pip_install: bool = True) -> str:
    """A Dockerfile for a project without one (bridge engines), from its manifest's ``run`` section."""
    if not release.command:
        raise DeployError(f"{release.app}: noa.yaml has no run.command, nothing to put in a container")
    lines = [f"FROM {base_image}", "WORKDIR /app", "COPY . /app",
             "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1"]
    if pip_install:
        lines.append("RUN if [ -f pyproject.toml ] || [ -f setup.py ]; then pip install --no-cache-dir .; fi")
    lines += [f"ENV {release.port_env}={CONTAINER_PORT}", f"EXPOSE {CONTAINER_PORT}",
              "RUN useradd --system --uid 10001 noa", "USER 10001",
              f"CMD {json.dumps(list(release.command))}"]
    return "\n".join(lines) + "\n"


def noa_dockerfile(release: Release, base_image: str, *, with_wheels: bool) -> str:
    """A Dockerfile FROM NOA's runtime base: the tree in /app, requirements from the fetched
    wheels into a venv (no index, no network), the run command as uid 10001."""
    if not release.command:
        raise DeployError(f"{release.app}: noa.yaml has no run.command, nothing to put in a container")
    lines = [f"FROM {base_image}", "WORKDIR /app", "COPY . /app"]
    if with_wheels:
        lines += [(f"RUN python3 -m venv {APP_VENV} && {APP_VENV}/bin/pip install --no-cache-dir --no-index "
                   f"--disable-pip-version-check --find-links /app/{WHEELS_DIR} -r /app/{REQUIREMENTS_FILE} "
                   f"&& rm -rf /app/{WHEELS_DIR}"),
                  f"ENV PATH={APP_VENV}/bin:/usr/local/bin:/usr/bin:/bin"]
    lines += ["USER 10001:10001", "ENV HOME=/tmp", f"CMD {json.dumps(list(release.command))}"]
    return "\n".join(lines) + "\n"
