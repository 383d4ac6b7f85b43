"""Sandbox-merge tasks: conflict check, integration commit, validation, and the ref moves.

The two tasks that move refs (:func:`move_integration_task`, :func:`reset_sandbox_task`)
run inside a Prefect transaction opened by the flow. Each registers an ``on_rollback``
hook that puts its ref back, so any failure later in the transaction restores D and the
sandboxes; each task either moves its ref completely (branch and worktree) or not at all
(a failing task registers no hook, so it must leave nothing behind).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.transactions import Transaction, get_transaction

from noa_core.config import NoaSettings
from noa_core.sandbox.conflicts import ConflictReport, check_conflicts
from noa_core.sandbox.drop_queue import (
    DropUnit,
    HeldDrop,
    build_drop_integration,
    list_drops,
    rebuild_sandbox,
)
from noa_core.sandbox.merge import (
    Integration,
    IntegrationMoved,
    JournalEntry,
    MergeJournal,
    MergePlan,
    MergeReport,
    ProjectValidation,
    TestPlan,
    Verdict,
    build_integration,
    plan_merge,
    read_test_plan,
    recover,
    render_markdown,
    validate_project,
    write_report,
    write_verdicts,
)
from noa_core.sandbox.repository import WorkspaceRepo
from noa_core.sandbox.sandboxes import Sandbox


def open_workspace(settings: NoaSettings) -> WorkspaceRepo:
    repo = WorkspaceRepo(settings.layout())
    repo.ensure()
    return repo


def _home_settings(home: str) -> NoaSettings:
    return NoaSettings().model_copy(update={"home": Path(home)})


@task(name="recover-interrupted-merge", cache_policy=NO_CACHE)
def recover_task(settings: NoaSettings) -> list[str]:
    """Roll back refs a previous merge moved before it died (its journal says which)."""
    return recover(open_workspace(settings))


@task(name="plan-merge", cache_policy=NO_CACHE)
def plan_task(settings: NoaSettings, sandboxes: list[str] | None) -> MergePlan:
    return plan_merge(open_workspace(settings), sandboxes)


@task(name="conflict-check", cache_policy=NO_CACHE)
def conflict_check_task(settings: NoaSettings, plan: MergePlan) -> ConflictReport:
    """``git merge-tree`` for every pair (D included) and the cumulative queue; no worktree is touched."""
    report = check_conflicts(open_workspace(settings), list(plan.to_merge), heads=plan.heads, d_head=plan.d_head)
    get_run_logger().info("conflict check of %s: %d merge-tree calls in %.3f s, %d conflicts",
                          ", ".join(plan.to_merge), report.merge_tree_calls, report.seconds, len(report.conflicts))
    return report


@task(name="build-integration", cache_policy=NO_CACHE)
def build_integration_task(settings: NoaSettings, d_head: str, heads: dict[str, str], sandboxes: list[str],
                           message: bytes | None = None) -> Integration:
    """The candidate commit: sandboxes merged onto D in memory (parents D + sandbox heads)."""
    return build_integration(open_workspace(settings), d_head, heads, sandboxes, message)


@task(name="list-drops", cache_policy=NO_CACHE)
def list_drops_task(settings: NoaSettings, plan: MergePlan) -> list[DropUnit]:
    """The drops (one per project and sandbox) of the sandboxes to merge, read at the pinned heads."""
    return list_drops(open_workspace(settings).git, plan.d_head, plan.heads, list(plan.to_merge))


@task(name="build-drop-integration", cache_policy=NO_CACHE)
def build_drop_integration_task(settings: NoaSettings, plan: MergePlan, units: list[DropUnit], keep: list[str],
                                message: bytes | None = None) -> Integration:
    """A candidate commit of D plus the drops in ``keep`` only (the others are left out)."""
    return build_drop_integration(open_workspace(settings).git, plan.d_head, plan.heads, list(plan.to_merge),
                                  units, keep, message)


@task(name="rebuild-sandbox", task_run_name="rebuild-sandbox-{name}", cache_policy=NO_CACHE)
def rebuild_sandbox_task(settings: NoaSettings, name: str, new_d: str, held: list[HeldDrop], run_id: str) -> str:
    """The commit sandbox ``name`` moves to: the new D plus only its held drops (no ref is moved here)."""
    return rebuild_sandbox(open_workspace(settings).git, new_d, held, run_id)


@task(name="read-test-plans", cache_policy=NO_CACHE)
def read_test_plans_task(settings: NoaSettings, commit: str, projects: list[str]) -> list[TestPlan]:
    repo = open_workspace(settings)
    return [read_test_plan(repo.git, commit, p) for p in projects]


@task(name="validate-project", task_run_name="validate-{plan.project}", cache_policy=NO_CACHE)
def validate_project_task(settings: NoaSettings, commit: str, plan: TestPlan, run_id: str) -> ProjectValidation:
    """One project's tests on the candidate tree, isolated (NOA_HOME hidden from the tests)."""
    layout = settings.layout()
    return validate_project(WorkspaceRepo(layout).git, commit, plan, layout.tmp / "merge" / run_id,
                            settings.exec, hide_paths=(layout.root,), home=layout.root)


