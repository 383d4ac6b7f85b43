"""Removing NOA's Docker objects: the deploy containers of a NOA_HOME, its older release images.

``noa deploy-supervisor stop`` removes the containers (:func:`remove_containers`); each
deploy keeps an app's newest images (:func:`prune_images`); :func:`remove_images` removes
every release image of a home. No engine reachable: nothing to remove.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from noa_core.deploy.docker_engine import api_error, connect, engine_url
from noa_core.deploy.docker_names import home_label
from noa_core.deploy.interface import TargetUnavailable


def _client(client: Any, base_url: str | None) -> Any:
    """``client``, else one connected to the engine (None when none answers)."""
    if client is not None:
        return client
    try:
        return connect(engine_url(base_url), None, 120.0)
    except TargetUnavailable:
        return None


def remove_containers(home: Path | None = None, *, client: Any = None, base_url: str | None = None,
                      grace_s: float = 3.0) -> list[str]:
    """Stop and remove NOA's deploy containers (of ``home`` only when given); their names.
    No engine: nothing to remove, ``[]``."""
    from docker.errors import APIError, NotFound

    client = _client(client, base_url)
    if client is None:
        return []
    labels = ["noa.target=docker"] + ([f"noa.home={home_label(home)}"] if home is not None else [])
    removed = []
    for c in client.containers.list(all=True, filters={"label": labels}):
        try:
            if c.status in ("running", "restarting"):
                c.stop(timeout=max(1, round(grace_s)))
            c.remove(v=True, force=True)
            removed.append(c.name)
        except NotFound:
            continue
        except APIError as exc:
            raise api_error(f"remove of {c.name}", exc) from None
    return removed


def prune_images(client: Any, app: str | None, home: Path, *, keep: int = 0) -> list[str]:
    """Remove the release images of ``app`` (every app when None) built for ``home``, except
    the newest ``keep`` and those a container still uses; the tags removed."""
    from docker.errors import APIError, NotFound

    labels = [f"noa.home={home_label(home)}"] + ([f"noa.app={app}"] if app else [])
    images = sorted(client.images.list(filters={"label": labels}), key=lambda i: str(i.attrs.get("Created", "")),
                    reverse=True)
    removed = []
    for image in images[keep:]:
        for tag in image.tags:
            try:
                client.images.remove(tag, noprune=False)
                removed.append(tag)
            except (NotFound, APIError):  # in use by a container (409), or gone already
                continue
    return removed


def remove_images(home: Path, *, client: Any = None, base_url: str | None = None) -> list[str]:
    """Remove every release image built for ``home`` that no container uses (no engine: ``[]``)."""
    client = _client(client, base_url)
    if client is None:
        return []
    return prune_images(client, None, home, keep=0)
