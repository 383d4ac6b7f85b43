"""Removing old swarm images: every ``noa/swarm:*`` and ``noa/swarm-deps:*`` tag but the ones in use.

The swarm image's tag hashes NOA's source as it is on disk (:mod:`noa_core.swarm.docker_image`),
so every edit of the checkout makes a new tag at the next build; nothing else removes the old
ones (768 MB each as listed, most of it the shared deps layer). A tag is kept when it is

* asked for (the current checkout's swarm tag and its deps tag),
* the deps image a kept swarm image was built from (its layers start with the deps image's),
* the image of any container, running or stopped (a flow run, a sandbox),
* younger than ``min_age_s`` (another ``noa swarm up`` may have just deployed it),
* refused by the engine (409: a child image, a container) - reported, never forced.

Everything else is untagged with ``docker rmi`` (its layers go when nothing else shares them).
Prefect-free; the docker SDK is the only way in to the engine.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["AUTO_PRUNE_MIN_AGE_S", "PrunedTag", "prune_old_swarm_images", "prune_swarm_images"]

#: after a build, tags younger than this stay (a concurrent `noa swarm up` may have just deployed one)
AUTO_PRUNE_MIN_AGE_S = 3600.0


@dataclass(frozen=True)
class PrunedTag:
    tag: str
    image_id: str
    action: str  # removed | kept | would remove
    reason: str = ""
    size_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"tag": self.tag, "image_id": self.image_id, "action": self.action, "reason": self.reason,
                "size_bytes": self.size_bytes}


def _created_epoch(image: Any) -> float:
    text = str(image.attrs.get("Created") or "")
    head = text.rstrip("Z").split(".")[0]  # the engine writes nanoseconds; seconds are enough
    try:
        return datetime.fromisoformat(head + "+00:00").timestamp()
    except ValueError:
        return time.time()  # unknown age: treated as new, so kept under any min_age_s


def _tags_of(client: Any, repository: str) -> list[tuple[str, Any]]:
    return [(tag, image) for image in client.images.list(name=repository) for tag in image.tags
            if tag.split(":", 1)[0] == repository]


def _layers(image: Any) -> tuple[str, ...]:
    return tuple((image.attrs.get("RootFS") or {}).get("Layers") or ())


def _base_of(image: Any, kept: list[tuple[str, tuple[str, ...]]]) -> str | None:
    """The kept image built on ``image`` (whose layers start with all of its layers), if any."""
    mine = _layers(image)
    if not mine:
        return None
    return next((tag for tag, layers in kept if len(layers) > len(mine) and layers[:len(mine)] == mine), None)


def _container_images(client: Any) -> tuple[set[str], set[str]]:
    """(tags, image ids) of every container's image, running or stopped."""
    tags: set[str] = set()
    ids: set[str] = set()
    for c in client.containers.list(all=True, ignore_removed=True):
        tags.add(str((c.attrs.get("Config") or {}).get("Image") or ""))
        ids.add(str(c.attrs.get("Image") or ""))
    return tags, ids


def prune_swarm_images(*, keep: Iterable[str], repositories: Sequence[str], client: Any, min_age_s: float = 0.0,
                       dry_run: bool = False, now: float | None = None) -> list[PrunedTag]:
    """Untag every tag of ``repositories`` (swarm images first, then their deps) not in use; one
    :class:`PrunedTag` per tag seen. ``dry_run`` removes nothing and says ``would remove``."""
    from docker.errors import APIError, ImageNotFound

    wanted = set(keep)
    used_tags, used_ids = _container_images(client)
    clock = time.time() if now is None else now
    out: list[PrunedTag] = []
    kept: list[tuple[str, tuple[str, ...]]] = []  # (tag, layers) of what stays
    for repository in repositories:  # swarm before deps: a removed swarm image frees its deps tag
        for tag, image in _tags_of(client, repository):
            size = int(image.attrs.get("Size") or 0)
            base_of = _base_of(image, kept)
            reason = ""
            if tag in wanted:
                reason = "current"
            elif tag in used_tags or image.id in used_ids:
                reason = "used by a container"
            elif base_of:
                reason = f"base of {base_of}"
            elif clock - _created_epoch(image) < min_age_s:
                reason = f"younger than {min_age_s:.0f} s"
            if reason:
                out.append(PrunedTag(tag, image.id, "kept", reason, size))
                kept.append((tag, _layers(image)))
                continue
            if dry_run:
                out.append(PrunedTag(tag, image.id, "would remove", "", size))
                continue
            try:
                client.images.remove(tag)
            except ImageNotFound:
                continue  # gone meanwhile
            except APIError as exc:
                if exc.status_code != 409:
                    raise
                out.append(PrunedTag(tag, image.id, "kept", f"engine refused: {exc.explanation or exc}"[:200], size))
                kept.append((tag, _layers(image)))
                continue
            out.append(PrunedTag(tag, image.id, "removed", "", size))
    return out


def prune_old_swarm_images(*, client: Any = None, inputs: Any = None, min_age_s: float = 0.0,
                           dry_run: bool = False) -> list[PrunedTag]:
    """:func:`prune_swarm_images` on ``noa/swarm`` and ``noa/swarm-deps``, keeping this checkout's
    current swarm and deps tags (``inputs``: a :class:`~noa_core.swarm.docker_image.SwarmImageInputs`)."""
    from noa_core.swarm.docker_image import (
        DEPS_REPOSITORY,
        REPOSITORY,
        _client,
        swarm_image_inputs,
    )

    inputs = inputs or swarm_image_inputs()
    return prune_swarm_images(keep=(inputs.tag, inputs.deps_tag), repositories=(REPOSITORY, DEPS_REPOSITORY),
                              client=_client(client), min_age_s=min_age_s, dry_run=dry_run)


def prune_after_build(*, client: Any = None, inputs: Any = None) -> str:
    """The prune a successful swarm image build ends with (tags older than
    :data:`AUTO_PRUNE_MIN_AGE_S`): one line saying what went; a failure is that line too, never raised."""
    from docker.errors import DockerException

    from noa_core.errors import NoaError

    try:
        done = prune_old_swarm_images(client=client, inputs=inputs, min_age_s=AUTO_PRUNE_MIN_AGE_S)
    except (NoaError, DockerException, OSError) as exc:
        return f"old swarm images not pruned: {type(exc).__name__}: {exc}"[:300]
    removed = [p for p in done if p.action == "removed"]
    kept = [p for p in done if p.action == "kept"]
    return f"old swarm images: {len(removed)} tags removed, {len(kept)} kept (noa docker images prune)"
