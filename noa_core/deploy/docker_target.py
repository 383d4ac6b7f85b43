"""The Docker target: each release is an image and a container, through the docker SDK.

* **image**: ``release.image`` when given; else built from the release tree - with the
  project's own ``Dockerfile`` when it has one, otherwise with one generated from
  ``noa.yaml`` (:func:`generated_dockerfile`: a Python base image, the tree copied to
  ``/app``, ``pip install .`` when there is a ``pyproject.toml``, ``CMD`` = ``run.command``).
  Images are tagged ``noa/<app>:<release id>`` and labelled with the app, release and
  content hash.
* **container**: ``noa-<release id>``, the service port (``run.port_env``, 8000 inside)
  published on ``127.0.0.1`` at a port the engine picks, restart policy ``on-failure``
  (``max_restarts``), memory and CPU limits, labels; health is an HTTP GET of the
  published port; status from the container's state and restart count.
* **absent engine**: :meth:`DockerTarget.availability` says ``skipped: no Docker engine
  reachable at <url>`` and :meth:`DockerTarget.start` raises :class:`TargetUnavailable`
  with it.

The engine is ``base_url`` (``unix:///var/run/docker.sock``, ``tcp://host:2376``), else
``DOCKER_HOST``, else the default socket. Prefect-free.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from noa_core.deploy.interface import (
    Availability,
    DeployError,
    DeployTarget,
    HealthResult,
    Instance,
    InstanceStatus,
    Release,
    TargetUnavailable,
)
from noa_core.deploy.local_target import http_health

__all__ = ["CONTAINER_PORT", "DockerTarget", "generated_dockerfile", "image_tag"]

CONTAINER_PORT = 8000
DEFAULT_BASE_IMAGE = "python:3.11-slim"
GENERATED_DOCKERFILE = "Dockerfile.noa"
_SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv", "node_modules"}
_NAME = re.compile(r"[^a-z0-9_.-]+")


def _docker_name(text: str, limit: int = 120) -> str:
    return (_NAME.sub("-", text.lower()).strip("-.") or "app")[:limit]


def image_tag(release: Release) -> str:
    return f"noa/{_docker_name(release.app, 100)}:{_docker_name(release.release_id, 120)}"


def generated_dockerfile(release: Release, *, base_image: str = DEFAULT_BASE_IMAGE, pip_install: bool = True) -> str:
    """A Dockerfile for a project without one, from its manifest's ``run`` section."""
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


