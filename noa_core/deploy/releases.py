"""Releases: building a :class:`~noa_core.deploy.interface.Release` from a project, and
the release store of each app and environment.

The store is one JSON file per app and environment under
``NOA_HOME/deploy/releases/<env>/<app>.json``: the active release with its instance, and
the history (release, outcome, time), newest last. Each release's tree is snapshotted
under ``NOA_HOME/deploy/trees/<release_id>/`` so a rollback never depends on the
original project directory. Outcomes also go to the CL tree (``record_change``, kinds
``release`` and ``rollback``) when it is available, each entry with its Prefect event
``noa.<kind>.recorded`` when a Prefect API is configured.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noa_core.deploy.interface import Instance, Release
from noa_core.manifest import NoaManifest

__all__ = ["ReleaseStore", "StoredRelease", "emit_recorded_event", "make_release", "record_in_cltree"]

_log = logging.getLogger(__name__)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def make_release(project_dir: Path, manifest: NoaManifest, home: Path, *, app: str | None = None) -> Release:
    """Snapshot ``project_dir`` and describe it as a release (``run.command`` must be set)."""
    from noa_core.isolation import make_work_copy
    from noa_core.storage.hashing import digest_tree

    project_dir = Path(project_dir).resolve()
    digest = digest_tree(project_dir)
    app = app or manifest.name
    version = manifest.version or "0"
    release_id = f"{app}-{version}-{digest.tree_hash[:8]}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    trees = Path(home).resolve() / "deploy" / "trees"
    snap = make_work_copy(project_dir, trees / release_id)
    pythonpath = os.pathsep.join(manifest.test.pythonpath)
    env = {"PYTHONPATH": pythonpath} if pythonpath else {}
    assert manifest.run.command is not None
    return Release(
        app=app, release_id=release_id, version=version, source=str(snap), content_hash=digest.tree_hash,
        command=tuple(manifest.run.command), port_env=manifest.run.port_env,
        health_path=manifest.run.health.path, health_timeout_s=manifest.run.health.timeout_s,
        health_interval_s=manifest.run.health.interval_s, env=env, created_at=_now(),
    )


@dataclass(frozen=True)
class StoredRelease:
    release: Release
    outcome: str
    at: str
    instance: Instance | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"release": self.release.as_dict(), "outcome": self.outcome, "at": self.at,
                "instance": self.instance.as_dict() if self.instance else None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StoredRelease:
        inst = d.get("instance")
        return cls(Release.from_dict(d["release"]), str(d["outcome"]), str(d.get("at", "")),
                   Instance.from_dict(inst) if inst else None)


class ReleaseStore:
    def __init__(self, home: Path, env: str, app: str) -> None:
        self.path = Path(home).resolve() / "deploy" / "releases" / env / f"{app}.json"
        self.env, self.app = env, app

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"active": None, "history": []}

    def _write(self, data: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One deploy or rollback per app and environment at a time."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def active(self) -> StoredRelease | None:
        a = self._read().get("active")
        return StoredRelease.from_dict(a) if a else None

    def history(self) -> list[StoredRelease]:
        return [StoredRelease.from_dict(h) for h in self._read().get("history", [])]

    def set_active(self, release: Release, instance: Instance, outcome: str = "promoted") -> StoredRelease:
        data = self._read()
        entry = StoredRelease(release, outcome, _now(), instance)
        data["active"] = entry.as_dict()
        data.setdefault("history", []).append({**entry.as_dict(), "instance": None})
        self._write(data)
        return entry

    def prune_trees(self, home: Path, keep: int = 5) -> list[str]:
        """Delete the tree snapshots of this app's releases except the active one and the
        newest ``keep`` good ones (rollback targets); returns the release ids pruned."""
        hist = self.history()
        active = self.active()
        good = [h.release.release_id for h in hist if h.outcome in ("promoted", "rolled_back_to")]
        wanted = set(list(dict.fromkeys(reversed(good)))[:keep])
        if active is not None:
            wanted.add(active.release.release_id)
        pruned = []
        for h in hist:
            rid = h.release.release_id
            if rid not in wanted and rid not in pruned and Path(h.release.source).exists():
                remove_tree(h.release, home)
                pruned.append(rid)
        return pruned

    def add_history(self, release: Release, outcome: str) -> None:
        data = self._read()
        data.setdefault("history", []).append(StoredRelease(release, outcome, _now()).as_dict())
        self._write(data)

    def previous_good(self) -> Release | None:
        """The newest promoted release other than the active one whose tree still exists."""
        active = self.active()
        cur = active.release.release_id if active else None
        hist = self.history()
        last_outcome = {h.release.release_id: h.outcome for h in hist}
        for h in reversed(hist):
            rid = h.release.release_id
            if h.outcome in ("promoted", "rolled_back_to") and rid != cur \
                    and last_outcome[rid] in ("promoted", "rolled_back_to") and Path(h.release.source).is_dir():
                return h.release
        return None


def record_in_cltree(home: Path, kind: str, subject: str, payload: Mapping[str, Any]) -> str:
    """Record in the CL tree; returns the entry id, or ``skipped: ...`` when unavailable.

    A recorded entry is also the Prefect event ``noa.<kind>.recorded`` (the shape of the flows'
    change-log step, :mod:`noa_core.events.recorded`) when a Prefect API is configured
    (``PREFECT_API_URL``); an event that cannot be sent is logged, never raised."""
    try:
        from noa_core.cltree import record_change
        from noa_core.config import NoaSettings
    except ImportError:
        return "skipped: CL tree not available"
    try:
        entry_id = record_change(NoaSettings(home=Path(home)), kind, subject, dict(payload)).id
    except Exception as exc:  # noqa: BLE001 - the deploy happened; the log entry is secondary
        return f"skipped: CL tree: {type(exc).__name__}: {exc}"
    emit_recorded_event(kind, subject, payload, entry_id)
    return entry_id


def emit_recorded_event(kind: str, subject: str, payload: Mapping[str, Any], entry_id: str) -> str:
    """``noa.<kind>.recorded`` to Prefect: ``ok``, ``skipped: ...`` or ``error: ...`` (logged as a warning)."""
    try:
        from noa_core.events.prefect_bridge import prefect_api_configured
        from noa_core.events.recorded import emit_recorded

        if not prefect_api_configured():
            return "skipped: no Prefect API configured (PREFECT_API_URL)"
        status = emit_recorded(kind, subject, payload, entry_id)
    except Exception as exc:  # noqa: BLE001 - the release is recorded; its notification is secondary
        status = f"error: {type(exc).__name__}"
    if status.startswith("error"):
        _log.warning("deploy: %s event for %s (CL tree entry %s) not sent: %s", kind, subject, entry_id, status)
    return status


def remove_tree(release: Release, home: Path) -> None:
    trees = Path(home).resolve() / "deploy" / "trees"
    src = Path(release.source)
    if trees in src.parents:
        shutil.rmtree(src.parent if src.parent != trees else src, ignore_errors=True)
