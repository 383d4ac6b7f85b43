"""The ``docker`` isolation backend: one untrusted command in its own container.

:func:`noa_core.isolation.run_isolated` hands a command here when
``NOA_ISOLATION_BACKEND=docker`` - what a swarm flow run in the ``python-swarm-docker``
work pool has set, since bubblewrap does not run inside an unprivileged container. The
command gets a *sibling* container (same engine, through the docker SDK) of the image
named by ``NOA_DOCKER_SANDBOX_IMAGE`` (the swarm image the flow run itself runs in, so
every interpreter and tool path means the same thing), with:

* ``--network none``, a read-only root file system, all capabilities dropped,
  ``no-new-privileges``, a private tmpfs on ``/tmp`` (``HOME`` lives there), memory,
  pids, CPU-time and file-size limits from :class:`~noa_core.config.ExecLimits`, and the
  wall-clock limit (the container is killed);
* the work directory bind-mounted at its own path - **read-only for a test run** (a
  command that carries NOA's swarm report variable: a test shard, a collection or a
  re-run), where only the report file NOA's pytest plugin writes is writable; read-write
  otherwise (a project environment being built needs to write it);
* each ``readonly_paths`` entry bind-mounted read-only at its own path - inside a flow-run
  container only those under ``NOA_DOCKER_HOST_PATHS`` (its own bind mounts: NOA_HOME, the
  project); the others are the image's files, the same in the sandbox. Nothing else of
  the host is visible.

Bind-mount sources are paths on the engine's host: the flow-run container must see
``NOA_HOME`` at the same path as the host (the docker pool's job variables do that).
Containers are labelled ``noa.swarm=sandbox`` and removed when the command ends.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from noa_core.config import ExecLimits

__all__ = ["HOST_PATHS_ENV", "IMAGE_ENV", "LABEL", "REPORT_ENV", "run_in_container", "sandbox_containers"]

IMAGE_ENV = "NOA_DOCKER_SANDBOX_IMAGE"
HOST_PATHS_ENV = "NOA_DOCKER_HOST_PATHS"  # inside a flow-run container: its bind mounts (host paths)
REPORT_ENV = "NOA_SWARM_REPORT"  # noa_core.swarm.pytest_runs.REPORT_ENV (not imported: no cycle)
LABEL = "noa.swarm"
_PREP = 'mkdir -p "$HOME" "$TMPDIR" 2>/dev/null; exec "$@"'


def _tail(path: Path, chars: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - chars * 4))
            return fh.read().decode(errors="replace")[-chars:]
    except OSError:
        return ""


def _host_paths() -> tuple[str, ...] | None:
    """Where this process's paths are also the engine host's (``NOA_DOCKER_HOST_PATHS``), or
    None: everything is (this process runs on the host)."""
    raw = os.environ.get(HOST_PATHS_ENV, "").strip()
    return tuple(os.path.realpath(p) for p in raw.split(os.pathsep) if p) if raw else None


def _on_host(path: str, shared: tuple[str, ...] | None) -> bool:
    return shared is None or any(path == s or path.startswith(s.rstrip("/") + "/") for s in shared)


def _mounts(workdir: Path, readonly_paths: Iterable[str | os.PathLike[str]], report: str | None) -> dict[str, Any]:
    """Bind mounts (host path -> same path). A read-only path outside the host-shared places
    (inside a flow-run container: its image's own files, e.g. NOA's venv) is not mounted: the
    sandbox runs the same image, where that path holds the same thing."""
    shared = _host_paths()
    volumes: dict[str, Any] = {str(workdir): {"bind": str(workdir), "mode": "ro" if report else "rw"}}
    if report:
        target = workdir / report
        if not target.exists():
            target.touch()
        os.chmod(target, 0o666)
        volumes[str(target)] = {"bind": str(target), "mode": "rw"}
    for p in readonly_paths:
        real = os.path.realpath(p)
        if os.path.exists(real) and real not in volumes and _on_host(real, shared):
            volumes[real] = {"bind": real, "mode": "ro"}
    return volumes


def run_in_container(argv: Sequence[str], workdir: Path, limits: ExecLimits, *, env: Mapping[str, str],
                     readonly_paths: Iterable[str | os.PathLike[str]] = (), stdout_path: Path | None = None,
                     merge_stderr: bool = False, client: Any = None, image: str | None = None) -> Any:
    """Run ``argv`` in a network-less container (see the module docstring); an ``ExecResult``."""
    import requests
    from docker.errors import DockerException
    from docker.types import Ulimit

    from noa_core.isolation.result import ExecResult, IsolationUnavailable

    image = image or os.environ.get(IMAGE_ENV, "").strip()
    if not image:
        raise IsolationUnavailable(f"the docker isolation backend needs {IMAGE_ENV} (the image to run commands in)")
    if client is None:
        import docker

        try:
            client = docker.from_env(timeout=120)
        except DockerException as exc:
            raise IsolationUnavailable(f"docker isolation backend: no engine ({type(exc).__name__})") from None
    workdir = Path(workdir).resolve()
    report = env.get(REPORT_ENV) or None
    if report is not None and (os.path.isabs(report) or ".." in Path(report).parts):
        report = None  # not NOA's relative report file: nothing to make writable
    cpu = int(limits.cpu_seconds)
    fsize = int(limits.file_size_bytes)
    name = f"noa-sandbox-{uuid.uuid4().hex[:12]}"
    t0 = time.monotonic()
    container = client.containers.create(
        image, ["/bin/sh", "-c", _PREP, "noa-sandbox", *argv], name=name, working_dir=str(workdir),
        environment=dict(env), network_mode="none", read_only=True, cap_drop=["ALL"],
        security_opt=["no-new-privileges"], tmpfs={"/tmp": f"rw,size={int(limits.tmp_bytes)},mode=1777"},
        volumes=_mounts(workdir, readonly_paths, report), mem_limit=int(limits.memory_bytes),
        memswap_limit=int(limits.memory_bytes), pids_limit=int(limits.max_processes),
        ulimits=[Ulimit(name="cpu", soft=cpu, hard=cpu + 5), Ulimit(name="fsize", soft=fsize, hard=fsize)],
        labels={LABEL: "sandbox", "noa.workdir": str(workdir)[-200:]}, stdin_open=False)
    timed_out = False
    try:
        container.start()
        try:
            status = container.wait(timeout=float(limits.wall_seconds))
            rc = int(status.get("StatusCode", 1))
        except requests.exceptions.ConnectionError:  # the read timed out: the wall-clock limit
            timed_out = True
            container.kill()
            rc = int(container.wait(timeout=60).get("StatusCode", 137))
        seconds = time.monotonic() - t0
        out_path = Path(stdout_path) if stdout_path is not None else None
        stdout_tail = stderr_tail = ""
        chars = int(limits.output_tail_chars)
        if out_path is not None:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            with open(out_path, "wb") as fh:
                fh.writelines(container.logs(stdout=True, stderr=merge_stderr, stream=True))
            stdout_tail = _tail(out_path, chars)
        else:
            stdout_tail = container.logs(stdout=True, stderr=merge_stderr).decode(errors="replace")[-chars:]
        if not merge_stderr:
            stderr_tail = container.logs(stdout=False, stderr=True).decode(errors="replace")[-chars:]
        oom = bool((container.attrs.get("State") or {}).get("OOMKilled")) if container.reload() is None else False
    finally:
        try:
            container.remove(force=True)
        except DockerException:
            pass
    killed_by = "SIGKILL" if timed_out or oom else (None if rc <= 128 else _signal_name(rc - 128))
    applied = ("docker", "network-none", "read-only-root", f"memory={limits.memory_bytes}",
               f"pids={limits.max_processes}", f"cpu={cpu}s", "workdir-ro" if report else "workdir-rw")
    return ExecResult(returncode=rc, stdout=stdout_tail, stderr=stderr_tail, seconds=round(seconds, 3),
                      timed_out=timed_out, killed_by=killed_by, isolation="docker",  # type: ignore[arg-type]
                      limits_applied=applied)


def _signal_name(n: int) -> str | None:
    import signal

    try:
        return signal.Signals(n).name
    except ValueError:
        return None


def sandbox_containers(client: Any, *, all_states: bool = True) -> list[Any]:
    """Every container NOA's swarm made on this engine (sandboxes and flow runs)."""
    return list(client.containers.list(all=all_states, filters={"label": LABEL}))
