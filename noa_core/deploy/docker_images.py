"""NOA's Docker base images, made without an image registry.

No registry is reachable from these machines, so a base image is a Debian root file
system made with ``debootstrap --variant=minbase`` from the Debian mirror apt already
uses, packed as a tarball and imported into the engine through the docker SDK
(``POST /images/create?fromSrc=-``, what ``docker import`` does).

* :class:`BaseImageSpec` is the recipe: suite, variant, package list and
  :data:`RECIPE_VERSION` (bump it when the way the root file system is made changes).
  Its :meth:`~BaseImageSpec.content_hash` covers exactly those inputs (not the mirror:
  any mirror of the same suite gives the same image), and the image is tagged
  ``noa/base-<name>:<hash[:16]>`` and labelled ``noa.base`` / ``noa.recipe-hash``.
* :func:`ensure_base_image` reuses the tag when the engine has it, else imports the
  cached tarball ``<cache_dir>/base-<name>-<hash[:16]>.tar`` when it exists, else runs
  debootstrap (minutes) into a temporary directory beside the cache, writes the tarball
  and imports it. The cache directory is an explicit argument (``noa docker images`` takes
  ``--cache-dir`` / ``NOA_DOCKER_CACHE``, default :data:`DEFAULT_CACHE_DIR`).
* :data:`RUNTIME` is the runtime base for dropped services: Debian's ``python3``
  (also as ``python``), ``python3-venv`` (a venv with pip, for dependencies installed
  offline from wheels) and ``ca-certificates``; user ``noa`` (uid 10001) exists.

Prefect-free; the docker SDK is the only way in to the engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noa_core.deploy.interface import DeployError

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_MIRROR",
    "RECIPE_VERSION",
    "RUNTIME",
    "SPECS",
    "BaseImage",
    "BaseImageError",
    "BaseImageSpec",
    "apt_mirror",
    "base_images",
    "ensure_base_image",
    "find_base_image",
]

#: bump when the way a root file system is made or imported changes (part of every tag's hash)
RECIPE_VERSION = 1
DEFAULT_CACHE_DIR = Path("/var/cache/noa/docker")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
APP_UID = 10001
LABEL_BASE = "noa.base"
LABEL_HASH = "noa.recipe-hash"

Log = Callable[[str], None]


class BaseImageError(DeployError):
    """A base image could not be made, cached or imported."""


@dataclass(frozen=True)
class BaseImageSpec:
    """The inputs of one base image; everything that changes its content is in the hash."""

    name: str
    suite: str = "bookworm"
    variant: str = "minbase"
    packages: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = (
        ("LANG", "C.UTF-8"),
        ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
        ("PYTHONUNBUFFERED", "1"),
    )
    recipe_version: int = RECIPE_VERSION

    def content_hash(self) -> str:
        doc = {"name": self.name, "suite": self.suite, "variant": self.variant,
               "packages": sorted(set(self.packages)), "env": [list(kv) for kv in self.env],
               "recipe_version": self.recipe_version, "app_uid": APP_UID}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    @property
    def repository(self) -> str:
        return f"noa/base-{self.name}"

    @property
    def tag(self) -> str:
        return f"{self.repository}:{self.content_hash()[:16]}"

    def tarball(self, cache_dir: Path) -> Path:
        return Path(cache_dir) / f"base-{self.name}-{self.content_hash()[:16]}.tar"


RUNTIME = BaseImageSpec("runtime", packages=("python3", "python3-venv", "python-is-python3", "ca-certificates"))
SPECS: dict[str, BaseImageSpec] = {RUNTIME.name: RUNTIME}


@dataclass(frozen=True)
class BaseImage:
    """A base image the engine has (or has just been given)."""

    name: str
    tag: str
    image_id: str
    content_hash: str
    size_bytes: int = 0
    created: str = ""
    how: str = "reused"  # reused | imported from cache | built
    seconds: float = 0.0
    steps: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tag": self.tag, "image_id": self.image_id, "content_hash": self.content_hash,
                "size_bytes": self.size_bytes, "created": self.created, "how": self.how,
                "seconds": round(self.seconds, 3), "steps": list(self.steps)}


# --------------------------------------------------------------------------- apt sources

_DEB_LINE = re.compile(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)")


def apt_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The Debian archive apt uses here (its first non-security ``deb`` source), else :data:`DEFAULT_MIRROR`."""
    files = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list")),
             *sorted((etc_apt / "sources.list.d").glob("*.sources"))]
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if path.suffix == ".sources":  # deb822 stanzas
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.MULTILINE))
                if "deb" in fields.get("Types", "").split():
                    for uri in fields.get("URIs", "").split():
                        if "security" not in uri:
                            return uri.rstrip("/")
        else:
            for line in text.splitlines():
                m = _DEB_LINE.match(line)
                if m and "security" not in m.group(1):
                    return m.group(1).rstrip("/")
    return DEFAULT_MIRROR


# --------------------------------------------------------------------------- engine side


def _client(client: Any) -> Any:
    if client is not None:
        return client
    import docker
    from docker.errors import DockerException

    try:
        c = docker.from_env(timeout=600)
        c.ping()
    except (DockerException, OSError) as exc:
        raise BaseImageError(f"no Docker engine reachable ({type(exc).__name__}); start one with scripts/dockerd.sh start") \
            from None
    return c