def _context_tar(tree: Path, extra: Mapping[str, str]) -> io.BytesIO:
    """The build context: the tree (no VCS or cache dirs, no links leaving it) plus ``extra`` files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for root, dirs, files in os.walk(tree):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not os.path.islink(os.path.join(root, d)))
            for name in sorted(files):
                path = Path(root) / name
                if path.is_symlink() or not path.is_file():
                    continue
                tar.add(str(path), arcname=str(path.relative_to(tree)), recursive=False)
        for name, text in extra.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


class DockerTarget(DeployTarget):
    """Releases as containers on one Docker Engine."""

    name: ClassVar[str] = "docker"

    def __init__(self, *, base_url: str | None = None, api_version: str | None = None, publish_host: str = "127.0.0.1",
                 max_restarts: int = 3, memory_bytes: int | None = 1024 * 1024 * 1024, cpus: float | None = 1.0,
                 base_image: str = DEFAULT_BASE_IMAGE, timeout_s: float = 120.0, client: Any = None) -> None:
        self.base_url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self.api_version = api_version
        self.publish_host = publish_host
        self.max_restarts = max_restarts
        self.memory_bytes = memory_bytes
        self.cpus = cpus
        self.base_image = base_image
        self.timeout_s = timeout_s
        self._client = client
        self._skip: str | None = None

    # ----------------------------------------------------------------- engine
    @property
    def client(self) -> Any:
        """The ``docker.DockerClient``; :class:`TargetUnavailable` when no engine answers."""
        if self._client is None:
            if self._skip:
                raise TargetUnavailable(self._skip)
            import docker
            from docker.errors import DockerException

            try:
                client = docker.DockerClient(base_url=self.base_url, version=self.api_version,
                                             timeout=int(self.timeout_s))
                client.ping()
            except (DockerException, OSError) as exc:
                self._skip = f"skipped: no Docker engine reachable at {self.base_url} ({type(exc).__name__})"
                raise TargetUnavailable(self._skip) from None
            self._client = client
        return self._client

    def availability(self) -> Availability:
        try:
            _ = self.client
        except TargetUnavailable as exc:
            return Availability("skipped", str(exc))
        return Availability("ok")

    def _api_error(self, what: str, exc: Exception) -> DeployError:
        text = " ".join(str(getattr(exc, "explanation", None) or exc).split())
        return DeployError(f"docker {what} failed: {text[:500]}")

    # ----------------------------------------------------------------- image
    def image_for(self, release: Release) -> str:
        """``release.image``, or the image built from ``release.source`` (returns its tag)."""
        if release.image:
            return release.image
        from docker.errors import APIError, BuildError

        tree = Path(release.source)
        if not tree.is_dir():
            raise DeployError(f"{release.app}: release tree {tree} does not exist")
        tag = image_tag(release)
        own = (tree / "Dockerfile").is_file()
        extra = {} if own else {GENERATED_DOCKERFILE: generated_dockerfile(release, base_image=self.base_image)}
        labels = {"noa.app": release.app, "noa.release": release.release_id, "noa.content-hash": release.content_hash}
        try:
            self.client.images.build(fileobj=_context_tar(tree, extra), custom_context=True,
                                     dockerfile="Dockerfile" if own else GENERATED_DOCKERFILE, tag=tag,
                                     labels=labels, rm=True, forcerm=True, pull=False, timeout=int(self.timeout_s))
        except BuildError as exc:
            raise DeployError(f"docker build of {tag} failed: {' '.join(str(exc.msg).split())[:500]}") from None
        except APIError as exc:
            raise self._api_error(f"build of {tag}", exc) from None
        return tag

    # ----------------------------------------------------------------- DeployTarget
    def start(self, release: Release) -> Instance:
        from docker.errors import APIError

        image = self.image_for(release)
        name = f"noa-{_docker_name(release.release_id, 100)}"
        port_key = f"{CONTAINER_PORT}/tcp"
        kwargs: dict[str, Any] = {
            "image": image, "name": name, "detach": True,
            "environment": {**dict(release.env), release.port_env: str(CONTAINER_PORT)},
            "ports": {port_key: (self.publish_host, None)},
            "labels": {"noa.app": release.app, "noa.release": release.release_id, "noa.target": "docker"},
            "restart_policy": {"Name": "on-failure", "MaximumRetryCount": self.max_restarts},
        }
        if self.memory_bytes:
            kwargs["mem_limit"] = self.memory_bytes
        if self.cpus:
            kwargs["nano_cpus"] = int(self.cpus * 1e9)
        try:
            container = self.client.containers.run(**kwargs)
            container.reload()
        except APIError as exc:
            raise self._api_error(f"run of {image}", exc) from None
        bindings = ((container.attrs.get("NetworkSettings") or {}).get("Ports") or {}).get(port_key) or []
        if not bindings or not str(bindings[0].get("HostPort", "")).isdigit():
            raise DeployError(f"docker published no host port for {name} ({port_key})")
        host = bindings[0].get("HostIp") or self.publish_host
        host = self.publish_host if host in ("0.0.0.0", "::", "") else host
        return Instance(app=release.app, release_id=release.release_id, target=self.name,
                        instance_id=str(container.id), host=host, port=int(bindings[0]["HostPort"]),
                        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        data={"container": name, "image": image, "health_path": release.health_path,
                              "health_timeout_s": release.health_timeout_s, "engine": self.base_url})

    def health(self, instance: Instance, *, timeout_s: float | None = None) -> HealthResult:
        t = timeout_s if timeout_s is not None else float(instance.data.get("health_timeout_s", 2.0))
        return http_health(instance.host, instance.port, str(instance.data.get("health_path", "/health")), t)

    def status(self, instance: Instance) -> InstanceStatus:
        from docker.errors import APIError, NotFound

        try:
            attrs = self.client.api.inspect_container(instance.instance_id)
        except NotFound:
            return InstanceStatus("stopped", reason="container is gone")
        except APIError as exc:
            return InstanceStatus("unknown", reason=str(self._api_error("inspect", exc)))
        state = attrs.get("State") or {}
        restarts = int(attrs.get("RestartCount") or 0)
        exit_code = state.get("ExitCode")
        status = str(state.get("Status", ""))
        if state.get("Restarting") or status == "restarting":
            return InstanceStatus("restarting", restarts, exit_code, "restarting after a crash")
        if status == "running":
            return InstanceStatus("running", restarts)
        if status == "created":
            return InstanceStatus("starting", restarts)
        if status in ("exited", "dead"):
            if exit_code not in (0, None) or state.get("OOMKilled"):
                why = "killed for memory (OOM)" if state.get("OOMKilled") else f"exit code {exit_code}"
                return InstanceStatus("crashed", restarts, exit_code, f"{why} after {restarts} restart(s)")
            return InstanceStatus("stopped", restarts, exit_code, "exited")
        return InstanceStatus("unknown", restarts, exit_code, f"docker state {status!r}")

    def stop(self, instance: Instance, *, drain_timeout_s: float = 10.0) -> None:
        from docker.errors import APIError, NotFound

        try:
            self.client.api.stop(instance.instance_id, timeout=max(1, round(drain_timeout_s)))
        except NotFound:
            return
        except APIError as exc:
            if getattr(exc, "status_code", None) != 304:  # 304: already stopped
                raise self._api_error("stop", exc) from None
        try:
            self.client.api.remove_container(instance.instance_id, v=True)
        except NotFound:
            pass
        except APIError as exc:
            raise self._api_error("remove", exc) from None
