"""The sandbox merge: integration commits, their validation, the journal that keeps D safe.

Prefect-free building blocks of the ``sandbox_merge`` flow (``flows/sandbox_merge.py``):

* :func:`plan_merge` resolves what ``noa merge [A B C]`` asks for (default: every work
  sandbox ahead of D) and pins every head it will look at;
* :func:`build_integration` merges sandboxes onto D with plumbing only (one
  ``merge-tree --write-tree`` per sandbox, as the merge queue does) and writes one commit
  whose tree is the result and whose parents are D and the sandbox heads (an octopus-like
  merge commit; D stays the first parent). No ref, index or worktree is touched: the
  commit becomes the integration line only when the flow moves D onto it;
* :func:`affected_projects`, :func:`read_test_plan`, :func:`validate_project` run each changed
  project's tests (``noa.yaml`` ``test.command``) isolated, on the candidate commit's
  ``projects/<name>`` checked out into a temporary directory through a throw-away index
  (``read-tree`` + ``checkout-index``; the repository's ``info/attributes`` keeps any
  dropped ``.gitattributes`` from naming a filter);
* :class:`MergeJournal` records, before D moves, where D and the sandboxes were. A merge
  that dies after moving D (a killed process) is rolled back by :func:`recover` at the
  start of the next merge: D moves only as part of a merge that finished.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from noa_core.config import ExecLimits
from noa_core.errors import BadInput, ManifestError, NoaError
from noa_core.manifest import (
    MANIFEST_FILENAME,
    MAX_MANIFEST_BYTES,
    NoaManifest,
    PythonEnvConfig,
    parse_manifest,
)
from noa_core.pyenv.provider import prepare_python_env
from noa_core.sandbox.conflicts import merge_tree, queue_commit
from noa_core.sandbox.git import Git, WorkspaceError
from noa_core.sandbox.repository import WorkspaceRepo
from noa_core.sandbox.sandboxes import WORK_SANDBOXES, Sandbox
from noa_core.sandbox.trees import PROJECTS_DIR
from noa_core.validation.runner import (
    is_python_command,
    run_test_suite,
    suggest_pythonpath,
)

CLTREE_NOTE = "the CL tree (change log) does not exist yet in NOA ARK OS: this merge is recorded only in this report"

Status = Literal["passed", "failed", "error", "timeout", "no tests", "skipped", "unknown"]
# unknown (no environment could be made for the project): the integration cannot be shown to pass
_FAILING: tuple[str, ...] = ("failed", "error", "timeout", "unknown")


class MergeError(WorkspaceError):
    """The sandbox merge could not do its job (nothing was changed unless said otherwise)."""


class MergeRolledBack(MergeError):
    """A step after D moved failed; D (and every sandbox) was put back where it was."""


class IntegrationMoved(MergeError):
    """D moved while the merge ran (compare-and-swap lost): nothing was merged."""


# planning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergePlan:
    """What one merge run looks at: heads pinned at the start, what to merge, what is skipped."""

    requested: tuple[str, ...]
    to_merge: tuple[str, ...]          # requested and ahead of D, in the order A, B, C
    not_ahead: tuple[str, ...]         # requested but with nothing D lacks
    d_head: str
    heads: dict[str, str]              # every work sandbox's head at planning time
    explicit: bool                     # the sandboxes were named on the command line


def parse_requested(names: Sequence[str] | None) -> tuple[tuple[str, ...], bool]:
    """``["a", "C"]`` -> ``("A", "C")``; none -> every work sandbox. D or an unknown name is :class:`BadInput`."""
    if not names:
        return tuple(s.value for s in WORK_SANDBOXES), False
    out: list[str] = []
    for name in names:
        sb = Sandbox.parse(name)
        if sb is Sandbox.D:
            raise BadInput("D is the integration sandbox: name the sandboxes to merge into it (A, B, C)")
        if sb.value not in out:
            out.append(sb.value)
    return tuple(s.value for s in WORK_SANDBOXES if s.value in out), True


def plan_merge(repo: WorkspaceRepo, names: Sequence[str] | None) -> MergePlan:
    requested, explicit = parse_requested(names)
    statuses = {s.sandbox.value: s for s in repo.status()}
    d_head = statuses["D"].head
    heads = {s.value: statuses[s.value].head for s in WORK_SANDBOXES}
    to_merge = tuple(n for n in requested if statuses[n].ahead_of_D > 0)
    not_ahead = tuple(n for n in requested if n not in to_merge)
    return MergePlan(requested=requested, to_merge=to_merge, not_ahead=not_ahead, d_head=d_head, heads=heads,
                     explicit=explicit)


# building the integration commit ---------------------------------------------------------------


@dataclass(frozen=True)
class Integration:
    """A candidate integration commit (on no branch until D is moved onto it)."""

    commit: str
    tree: str
    d_head: str
    sandboxes: tuple[str, ...]
    parents: tuple[str, ...]
    seconds: float


class IntegrationConflict(MergeError):
    """Merging the sandboxes hit a conflict (the conflict check should have said so first)."""


def merge_message(sandboxes: Sequence[str], heads: Mapping[str, str], drops: Mapping[str, Sequence[str]],
                  run_id: str) -> bytes:
    lines = [f"noa: merge sandbox{'es' if len(sandboxes) != 1 else ''} {', '.join(sandboxes)} into D", ""]
    for name in sandboxes:
        lines.append(f"Merged-Sandbox: {name} {heads[name]}")
    for name in sandboxes:
        for drop_id in drops.get(name, ()):
            lines.append(f"Merged-Drop: {drop_id}")
    lines.append(f"Merge-Run: {run_id}")
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def build_integration(repo: WorkspaceRepo, d_head: str, heads: Mapping[str, str], sandboxes: Sequence[str],
                      message: bytes | None = None) -> Integration:
    """Merge ``sandboxes`` (in order) onto ``d_head`` in memory and write one commit of the result.

    With no sandboxes the "integration" is D itself. Raises :class:`IntegrationConflict`
    when a step does not merge cleanly.
    """
    started = time.perf_counter()
    git = repo.git
    if not sandboxes:
        tree = git.out("rev-parse", f"{d_head}^{{tree}}")
        return Integration(d_head, tree, d_head, (), (d_head,), time.perf_counter() - started)
    current = d_head
    for name in sandboxes:
        res = merge_tree(git, current, heads[name])
        if not res.clean:
            raise IntegrationConflict(f"sandbox {name} does not merge cleanly onto D + "
                                      f"{', '.join(sandboxes[:sandboxes.index(name)]) or 'nothing'}: "
                                      f"{', '.join(f.path for f in res.files[:5])}")
        current = queue_commit(git, res.tree, [current, heads[name]])
    tree = git.out("rev-parse", f"{current}^{{tree}}")
    tips = [heads[n] for n in sandboxes if not git.ok("merge-base", "--is-ancestor", heads[n], d_head)]
    if len(tips) > 1:  # a sandbox contained in another adds nothing as a parent
        independent = set(git.out("merge-base", "--independent", *tips).split())
        tips = [t for t in tips if t in independent]
    parents = [d_head, *dict.fromkeys(tips)]
    body = message or merge_message(sandboxes, heads, {}, "-")
    args = ["commit-tree", tree]
    for p in parents:
        args += ["-p", p]
    commit = git.out(*args, "-F", "-", input=body)
    return Integration(commit, tree, d_head, tuple(sandboxes), tuple(parents), time.perf_counter() - started)


def pin(git: Git, commit: str, label: str) -> str:
    """Keep ``commit`` reachable (from a private ref ``ensure()`` removes after an hour) while it is in use."""
    ref = f"refs/noa/tmp/{int(time.time())}-{label}-{uuid.uuid4().hex[:8]}"
    git.run("update-ref", ref, commit)
    return ref


def unpin(git: Git, ref: str) -> None:
    git.run("update-ref", "-d", ref, check=False)


# validation ----------------------------------------------------------------------------------


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


# the journal ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalEntry:
    run_id: str
    d_old: str
    d_new: str
    sandboxes: dict[str, str]          # sandbox -> head before it is reset onto d_new
    created: str
    targets: dict[str, str] = field(default_factory=dict)  # sandbox -> where it moves, when not d_new
                                                           # (new D + the drops the merge held)


class MergeJournal:
    """``repo/noa/merge-journal.json``: present only while a merge is moving refs.

    Written (fsynced) before D moves; removed once the merge committed. Found at the
    start of the next merge, it means the last one died half-way: :func:`recover`
    puts every ref it moved back.
    """

    def __init__(self, repo: WorkspaceRepo) -> None:
        self.path = repo.path / "noa" / "merge-journal.json"

    def begin(self, entry: JournalEntry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".merge-journal-{uuid.uuid4().hex}")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(asdict(entry), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)

    def read(self) -> JournalEntry | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise MergeError(f"{self.path}: unreadable merge journal ({exc}); inspect it and remove it") from None
        return JournalEntry(**data)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def restore(repo: WorkspaceRepo, entry: JournalEntry) -> list[str]:
    """Put back every ref ``entry`` says a merge moved (only refs still where that merge left them)."""
    actions = []
    for name, old in entry.sandboxes.items():
        target = entry.targets.get(name, entry.d_new)
        if (old != target and repo.head(name) == target
                and repo.move_to(name, old, expected=target, reason=f"noa: merge {entry.run_id} rolled back")):
            actions.append(f"sandbox {name} put back to {old[:12]}")
    head = repo.head(Sandbox.D)
    if head == entry.d_new and entry.d_new != entry.d_old:
        if not repo.move_to(Sandbox.D, entry.d_old, expected=entry.d_new,
                            reason=f"noa: merge {entry.run_id} rolled back"):
            raise MergeError(f"D could not be put back to {entry.d_old[:12]}: it moved meanwhile")
        actions.append(f"D put back from {entry.d_new[:12]} to {entry.d_old[:12]}")
    elif head not in (entry.d_old, entry.d_new):
        actions.append(f"D is at {head[:12]}, neither before nor after merge {entry.run_id}: left alone")
    return actions


def recover(repo: WorkspaceRepo) -> list[str]:
    """Roll back a merge that died after moving refs (see :class:`MergeJournal`); [] when none did."""
    journal = MergeJournal(repo)
    entry = journal.read()
    if entry is None:
        return []
    actions = restore(repo, entry) or [f"merge {entry.run_id} had not moved any ref"]
    journal.clear()
    return [f"recovered interrupted merge {entry.run_id}: " + "; ".join(actions)]


# verdicts: what each sandbox is told ---------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    status: str        # merged | manual resolution needed | failed | not merged | nothing to merge
    message: str
    files: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "message": self.message}
        if self.files:
            out["files"] = list(self.files)
        return out


def verdict_path(reports: Path, sandbox: str) -> Path:
    return reports / "sandboxes" / f"{sandbox}.json"


def write_verdicts(reports: Path, verdicts: Mapping[str, Verdict], *, run_id: str, report_path: str,
                   when: str) -> None:
    """Tell each sandbox the outcome: ``reports/sandboxes/<X>.json`` (shown by ``noa sandbox list``)."""
    for name, verdict in verdicts.items():
        path = verdict_path(reports, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        tmp.write_text(json.dumps({**verdict.as_dict(), "run_id": run_id, "report": report_path, "at": when},
                                  indent=2))
        os.replace(tmp, path)


def read_verdict(reports: Path, sandbox: str) -> dict[str, Any] | None:
    try:
        return json.loads(verdict_path(reports, sandbox).read_text())
    except (OSError, ValueError):
        return None


# the report ----------------------------------------------------------------------------------


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class MergeReport:
    """The outcome of one ``sandbox_merge`` run (``noa merge --json`` prints :meth:`as_dict`)."""

    run_id: str
    outcome: str                      # merged | partially merged | nothing to merge | conflict | validation failed
                                      # | rolled back | concurrent update
    merged: bool
    requested: tuple[str, ...]
    to_merge: tuple[str, ...]
    integration_head_before: str
    integration_head_after: str
    candidate: str | None
    conflicts: tuple[dict[str, Any], ...]
    matrix: tuple[dict[str, str], ...]
    conflict_check: dict[str, Any]
    validation: dict[str, dict[str, Any]]
    culprit: tuple[str, ...] | None
    culprit_reason: str | None
    bisection: tuple[dict[str, Any], ...]
    per_sandbox: dict[str, dict[str, Any]]
    mergeable: tuple[str, ...]
    suggestion: str | None
    message: str
    recovered: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    started: str = ""
    finished: str = ""
    report_path: str | None = None
    flow_run_id: str | None = None    # the Prefect flow run that made this report
    cltree: dict[str, str] = field(default_factory=lambda: {"status": "skipped", "reason": CLTREE_NOTE})
    # per drop: {"merged": [{sandbox, drop_id, project, commit, superseded}], "held": [... + reason]}
    drops: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"merged": [], "held": []})

    @property
    def exit_code(self) -> int:
        return 0 if self.outcome in ("merged", "nothing to merge") else 1

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("requested", "to_merge", "conflicts", "matrix", "bisection", "mergeable", "recovered"):
            out[key] = list(out[key])
        out["culprit"] = list(self.culprit) if self.culprit is not None else None
        out["exit_code"] = self.exit_code
        return out


def render_markdown(report: MergeReport) -> str:
    lines = [f"# Sandbox merge {report.run_id}: {report.outcome}", "", report.message, ""]
    lines += [f"- requested: {', '.join(report.requested) or '-'}; merged: {', '.join(report.to_merge) or '-'}"
              if report.merged else f"- requested: {', '.join(report.requested) or '-'}",
              f"- D before: `{report.integration_head_before[:12]}`; D after: `{report.integration_head_after[:12]}`"
              + (" (unchanged)" if report.integration_head_before == report.integration_head_after else ""),
              f"- change log: {report.cltree['reason']}"]
    if report.recovered:
        lines += [f"- {r}" for r in report.recovered]
    if report.conflicts:
        lines += ["", "## Conflicts", "", "| sandboxes | path | kind |", "|---|---|---|"]
        lines += [f"| {' x '.join(c['sandboxes'])} | `{c['path']}` | {c['kind']} |" for c in report.conflicts]
    if report.validation:
        lines += ["", "## Validation of the integration candidate", "",
                  "| project | status | passed | failed | errors | note |", "|---|---|---|---|---|---|"]
        for name, v in report.validation.items():
            note = (v.get("summary_line") or v.get("reason") or "").replace("|", "/")
            lines.append(f"| {name} | {v['status']} | {v['passed']} | {v['failed']} | {v['errors']} | {note} |")
    if report.drops["merged"] or report.drops["held"]:
        lines += ["", "## Drops", "", "| drop | sandbox | project | result | reason |", "|---|---|---|---|---|"]
        lines += [f"| {d['drop_id']} | {d['sandbox']} | {d['project']} | merged | |" for d in report.drops["merged"]]
        lines += [f"| {d['drop_id']} | {d['sandbox']} | {d['project']} | held | {d['reason'].replace('|', '/')} |"
                  for d in report.drops["held"]]
    if report.culprit is not None:
        lines += ["", "## Held (culprits)", "", f"**{', '.join(report.culprit) or 'none'}**: {report.culprit_reason}"]
    if report.bisection:
        lines += ["", "## Bisection", "", "| probe (on top of D) | result |", "|---|---|"]
        lines += [f"| {' + '.join(p.get('drops') or p['sandboxes']) or 'D alone'}"
                  + (f" ({p['project']})" if p.get("project") else "")
                  + f" | {'fails' if p['failed'] else 'passes'} |" for p in report.bisection]
    lines += ["", "## Sandboxes", "", "| sandbox | status | message |", "|---|---|---|"]
    lines += [f"| {name} | {v['status']} | {v['message']} |" for name, v in report.per_sandbox.items()]
    if report.suggestion:
        lines += ["", f"Next: `{report.suggestion}`"]
    return "\n".join(lines) + "\n"


def write_report(reports: Path, report: MergeReport) -> MergeReport:
    """``reports/merge-<run id>.json`` (atomically); returns the report with its path set."""
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / f"merge-{report.run_id}.json"
    report = replace(report, report_path=str(path))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report.as_dict(), indent=2))
    os.replace(tmp, path)
    return report


__all__ = [
    "CLTREE_NOTE",
    "Integration",
    "IntegrationConflict",
    "IntegrationMoved",
    "JournalEntry",
    "MergeError",
    "MergeJournal",
    "MergePlan",
    "MergeReport",
    "MergeRolledBack",
    "ProjectValidation",
    "TestPlan",
    "Verdict",
    "affected_projects",
    "build_integration",
    "export_project",
    "merge_message",
    "new_run_id",
    "parse_requested",
    "pin",
    "plan_merge",
    "project_trees",
    "read_test_plan",
    "read_verdict",
    "recover",
    "render_markdown",
    "restore",
    "unpin",
    "validate_project",
    "write_report",
    "write_verdicts",
]
