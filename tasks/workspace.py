"""Workspace tasks: project identity, file registry, confidence, adaptation, sandbox, feedback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from noa_core.adaptation import adapt, project_identity
from noa_core.analysis.confidence import Calibration, score_confidence
from noa_core.analysis.interface import AnalyzerResult
from noa_core.config import NoaSettings
from noa_core.intake import FetchedSource, SourceSpec
from noa_core.manifest import NoaManifest
from noa_core.sandbox.assignment import AssignmentSignals, assign_sandbox
from noa_core.sandbox.repository import WorkspaceRepo
from noa_core.sandbox.sandboxes import Sandbox
from noa_core.sandbox.trees import PROJECTS_DIR
from noa_core.storage.database import create_schema, make_engine
from noa_core.storage.registry import Registry, make_drop_id
from tasks.retry import retry_unless_bad_input


def open_registry(settings: NoaSettings) -> Registry:
    engine = make_engine(settings.database_url or settings.layout().registry_db)
    create_schema(engine)
    return Registry(engine)


def open_repo(settings: NoaSettings) -> WorkspaceRepo:
    repo = WorkspaceRepo(settings.layout())
    repo.ensure()
    return repo


def new_drop_id(spec: SourceSpec) -> str:
    name = spec.value.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip", ".git"):
        name = name.removesuffix(suffix)
    return make_drop_id(name or spec.kind)


@task(name="identify-project", cache_policy=NO_CACHE)
def identify_project_task(settings: NoaSettings, fetched: FetchedSource) -> dict[str, Any]:
    """Name the project (noa.yaml > pyproject > source) and find it among known projects."""
    # a bad noa.yaml stops the drop here: exit 2
    name, version = project_identity(fetched.tree, fetched.name_hint, fetched.spec.version)
    known = open_registry(settings).find_project(name=name, root_commits=fetched.root_commits)
    if known is not None:
        name = known.name  # a fork or mirror found by its root commit keeps the workspace's name
    return {"project": name, "version": version, "known_project_id": known.id if known else None,
            "is_update": known is not None, "root_commits": list(fetched.root_commits)}


@task(name="register-files", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1,
      retry_condition_fn=retry_unless_bad_input)
def register_files_task(settings: NoaSettings, drop_id: str, identity: dict[str, Any],
                        fetched: FetchedSource) -> dict[str, Any]:
    """Record the drop and every file in it (path, size, BLAKE3) in the workspace registry."""
    registry = open_registry(settings)
    project = registry.upsert_project(identity["project"], identity["root_commits"])
    try:
        registry.get_drop(drop_id)
    except Exception:
        registry.new_drop(fetched.spec.value if fetched.spec.kind != "pypi" else
                          f"pypi:{fetched.spec.value}=={fetched.spec.version}",
                          fetched.spec.kind, name=identity["project"], project_id=project.id, drop_id=drop_id)
    stats = registry.register_files(drop_id, fetched.tree)
    return {"files": stats.count, "bytes": stats.bytes, "tree_hash": stats.tree_hash,
            "project_id": project.id, "skipped": list(stats.skipped)}


@task(name="confidence", cache_policy=NO_CACHE)
def confidence_task(settings: NoaSettings, results: dict[str, AnalyzerResult]) -> dict[str, Any]:
    """Score 0..1 from the analyzers' signals, calibrated by past validation outcomes."""
    history = open_registry(settings).validation_history(limit=500)
    calibration = Calibration.from_outcomes(history) if history else None
    confidence = score_confidence(results, calibration)
    out = confidence.as_dict()
    out["history"] = len(history)
    out["calibration_table"] = calibration.table() if calibration else []
    return out


@task(name="adapt", cache_policy=NO_CACHE)
def adapt_task(tree: Path, project: str, results: dict[str, AnalyzerResult],
               version: str | None) -> tuple[NoaManifest, str]:
    """Write noa.yaml (how to build, test and run) unless the source brought its own."""
    return adapt(tree, project, results, version)


@task(name="assign-sandbox", cache_policy=NO_CACHE)
def assign_task(settings: NoaSettings, confidence: dict[str, Any], opinion: str | None,
                identity: dict[str, Any], manifest: NoaManifest, forced: str, tree: Path) -> dict[str, Any]:
    """A feature, B bug fix, C experimental; low confidence always C; a forced choice is honoured."""
    diff = open_repo(settings).compare_with_d(tree, identity["project"])
    if forced in ("A", "B", "C"):
        return {"sandbox": forced, "reason": f"Sandbox {forced} was asked for on the command line.",
                "changed_files": diff.files_changed if diff else None}
    signals = AssignmentSignals(project=identity["project"], known_project=diff is not None,
                                changed_files=diff.files_changed if diff else None,
                                changed_lines=diff.lines_changed if diff else None,
                                manifest_hint=manifest.sandbox)
    assignment = assign_sandbox(confidence["calibrated"], opinion, signals, threshold=settings.low_confidence)
    return {"sandbox": assignment.sandbox.value, "reason": assignment.reason,
            "changed_files": diff.files_changed if diff else None}


@task(name="land-in-sandbox", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1,
      retry_condition_fn=retry_unless_bad_input)
def land_task(settings: NoaSettings, fetched: FetchedSource, identity: dict[str, Any], sandbox: str,
              drop_id: str, source: str) -> dict[str, Any]:
    """Commit the drop under projects/<name>/ on the sandbox's branch; refresh its worktree."""
    repo = open_repo(settings)
    landed = repo.land_drop(fetched.tree, identity["project"], Sandbox.parse(sandbox),
                            f"drop {identity['project']} {identity.get('version') or ''}".strip(),
                            drop_id=drop_id, source=source)
    return {"commit": landed.commit, "branch": landed.branch, "is_update": landed.is_update,
            "files_changed": landed.files_changed, "insertions": landed.insertions,
            "deletions": landed.deletions, "unchanged": landed.unchanged,
            "tree": repo.worktree(landed.sandbox) / PROJECTS_DIR / identity["project"]}


@task(name="feedback", cache_policy=NO_CACHE)
def record_outcome_task(settings: NoaSettings, drop_id: str, confidence: dict[str, Any], tests: dict[str, Any],
                        identity: dict[str, Any], assignment: dict[str, Any],
                        landed: dict[str, Any]) -> list[dict[str, Any]]:
    """Store the validation outcome next to the raw score: it calibrates later drops."""
    registry = open_registry(settings)
    if tests["status"] in ("passed", "failed", "error", "timeout"):
        counts = {k: int(tests.get(k, 0)) for k in ("passed", "failed", "errors", "skipped")}
        registry.record_validation(drop_id, confidence["raw"], tests["status"] == "passed", counts)
    registry.finish_drop(drop_id, status="validated", sandbox=assignment["sandbox"], commit=landed["commit"],
                         confidence_raw=confidence["raw"], confidence=confidence["calibrated"])
    return confidence.get("calibration_table", [])


@task(name="mark-drop-failed", cache_policy=NO_CACHE)
def mark_drop_failed_task(settings: NoaSettings, drop_id: str, error: BaseException) -> None:
    """A drop that broke after it was registered is marked failed, never left half-done."""
    registry = open_registry(settings)
    registry.finish_drop(drop_id, status="failed")
