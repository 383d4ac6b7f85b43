"""The Docker target: each release is an image and a container, through the docker SDK.

* **image** (:meth:`DockerTarget.prepare`, before any traffic moves): ``release.image``
  when given; else built from the release tree - with the project's own ``Dockerfile``
  when it has one, otherwise with one generated from ``noa.yaml``. On an engine without a
  bridge (``network="host"``, what ``--target docker`` uses on these machines) the
  generated Dockerfile starts ``FROM`` NOA's registry-free runtime base image
  (:mod:`noa_core.deploy.docker_images`, built on first use), installs the service's
  requirements from wheels fetched outside the image (:mod:`noa_core.deploy.docker_context`)
  and runs as uid 10001; the build itself has no network. With a bridge
  (``network="bridge"``) it is the older ``python:3.11-slim`` + ``pip install .`` recipe.
  The build context never holds ``.git``, caches or secret-bearing files. Images are
  tagged ``noa/<app>:<release id>`` and labelled with the app, release and content hash.
  A failed build is an :class:`ImageBuildError` whose message ends with the build log's
  last lines.
* **container**: ``noa-<release id>``, labelled ``noa.app``, ``noa.release``, ``noa.env``,
  ``noa.colour`` (blue / green: the colour no live container of the app and environment
  has), ``noa.home`` (a hash of NOA_HOME) and ``noa.target``; restart policy
  ``on-failure`` (``max_restarts``), memory and CPU limits. With ``network="host"`` NOA
  picks a free loopback port and passes it in ``run.port_env``; with a bridge the service
  listens on 8000 inside and the engine publishes it on ``127.0.0.1``. Health is an HTTP
  GET of that port; status comes from the container's state and restart count. Stopping
  removes the container; :func:`~noa_core.deploy.docker_housekeeping.remove_containers` removes every NOA container of a home
  (``noa deploy-supervisor stop`` calls it).
* **absent engine**: :meth:`DockerTarget.availability` says ``skipped: no Docker engine
  reachable at <url>`` and :meth:`DockerTarget.start` raises :class:`TargetUnavailable`.

The engine is ``base_url``, else ``DOCKER_HOST``, else the default socket
(:mod:`noa_core.deploy.docker_engine`). Names and labels are :mod:`noa_core.deploy.docker_names`,
the generated Dockerfiles :mod:`noa_core.deploy.dockerfiles`, removing containers and images
:mod:`noa_core.deploy.docker_housekeeping`. Prefect-free.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from noa_core.deploy.docker_context import (
    WHEELS_DIR,
    context_tar,
    fetch_wheels,
    requirements_of,
)
from noa_core.deploy.docker_engine import api_error, connect, engine_url
from noa_core.deploy.docker_housekeeping import prune_images
from noa_core.deploy.docker_names import container_name, home_label, image_tag
from noa_core.deploy.dockerfiles import (
    CONTAINER_PORT,
    DEFAULT_BASE_IMAGE,
    GENERATED_DOCKERFILE,
    REQUIREMENTS_FILE,
    generated_dockerfile,
    noa_dockerfile,
)
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

__all__ = ["DockerTarget", "ImageBuildError"]

Network = Literal["bridge", "host", "auto"]


class ImageBuildError(DeployError):
    """The release's image could not be built; ``log_tail`` holds the build log's last lines."""

    def __init__(self, message: str, log_tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.log_tail = list(log_tail or [])


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _log_tail(build_log: Any, n: int = 10) -> list[str]:
    lines: list[str] = []
    for chunk in build_log or []:
        if isinstance(chunk, Mapping):
            text = str(chunk.get("stream") or chunk.get("error") or "")
        else:
            text = str(chunk)
        lines += [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    return lines[-n:]


class DockerTarget(DeployTarget):
    """Releases as containers on one Docker Engine."""

    name: ClassVar[str] = "docker"

    def __init__(self, *, base_url: str | None = None, api_version: str | None = None, publish_host: str = "127.0.0.1",
                 max_restarts: int = 3, memory_bytes: int | None = 1024 * 1024 * 1024, cpus: float | None = 1.0,
                 base_image: str | None = DEFAULT_BASE_IMAGE, timeout_s: float = 120.0, client: Any = None,
                 network: Network = "bridge", home: Path | None = None, deploy_env: str = "",
                 cache_dir: Path | None = None, log: Any = None, keep_images: int = 8) -> None:
        self.base_url = engine_url(base_url)
        self.api_version = api_version
        self.publish_host = publish_host
        self.max_restarts = max_restarts
        self.memory_bytes = memory_bytes
        self.cpus = cpus
        self.base_image = base_image  # None: NOA's runtime base image (built on first use)
        self.timeout_s = timeout_s
        self.network: Network = network
        self.home = Path(home).resolve() if home is not None else None
        self.deploy_env = deploy_env
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.log = log or (lambda _m: None)
        self.keep_images = keep_images
        self._client = client
        self._skip: str | None = None

    # ----------------------------------------------------------------- engine
    @property
    def client(self) -> Any:
        """The ``docker.DockerClient``; :class:`TargetUnavailable` when no engine answers."""
        if self._client is None:
            if self._skip:
                raise TargetUnavailable(self._skip)
            try:
                self._client = connect(self.base_url, self.api_version, self.timeout_s)
            except TargetUnavailable as exc:
                self._skip = str(exc)
                raise
        return self._client

    def availability(self) -> Availability:
        try:
            _ = self.client
        except TargetUnavailable as exc:
            return Availability("skipped", str(exc))
        return Availability("ok")

    @property
    def host_network(self) -> bool:
        """Whether containers share the host's network (``auto``: when the engine has no bridge)."""
        if self.network == "auto":
            try:
                has_bridge = bool(self.client.networks.list(names=["bridge"]))
            except TargetUnavailable:
                raise
            except Exception:  # noqa: BLE001 - an engine that cannot list networks: assume the classic bridge
                has_bridge = True
            self.network = "bridge" if has_bridge else "host"
        return self.network == "host"

    def _api_error(self, what: str, exc: Exception) -> DeployError:
        return api_error(what, exc)

    # ----------------------------------------------------------------- image
    def _base(self) -> str:
        if self.base_image:
            return self.base_image
        from noa_core.deploy.docker_images import (
            DEFAULT_CACHE_DIR,
            RUNTIME,
            ensure_base_image,
        )

        self.log(f"base image {RUNTIME.tag}: reusing, or building it once (debootstrap takes minutes)")
        self.base_image = ensure_base_image(RUNTIME, cache_dir=self.cache_dir or DEFAULT_CACHE_DIR,
                                            client=self.client, log=self.log).tag
        return self.base_image

    def image_for(self, release: Release) -> str:
        """``release.image``, or the image built from ``release.source`` (returns its tag)."""
        from docker.errors import APIError, BuildError, ImageNotFound

        if release.image:
            if not release.image.startswith("noa/") or not Path(release.source).is_dir():
                return release.image
            try:  # NOA's own image of a release: rebuilt from its tree if it was pruned
                self.client.images.get(release.image)
                return release.image
            except ImageNotFound:
                self.log(f"image {release.image} is gone; rebuilding it from the release tree")

        tree = Path(release.source)
        if not tree.is_dir():
            raise DeployError(f"{release.app}: release tree {tree} does not exist")
        tag = image_tag(release, self.home)
        own = (tree / "Dockerfile").is_file()
        extra_text: dict[str, str] = {}
        extra_files: dict[str, Path] = {}
        if not own and self.host_network:
            from noa_core.deploy.docker_images import DEFAULT_CACHE_DIR

            reqs = requirements_of(tree)
            if reqs:
                wheels = fetch_wheels(reqs, self.cache_dir or DEFAULT_CACHE_DIR, log=self.log)
                extra_files = {f"{WHEELS_DIR}/{w.name}": w for w in sorted(wheels.glob("*.whl"))}
                extra_text[REQUIREMENTS_FILE] = "\n".join(reqs) + "\n"
            extra_text[GENERATED_DOCKERFILE] = noa_dockerfile(release, self._base(), with_wheels=bool(reqs))
        elif not own:
            extra_text[GENERATED_DOCKERFILE] = generated_dockerfile(release, base_image=self._base())
        labels = {"noa.app": release.app, "noa.release": release.release_id, "noa.content-hash": release.content_hash,
                  "noa.base": ""}  # not a base image, whatever its base's labels say
        if self.home is not None:
            labels["noa.home"] = home_label(self.home)
        context, left_out = context_tar(tree, extra_text, extra_files)
        if left_out:
            self.log(f"build context: left out {len(left_out)} secret-bearing file(s): {', '.join(left_out[:5])}")
        build_kw: dict[str, Any] = {}
        if self.network != "bridge":
            build_kw["network_mode"] = "none"  # RUN steps are offline: requirements come as wheels
        self.log(f"building image {tag}")
        try:
            self.client.images.build(fileobj=context, custom_context=True,
                                     dockerfile="Dockerfile" if own else GENERATED_DOCKERFILE, tag=tag,
                                     labels=labels, rm=True, forcerm=True, pull=False, timeout=int(self.timeout_s),
                                     **build_kw)
        except BuildError as exc:
            tail = _log_tail(getattr(exc, "build_log", None))
            msg = " ".join(str(exc.msg).split())[:500]
            if tail and msg not in tail[-1]:
                tail.append(msg)
            raise ImageBuildError(f"docker build of {tag} failed: {msg}"
                                  + (f"; build log: {' | '.join(tail)}" if tail else ""), tail) from None
        except APIError as exc:
            raise self._api_error(f"build of {tag}", exc) from None
        return tag

    def prepare(self, release: Release) -> Release:
        """The release with its image built (or given): nothing runs yet, no traffic moved.
        Older images of the app in this home beyond the newest ``keep_images`` go."""
        prepared = replace(release, image=self.image_for(release))
        if self.home is not None:
            prune_images(self.client, release.app, self.home, keep=self.keep_images)
        return prepared

    # ----------------------------------------------------------------- DeployTarget
    def _colour(self, release: Release) -> str:
        """blue, unless a live container of this app, environment and home is blue."""
        filters = {"label": [f"noa.app={release.app}", f"noa.env={self.deploy_env}"]
                   + ([f"noa.home={home_label(self.home)}"] if self.home is not None else [])}
        try:
            used = {(c.labels or {}).get("noa.colour") for c in self.client.containers.list(filters=filters)}
        except TargetUnavailable:
            raise
        except Exception:  # noqa: BLE001 - an engine that cannot list: the first colour
            used = set()
        return "green" if "blue" in used else "blue"

    def _labels(self, release: Release, colour: str) -> dict[str, str]:
        labels = {"noa.app": release.app, "noa.release": release.release_id, "noa.target": "docker",
                  "noa.env": self.deploy_env, "noa.colour": colour}
        if self.home is not None:
            labels["noa.home"] = home_label(self.home)
        return labels

    def _remove_leftover(self, name: str) -> None:
        from docker.errors import APIError, NotFound

        try:
            self.client.api.remove_container(name, force=True, v=True)
        except NotFound:
            pass
        except APIError:
            pass

    def start(self, release: Release) -> Instance:
        from docker.errors import APIError

        image = self.image_for(release)
        name = container_name(release, self.home)
        colour = self._colour(release)
        kwargs: dict[str, Any] = {
            "image": image, "name": name, "detach": True, "labels": self._labels(release, colour),
            "restart_policy": {"Name": "on-failure", "MaximumRetryCount": self.max_restarts},
            "init": True,  # the engine's tini as pid 1: SIGTERM reaches the service, `docker stop` is prompt
        }
        port_key = f"{CONTAINER_PORT}/tcp"
        host_port = 0
        if self.host_network:
            host_port = _free_port(self.publish_host)
            kwargs["network_mode"] = "host"
            kwargs["environment"] = {**dict(release.env), release.port_env: str(host_port)}
            self._remove_leftover(name)  # a container a crashed deploy left under this release's name
        else:
            kwargs["environment"] = {**dict(release.env), release.port_env: str(CONTAINER_PORT)}
            kwargs["ports"] = {port_key: (self.publish_host, None)}
        if self.memory_bytes:
            kwargs["mem_limit"] = self.memory_bytes
        if self.cpus:
            kwargs["nano_cpus"] = int(self.cpus * 1e9)
        try:
            container = self.client.containers.run(**kwargs)
            container.reload()
        except APIError as exc:
            raise self._api_error(f"run of {image}", exc) from None
        if host_port:
            host, port = self.publish_host, host_port
        else:
            bindings = ((container.attrs.get("NetworkSettings") or {}).get("Ports") or {}).get(port_key) or []
            if not bindings or not str(bindings[0].get("HostPort", "")).isdigit():
                raise DeployError(f"docker published no host port for {name} ({port_key})")
            host = bindings[0].get("HostIp") or self.publish_host
            host = self.publish_host if host in ("0.0.0.0", "::", "") else host
            port = int(bindings[0]["HostPort"])
        return Instance(app=release.app, release_id=release.release_id, target=self.name,
                        instance_id=str(container.id), host=host, port=port,
                        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        data={"container": name, "image": image, "colour": colour,
                              "network": "host" if host_port else "bridge", "health_path": release.health_path,
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
            why = f"the engine restarted the container {restarts}x after it exited" if restarts else ""
            return InstanceStatus("running", restarts, None, why)
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

    def logs(self, instance: Instance, tail: int = 50) -> str:
        """The container's last output lines ("" when it is gone)."""
        from docker.errors import APIError, NotFound

        try:
            return bytes(self.client.api.logs(instance.instance_id, tail=tail)).decode(errors="replace")
        except (NotFound, APIError):
            return ""
