"""Reaching a Docker Engine: its address, a connected client, its API errors on one line.

The engine is ``base_url`` (``unix:///var/run/docker.sock``, ``tcp://host:2376``), else
``DOCKER_HOST``, else the default socket. No engine answering is :class:`TargetUnavailable`.
"""

from __future__ import annotations

import os
from typing import Any

from noa_core.deploy.interface import DeployError, TargetUnavailable

DEFAULT_ENGINE = "unix:///var/run/docker.sock"


def engine_url(base_url: str | None = None) -> str:
    return base_url or os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE


def connect(base_url: str, api_version: str | None, timeout_s: float) -> Any:
    """A pinged ``docker.DockerClient``; :class:`TargetUnavailable` (``skipped: ...``) when no engine answers."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.DockerClient(base_url=base_url, version=api_version, timeout=int(timeout_s))
        client.ping()
    except (DockerException, OSError) as exc:
        raise TargetUnavailable(f"skipped: no Docker engine reachable at {base_url} ({type(exc).__name__})") from None
    return client


def api_error(what: str, exc: Exception) -> DeployError:
    text = " ".join(str(getattr(exc, "explanation", None) or exc).split())
    return DeployError(f"docker {what} failed: {text[:500]}")