@task(name="move-integration", cache_policy=NO_CACHE)
def move_integration_task(settings: NoaSettings, entry: JournalEntry) -> str:
    """Journal, then compare-and-swap D from its old head to the validated integration commit."""
    repo = open_workspace(settings)
    txn = get_transaction()
    if txn is not None:
        txn.set("home", str(settings.home))
        txn.set("d_old", entry.d_old)
        txn.set("d_new", entry.d_new)
        txn.set("run_id", entry.run_id)
    journal = MergeJournal(repo)
    journal.begin(entry)
    if not repo.move_to(Sandbox.D, entry.d_new, expected=entry.d_old, reason=f"noa: sandbox merge {entry.run_id}"):
        journal.clear()
        raise IntegrationMoved(f"D moved while the merge ran (expected {entry.d_old[:12]}, found "
                               f"{repo.head(Sandbox.D)[:12]}): nothing was merged; run the merge again")
    get_run_logger().info("D moved %s -> %s", entry.d_old[:12], entry.d_new[:12])
    return entry.d_new


@move_integration_task.on_rollback
def _put_integration_back(txn: Transaction) -> None:
    repo = open_workspace(_home_settings(txn.get("home")))
    d_old, d_new = txn.get("d_old"), txn.get("d_new")
    if repo.head(Sandbox.D) != d_new or d_new == d_old:
        return
    if not repo.move_to(Sandbox.D, d_old, expected=d_new, reason=f"noa: merge {txn.get('run_id')} rolled back"):
        raise IntegrationMoved(f"could not put D back to {d_old[:12]}")


@task(name="reset-sandbox", task_run_name="reset-sandbox-{name}", cache_policy=NO_CACHE)
def reset_sandbox_task(settings: NoaSettings, name: str, old: str, new_d: str, run_id: str) -> bool:
    """Start a merged sandbox clean: move it from the head that was merged onto the new D.

    False (nothing changed) when the sandbox received commits during the merge.
    """
    repo = open_workspace(settings)
    txn = get_transaction()
    moved = repo.move_to(name, new_d, expected=old, reason=f"noa: reset to D after sandbox merge {run_id}")
    if txn is not None:
        txn.set("home", str(settings.home))
        txn.set("sandbox", name)
        txn.set("old", old)
        txn.set("new", new_d if moved else old)
        txn.set("run_id", run_id)
    return moved


@reset_sandbox_task.on_rollback
def _put_sandbox_back(txn: Transaction) -> None:
    old, new = txn.get("old"), txn.get("new")
    if old == new:
        return
    repo = open_workspace(_home_settings(txn.get("home")))
    name = txn.get("sandbox")
    if repo.head(name) == new:
        repo.move_to(name, old, expected=new, reason=f"noa: merge {txn.get('run_id')} rolled back")


@task(name="confirm-integration", cache_policy=NO_CACHE)
def confirm_integration_task(settings: NoaSettings, expected: str) -> str:
    """The last step inside the transaction: D is where the merge put it, and the commit is whole."""
    repo = open_workspace(settings)
    head = repo.head(Sandbox.D)
    if head != expected:
        raise IntegrationMoved(f"D is at {head[:12]}, expected {expected[:12]}")
    repo.git.run("cat-file", "-e", f"{head}^{{tree}}")
    return head


@task(name="record-merge", cache_policy=NO_CACHE)
def record_merge_task(settings: NoaSettings, report: MergeReport, verdicts: dict[str, Verdict]) -> MergeReport:
    """reports/merge-<run>.json, each sandbox's verdict, and the Prefect artifacts."""
    layout = settings.layout()
    report = write_report(layout.reports, report)
    write_verdicts(layout.reports, verdicts, run_id=report.run_id, report_path=report.report_path or "",
                   when=report.finished)
    create_markdown_artifact(render_markdown(report), key="sandbox-merge",
                             description=f"sandbox merge {report.run_id}: {report.outcome}")
    if report.matrix:
        create_table_artifact(list(report.matrix), key="sandbox-merge-conflicts",
                              description=f"conflict matrix of {', '.join(report.to_merge) or 'no sandbox'} "
                                          f"(git merge-tree, pairwise + merge queue)")
    if report.validation:
        rows: list[dict[str, Any]] = [
            {"project": name, "status": v["status"], "passed": v["passed"], "failed": v["failed"],
             "errors": v["errors"], "seconds": v["seconds"], "note": v.get("summary_line") or v.get("reason", "")}
            for name, v in report.validation.items()]
        create_table_artifact(rows, key="sandbox-merge-validation", description="integration candidate's tests")
    if report.drops["merged"] or report.drops["held"]:
        drop_rows: list[dict[str, Any]] = [
            {"drop": d["drop_id"], "sandbox": d["sandbox"], "project": d["project"], "result": "merged", "reason": ""}
            for d in report.drops["merged"]]
        drop_rows += [{"drop": d["drop_id"], "sandbox": d["sandbox"], "project": d["project"], "result": "held",
                       "reason": d["reason"]} for d in report.drops["held"]]
        create_table_artifact(drop_rows, key="sandbox-merge-drops",
                              description="drops merged into D and drops held in their sandbox")
    return report
