"""Names and labels of NOA's Docker objects: ``noa/<app>:<release id>`` images, ``noa-<release id>``
containers, the ``noa.home`` label (a hash of NOA_HOME, so no path leaks into the engine)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from noa_core.deploy.interface import Release

_NAME = re.compile(r"[^a-z0-9_.-]+")


def docker_name(text: str, limit: int = 120) -> str:
    """``text`` made a valid Docker name component (lower case, ``[a-z0-9_.-]``, at most ``limit``)."""
    return (_NAME.sub("-", text.lower()).strip("-.") or "app")[:limit]


def image_tag(release: Release, home: Path | None = None) -> str:
    """``noa/<app>:<release id>``, ``-<home hash>`` appended when built for a NOA_HOME (two homes
    deploying the same tree in the same second never share a tag)."""
    suffix = f"-{home_label(home)[:8]}" if home is not None else ""
    return f"noa/{docker_name(release.app, 100)}:{docker_name(release.release_id, 118 - len(suffix))}{suffix}"


def container_name(release: Release, home: Path | None = None) -> str:
    """``noa-<release id>``, ``-<home hash>`` appended as for :func:`image_tag`."""
    suffix = f"-{home_label(home)[:8]}" if home is not None else ""
    return f"noa-{docker_name(release.release_id, 100)}{suffix}"


def home_label(home: Path) -> str:
    """The ``noa.home`` label value of a NOA_HOME: a hash, so no path leaks into the engine."""
    return hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:16]
