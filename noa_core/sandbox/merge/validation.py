"""Validating an integration candidate: each changed project's own tests, isolated, on the candidate's tree.

:func:`affected_projects`, :func:`read_test_plan`, :func:`validate_project` run each changed
project's tests (``noa.yaml`` ``test.command``) isolated, on the candidate commit's
``projects/<name>`` checked out into a temporary directory through a throw-away index
(``read-tree`` + ``checkout-index``; the repository's ``info/attributes`` keeps any
dropped ``.gitattributes`` from naming a filter).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from noa_core.config import ExecLimits
from noa_core.errors import ManifestError, NoaError
from noa_core.manifest import (
    MANIFEST_FILENAME,
    MAX_MANIFEST_BYTES,
    NoaManifest,
    PythonEnvConfig,
    parse_manifest,
)
from noa_core.pyenv.provider import prepare_python_env
from noa_core.sandbox.git import Git
from noa_core.sandbox.trees import PROJECTS_DIR
from noa_core.validation.runner import (
    is_python_command,
    run_test_suite,
    suggest_pythonpath,
)

Status = Literal["passed", "failed", "error", "timeout", "no tests", "skipped", "unknown"]
# unknown (no environment could be made for the project): the integration cannot be shown to pass
_FAILING: tuple[str, ...] = ("failed", "error", "timeout", "unknown")


def project_trees(git: Git, commit: str) -> dict[str, str]:
    """``name -> tree id`` of every directory under ``projects/`` at ``commit``."""
    proc = git.run("ls-tree", "-z", f"{commit}:{PROJECTS_DIR}", check=False)
    if proc.returncode != 0:
        return {}
    out = {}
    for record in filter(None, proc.stdout.split(b"\0")):
        meta, _, name = record.partition(b"\t")
        _mode, kind, sha = meta.split(b" ")
        if kind == b"tree":
            out[name.decode("utf-8", "surrogateescape")] = sha.decode()
    return out


def affected_projects(git: Git, base: str, commit: str) -> tuple[list[str], list[str]]:
    """(projects whose tree differs between ``base`` and ``commit`` and exist at ``commit``, removed ones)."""
    before, after = project_trees(git, base), project_trees(git, commit)
    changed = sorted(p for p, tree in after.items() if before.get(p) != tree)
    removed = sorted(p for p in before if p not in after)
    return changed, removed


@dataclass(frozen=True)
class TestPlan:
    """How one project is tested, read from its ``noa.yaml`` at the candidate commit."""

    __test__ = False

    project: str
    tree: str                                  # the project's tree id (the test-result cache key)
    command: tuple[str, ...] | None
    pythonpath: tuple[str, ...] = ()
    timeout_s: float = 600.0
    skip_reason: str | None = None
    error: str | None = None                   # an unreadable noa.yaml: the project fails validation
    python_env: dict[str, Any] | None = None   # noa.yaml's python_env section


def _read_blob(git: Git, spec: str, limit: int) -> bytes | None:
    proc = git.run("cat-file", "-s", spec, check=False)
    if proc.returncode != 0:
        return None
    if int(proc.stdout.strip() or 0) > limit:
        raise ManifestError(f"{spec.split(':', 1)[-1]}: larger than {limit} bytes")
    return git.run("cat-file", "blob", spec).stdout


def read_test_plan(git: Git, commit: str, project: str) -> TestPlan:
    tree = git.out("rev-parse", f"{commit}:{PROJECTS_DIR}/{project}")
    origin = f"{PROJECTS_DIR}/{project}/{MANIFEST_FILENAME}"
    try:
        raw = _read_blob(git, f"{commit}:{origin}", MAX_MANIFEST_BYTES)
        if raw is None:
            return TestPlan(project, tree, None, skip_reason=f"no {MANIFEST_FILENAME}: no test command known")
        manifest: NoaManifest = parse_manifest(raw.decode("utf-8"), origin=origin)
    except (ManifestError, UnicodeDecodeError) as exc:
        message = exc.one_line() if isinstance(exc, NoaError) else f"{origin}: not UTF-8"
        return TestPlan(project, tree, None, error=message)
    if not manifest.test.command:
        return TestPlan(project, tree, None, skip_reason=f"{MANIFEST_FILENAME} has no test.command")
    return TestPlan(project, tree, tuple(manifest.test.command), tuple(manifest.test.pythonpath),
                    manifest.test.timeout_s, python_env=manifest.python_env.model_dump(mode="json"))


@dataclass(frozen=True)
class ProjectValidation:
    project: str
    tree: str
    status: Status
    reason: str = ""
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    summary_line: str = ""
    seconds: float = 0.0
    command: tuple[str, ...] = ()
    isolation: str = ""
    log: str = ""
    cached: bool = False              # reused from a run on the same project tree

    @property
    def ok(self) -> bool:
        return self.status not in _FAILING

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["command"] = list(self.command)
        out["ok"] = self.ok
        return out


def export_project(git: Git, commit: str, project: str, dest: Path) -> Path:
    """Write ``commit:projects/<project>`` into the new directory ``dest`` (regular files only)."""
    dest.mkdir(parents=True, exist_ok=False)
    index = dest.parent / f".index-{uuid.uuid4().hex}"
    env = {"GIT_INDEX_FILE": os.fspath(index)}
    try:
        git.run("read-tree", f"{commit}:{PROJECTS_DIR}/{project}", extra_env=env)
        git.run(f"--work-tree={os.fspath(dest)}", "checkout-index", "--all", "--force", extra_env=env)
    finally:
        for leftover in (index, index.with_name(index.name + ".lock")):
            leftover.unlink(missing_ok=True)
    return dest


def validate_project(git: Git, commit: str, plan: TestPlan, work_parent: Path, limits: ExecLimits, *,
                     hide_paths: Sequence[str | os.PathLike[str]] = (), home: Path | None = None) -> ProjectValidation:
    """Run ``plan``'s tests on ``commit``'s version of the project, isolated, in a fresh copy.

    A Python suite runs in the project's own environment (cached under ``home``, else
    ``work_parent``); when none can be made the project's status is ``unknown``."""
    if plan.error:
        return ProjectValidation(plan.project, plan.tree, "error", reason=plan.error)
    if not plan.command:
        return ProjectValidation(plan.project, plan.tree, "skipped", reason=plan.skip_reason or "no test command")
    work_parent.mkdir(parents=True, exist_ok=True)
    src = export_project(git, commit, plan.project, work_parent / f"{plan.project}-{plan.tree[:12]}-{uuid.uuid4().hex[:6]}")
    try:
        pythonpath = list(plan.pythonpath)
        if not pythonpath and (plan.command[0].startswith("python") or plan.command[0].startswith("pytest")):
            pythonpath = suggest_pythonpath(src)
        run_limits = limits.model_copy(update={"wall_seconds": plan.timeout_s})
        env = None
        if is_python_command(plan.command):
            config = PythonEnvConfig.model_validate(plan.python_env) if plan.python_env else None
            env = prepare_python_env(src, home=Path(home or work_parent), limits=run_limits, config=config,
                                     hide_paths=tuple(str(p) for p in hide_paths))
        run = run_test_suite(src, list(plan.command), work_parent=work_parent, limits=run_limits,
                             pythonpath=pythonpath, keep_work_copy=False, hide_paths=hide_paths, python_env=env,
                             deps_home=Path(home) if home else None)
    finally:
        shutil.rmtree(src, ignore_errors=True)
    counts = run.counts
    return ProjectValidation(
        project=plan.project, tree=plan.tree, status=run.outcome, reason="; ".join(run.notes),
        passed=counts.passed if counts else 0, failed=counts.failed if counts else 0,
        errors=counts.errors if counts else 0, skipped=counts.skipped if counts else 0,
        summary_line=counts.summary_line if counts else "", seconds=round(run.seconds, 3),
        command=run.command, isolation=run.isolation, log=str(run.log_path))