def _describe(spec_name: str, tag: str, image: Any, how: str, seconds: float, steps: Sequence[str]) -> BaseImage:
    attrs = image.attrs or {}
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    return BaseImage(spec_name, tag, str(image.id), str(labels.get(LABEL_HASH, "")), int(attrs.get("Size") or 0),
                     str(attrs.get("Created", ""))[:19], how, seconds, tuple(steps))


def find_base_image(spec: BaseImageSpec, client: Any = None) -> BaseImage | None:
    """The engine's image for ``spec`` (by its content-hash tag), or None."""
    from docker.errors import ImageNotFound

    c = _client(client)
    try:
        image = c.images.get(spec.tag)
    except ImageNotFound:
        return None
    return _describe(spec.name, spec.tag, image, "reused", 0.0, ())


def base_images(client: Any = None) -> list[BaseImage]:
    """Every NOA base image the engine has (any recipe hash), newest first."""
    c = _client(client)
    out = []
    for image in c.images.list(filters={"label": LABEL_BASE}):
        labels = (image.attrs.get("Config") or {}).get("Labels") or {}
        for tag in image.tags:
            if not tag.startswith("noa/base-"):  # app images inherit the label from their base
                continue
            out.append(_describe(str(labels.get(LABEL_BASE, "")), tag, image, "present", 0.0, ()))
    return sorted(out, key=lambda b: b.created, reverse=True)


def _run(argv: Sequence[str], log: Log, what: str, timeout_s: float) -> None:
    log(f"{what}: {' '.join(argv[:4])} ...")
    try:
        p = subprocess.run(list(argv), check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise BaseImageError(f"{what}: {argv[0]} is not installed (scripts/bootstrap.sh installs it as root)") from None
    except subprocess.TimeoutExpired:
        raise BaseImageError(f"{what}: timed out after {timeout_s:g}s") from None
    if p.returncode != 0:
        tail = " | ".join((p.stdout + p.stderr).strip().splitlines()[-4:])
        raise BaseImageError(f"{what} failed (exit {p.returncode}): {tail[-600:]}")


def _finish_rootfs(root: Path) -> None:
    """Small, deterministic extras: the app user, and no package caches or apt lists."""
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        d = root / sub
        if d.is_dir():
            for p in d.iterdir():
                if p.is_file() and p.name not in ("lock",):
                    p.unlink()
    with open(root / "etc" / "passwd", "a") as fh:
        fh.write(f"noa:x:{APP_UID}:{APP_UID}:NOA app user:/tmp:/usr/sbin/nologin\n")
    with open(root / "etc" / "group", "a") as fh:
        fh.write(f"noa:x:{APP_UID}:\n")


def _make_tarball(spec: BaseImageSpec, cache_dir: Path, mirror: str, log: Log, timeout_s: float) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = spec.tarball(cache_dir)
    work = Path(tempfile.mkdtemp(prefix=f".build-{spec.name}-", dir=cache_dir))
    try:
        root = work / "rootfs"
        argv = ["debootstrap", f"--variant={spec.variant}"]
        if spec.packages:
            argv.append("--include=" + ",".join(sorted(set(spec.packages))))
        argv += [spec.suite, str(root), mirror]
        _run(argv, log, f"debootstrap {spec.suite} ({spec.variant})", timeout_s)
        _finish_rootfs(root)
        tmp = work / "rootfs.tar"
        _run(["tar", "-C", str(root), "--numeric-owner", "--xattrs", "-cf", str(tmp), "."], log, "tar", timeout_s)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _import(spec: BaseImageSpec, tarball: Path, client: Any, log: Log) -> Any:
    from docker.errors import APIError

    repo, tag = spec.tag.split(":", 1)
    changes = [f"ENV {k}={v}" for k, v in spec.env] + [
        f"LABEL {LABEL_BASE}={spec.name} {LABEL_HASH}={spec.content_hash()} noa.suite={spec.suite}",
        'CMD ["python3"]',
    ]
    log(f"import {tarball.name} as {spec.tag}")
    try:
        client.api.import_image_from_file(str(tarball), repository=repo, tag=tag, changes=changes)
        return client.images.get(spec.tag)
    except APIError as exc:
        raise BaseImageError(f"docker import of {spec.tag} failed: {getattr(exc, 'explanation', exc)}") from None


def ensure_base_image(spec: BaseImageSpec = RUNTIME, *, cache_dir: Path = DEFAULT_CACHE_DIR, client: Any = None,
                      mirror: str | None = None, rebuild: bool = False, log: Log | None = None,
                      timeout_s: float = 1800.0) -> BaseImage:
    """The engine's image for ``spec``: reused, imported from the cached tarball, or built."""
    say: Log = log or (lambda _m: None)
    c = _client(client)
    t0 = time.monotonic()
    steps: list[str] = []
    if not rebuild:
        found = find_base_image(spec, c)
        if found is not None:
            return found
    tarball = spec.tarball(Path(cache_dir))
    how = "imported from cache"
    if rebuild or not tarball.is_file():
        tarball = _make_tarball(spec, Path(cache_dir), mirror or apt_mirror(), say, timeout_s)
        how = "built"
        steps.append(f"debootstrap -> {tarball} ({tarball.stat().st_size // (1024 * 1024)} MiB)")
    image = _import(spec, tarball, c, say)
    steps.append(f"imported as {spec.tag}")
    return _describe(spec.name, spec.tag, image, how, time.monotonic() - t0, steps)
