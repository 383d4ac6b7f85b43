"""Workspace cleanup: list what can go (always), remove it only when asked.

Candidates, each with its size and the reason:

* ``snapshot``  backup snapshots the retention policy no longer keeps (then prune);
* ``drop``      received sources under ``drops/`` older than N days, the newest K always kept;
* ``sandbox``   directories under ``sandboxes/`` that are not one of the four sandboxes
                (A-D, which NOA re-creates) and were not touched for N hours;
* ``archive``   blobs in ``archive/`` that no registered duplicate points at any more
                (from the workspace registry), and stray ``.tmp`` files of crashed writers;
* ``tmp``       entries of ``tmp/`` older than N hours;
* ``pyenv``     dropped projects' environments, project builds, resolutions and wheels not
                used for N days (``NOA_HOME/pyenv`` or ``$NOA_PYENV_CACHE``; each reuse marks
                them used), and half-built ones left by a crash;
* ``results``   flow results Prefect persisted (``NOA_HOME/prefect/storage``) and cached
                analyzer results (``NOA_HOME/cache/analysis``) older than N days: the run
                history stays in Prefect, only the stored return value of an old run goes
                (a re-analysis recomputes a cached result).

:func:`plan_cleanup` only reads; :func:`apply_cleanup` removes exactly the planned items
(re-checking each still exists), so a dry run shows precisely what a real run removes.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from noa_core.backup.interface import BackupError
from noa_core.backup.maintenance import Policy, apply_policy
from noa_core.backup.service import BackendConfig, open_repository
from noa_core.config import NoaSettings
from noa_core.pyenv.provider import PyenvLayout

SANDBOX_NAMES = frozenset({"A", "B", "C", "D"})


@dataclass(frozen=True)
class CleanupItem:
    kind: str      # snapshot | drop | sandbox | archive | tmp | pyenv | results
    target: str    # path, or snapshot id
    bytes: int
    reason: str


@dataclass
class CleanupPlan:
    items: list[CleanupItem] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)   # kind -> "skipped: why"

    @property
    def bytes(self) -> int:
        return sum(i.bytes for i in self.items)

    def to_json(self) -> dict:
        return {"items": [i.__dict__ for i in self.items], "bytes": self.bytes, "skipped": self.skipped,
                "counts": {k: sum(1 for i in self.items if i.kind == k)
                           for k in ("snapshot", "drop", "sandbox", "archive", "tmp", "pyenv", "results")}}


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _ds, fs in os.walk(path) for f in fs)


def _age_s(path: Path, now: float) -> float:
    return now - path.lstat().st_mtime


def _plan_pyenv(plan: CleanupPlan, root: Path, now: float, env_days: float) -> None:
    """Environments (and the rest of the project-environment cache) unused for ``env_days``."""
    for sub, kind_name in (("envs", "environment"), ("sites", "project build"), ("resolutions", "resolution"),
                           ("wheels", "wheel")):
        folder = root / sub
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            age = _age_s(p, now)
            if p.name.startswith(".") and age > 3600:
                plan.items.append(CleanupItem("pyenv", str(p), _size(p), "left half-built by a crashed build"))
            elif not p.name.startswith(".") and age > env_days * 86400:
                plan.items.append(CleanupItem("pyenv", str(p), _size(p),
                                              f"{kind_name} not used for {age / 86400:.0f} days"))


def _plan_results(plan: CleanupPlan, folders: tuple[tuple[Path, str], ...], now: float, days: float) -> None:
    """Result files (one per persisted return value) not written for ``days``."""
    for folder, what in folders:
        if not folder.is_dir():
            continue
        for dirpath, _dirs, files in os.walk(folder):
            for name in sorted(files):
                p = Path(dirpath) / name
                age = _age_s(p, now)
                if age > days * 86400:
                    plan.items.append(CleanupItem("results", str(p), p.lstat().st_size,
                                                  f"{what} written {age / 86400:.0f} days ago"))


def plan_cleanup(settings: NoaSettings, *, policy: Policy | None = None, backend: BackendConfig | None = None,
                 drops_older_than_days: float = 30.0, keep_drops: int = 5, stale_hours: float = 24.0,
                 env_days: float = 14.0, results_days: float = 30.0) -> CleanupPlan:
    plan = CleanupPlan()
    layout = settings.layout()
    now = time.time()

    if policy is None or policy.empty() or backend is None:
        plan.skipped["snapshot"] = "skipped: no retention policy given"
    else:
        try:
            repo = open_repository(backend)
            for snap, why in apply_policy(repo.snapshots(), policy):
                if not why:
                    plan.items.append(CleanupItem("snapshot", snap.id, 0, f"not kept by the policy ({snap.time})"))
        except BackupError as exc:
            plan.skipped["snapshot"] = f"skipped: {exc.one_line()}"

    if layout.drops.is_dir():
        drops = sorted((p for p in layout.drops.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime,
                       reverse=True)
        for p in drops[keep_drops:]:
            age = _age_s(p, now)
            if age > drops_older_than_days * 86400:
                plan.items.append(CleanupItem("drop", str(p), _size(p), f"received {age / 86400:.0f} days ago"))

    if layout.sandboxes.is_dir():
        for p in sorted(layout.sandboxes.iterdir()):
            if p.name in SANDBOX_NAMES:
                continue
            age = _age_s(p, now)
            if age > stale_hours * 3600:
                plan.items.append(CleanupItem("sandbox", str(p), _size(p),
                                              f"not a sandbox (A-D), untouched for {age / 3600:.0f} h"))

    if layout.archive.is_dir():
        referenced = _referenced_archive(settings)
        if referenced is None:
            plan.skipped["archive"] = "skipped: the workspace registry is not available"
        for p in sorted(layout.archive.iterdir()):
            if not p.is_file():
                continue
            if p.name.endswith(".tmp"):
                if _age_s(p, now) > 3600:
                    plan.items.append(CleanupItem("archive", str(p), p.stat().st_size, "left by a crashed writer"))
            elif referenced is not None and p.name not in referenced:
                plan.items.append(CleanupItem("archive", str(p), p.stat().st_size,
                                              "no registered duplicate points at it"))

    if layout.tmp.is_dir():
        for p in sorted(layout.tmp.iterdir()):
            age = _age_s(p, now)
            if age > stale_hours * 3600:
                plan.items.append(CleanupItem("tmp", str(p), _size(p), f"untouched for {age / 3600:.0f} h"))
    _plan_pyenv(plan, PyenvLayout.for_home(layout.root).root, now, env_days)
    _plan_results(plan, ((layout.prefect / "storage", "flow result"),
                         (layout.root / "cache" / "analysis", "cached analyzer result")), now, results_days)
    return plan


def _referenced_archive(settings: NoaSettings) -> set[str] | None:
    try:
        from noa_core.storage.database import open_database
        from noa_core.workspace.store import referenced_archive_hashes
    except ImportError:
        return None
    if not settings.database_url and not settings.layout().registry_db.exists():
        return None  # no registry: nothing can be called orphaned
    engine = open_database(settings)
    try:
        with engine.connect() as conn:
            return referenced_archive_hashes(conn)
    except Exception:  # noqa: BLE001 - an older registry without the workspace tables
        return None
    finally:
        engine.dispose()


def apply_cleanup(settings: NoaSettings, plan: CleanupPlan, *, backend: BackendConfig | None = None,
                  prune_after: bool = True) -> dict:
    """Remove exactly the planned items; snapshots through the repository (then prune)."""
    removed: list[dict] = []
    root = settings.layout().root
    pyenv_root = PyenvLayout.for_home(root).root
    snaps = [i for i in plan.items if i.kind == "snapshot"]
    pruned = None
    if snaps and backend is not None:
        from noa_core.backup.maintenance import prune

        repo = open_repository(backend)
        with repo.lock(exclusive=True):
            for i in snaps:
                repo.backend.delete(f"snapshots/{i.target}")
                removed.append(i.__dict__)
        if prune_after:
            pruned = prune(repo).to_json()
    for i in plan.items:
        if i.kind == "snapshot":
            continue
        p = Path(i.target)
        allowed = pyenv_root if i.kind == "pyenv" else root
        if not p.resolve().is_relative_to(allowed) or not os.path.lexists(p):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
        removed.append(i.__dict__)
    return {"removed": removed, "bytes": sum(r["bytes"] for r in removed), "prune": pruned}
