"""``sandbox_merge``: the seed's Sandbox Merge Flow (A feature + B bug fix + C experimental -> D).

recover an interrupted merge -> plan (which sandboxes are ahead of D) -> conflict check
(``git merge-tree``: every pair, D included, and the cumulative merge queue; no worktree
touched) -> on conflicts stop: nothing merged, each sandbox involved needs manual
resolution -> build the integration commit (parents D + sandbox heads) -> validate every
changed project's tests on it, isolated -> on failure stop and bisect the sandboxes to
name the culprit (one sandbox, or the pair that only fails together) -> otherwise, in one
Prefect transaction: move D (compare-and-swap), reset the merged sandboxes onto the new
D, confirm. Any failure inside the transaction runs the tasks' rollback hooks, which put
D and the sandboxes back; a journal written before D moves lets the next run roll back a
merge whose process died half-way. Each sandbox is told its verdict; the run is recorded
as ``NOA_HOME/reports/merge-<run>.json`` plus Prefect artifacts (outcome as markdown,
conflict matrix and validation as tables).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.transactions import transaction

from noa_core.config import NoaSettings
from noa_core.observability.logs import logs_in_home
from noa_core.sandbox.bisect import Culprit, find_culprit
from noa_core.sandbox.conflicts import ConflictReport
from noa_core.sandbox.merge import (
    IntegrationConflict,
    IntegrationMoved,
    JournalEntry,
    MergeJournal,
    MergePlan,
    MergeReport,
    MergeRolledBack,
    ProjectValidation,
    TestPlan,
    Verdict,
    affected_projects,
    merge_message,
    new_run_id,
    parse_requested,
    pin,
    project_trees,
    restore,
    unpin,
)
from noa_core.sandbox.sandboxes import Sandbox
from tasks.changelog import change_log_task
from tasks.merge import (
    build_integration_task,
    confirm_integration_task,
    conflict_check_task,
    move_integration_task,
    open_workspace,
    plan_task,
    read_test_plans_task,
    record_merge_task,
    recover_task,
    reset_sandbox_task,
    validate_project_task,
)


def _settings(home: str | None) -> NoaSettings:
    settings = NoaSettings()
    return settings.model_copy(update={"home": Path(home)}) if home else settings


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return str(flow_run.id) if flow_run.id else None


def _merge_run_name() -> str:
    from prefect.runtime import flow_run

    names = flow_run.parameters.get("sandboxes") or []
    return "merge-" + ("".join(str(n).upper() for n in names)[:12] if names else "all")


class _Validator:
    """Runs tests per project tree, in parallel, remembering each tree's result for the bisection."""

    def __init__(self, settings: NoaSettings, run_id: str) -> None:
        self.settings = settings
        self.run_id = run_id
        self.by_tree: dict[str, ProjectValidation] = {}
        self.runs = 0

    def run(self, commit: str, plans: list[TestPlan]) -> dict[str, ProjectValidation]:
        out: dict[str, ProjectValidation] = {}
        futures = {}
        for plan in plans:
            known = self.by_tree.get(plan.tree)
            if known is not None:
                out[plan.project] = replace(known, cached=True)
            else:
                futures[plan.project] = (plan, validate_project_task.submit(self.settings, commit, plan, self.run_id))
        for project, (plan, future) in futures.items():
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - tests that cannot even run fail the project, not the flow
                result = ProjectValidation(project, plan.tree, "error", reason=f"validation could not run: {exc}")
            self.runs += 1
            self.by_tree[plan.tree] = result
            out[project] = result
        return dict(sorted(out.items()))


def _bisect(settings: NoaSettings, plan: MergePlan, failing: list[str], validator: _Validator) -> Culprit:
    logger = get_run_logger()

    def probe(subset: tuple[str, ...]) -> tuple[bool, str]:
        if subset:
            try:
                commit = build_integration_task(settings, plan.d_head, plan.heads, list(subset)).commit
            except IntegrationConflict as exc:
                return True, f"does not merge cleanly: {exc.one_line()}"
        else:
            commit = plan.d_head
        present = project_trees(open_workspace(settings).git, commit)
        plans = read_test_plans_task(settings, commit, [p for p in failing if p in present])
        results = validator.run(commit, plans)
        bad = [f"{p} {v.status}" + (f" ({v.summary_line})" if v.summary_line else "")
               for p, v in results.items() if not v.ok]
        absent = [p for p in failing if p not in present]
        detail = "; ".join(bad) if bad else "passes" + (f" ({', '.join(absent)} absent)" if absent else "")
        logger.info("bisection probe D+%s: %s", "+".join(subset) or "nothing", detail)
        return bool(bad), detail

    return find_culprit(list(plan.to_merge), probe, batch_detail="the whole batch fails " + ", ".join(failing))


def _conflict_verdicts(plan: MergePlan, check: ConflictReport, suggestion: str | None) -> dict[str, Verdict]:
    verdicts: dict[str, Verdict] = {}
    for name in plan.to_merge:
        files = check.per_sandbox.get(name, ())
        if files:
            others = check.conflicting_with(name)
            with_d = " (D changed the same files since this sandbox branched)" if "D" in others else ""
            alone = (f"; without {', '.join(o for o in others if o != 'D')} it merges cleanly: `{suggestion}`"
                     if suggestion and name in check.mergeable else "")
            verdicts[name] = Verdict("manual resolution needed",
                                     f"conflicts with {', '.join(others)}{with_d} in {len(files)} "
                                     f"file{'s' if len(files) != 1 else ''}: {', '.join(files[:10])}{alone}", files)
        else:
            hint = f"; it can be merged with `{suggestion}`" if suggestion else ""
            verdicts[name] = Verdict("not merged", f"nothing was merged because other sandboxes conflict{hint}")
    return verdicts


def _failure_verdicts(plan: MergePlan, culprit: Culprit, failing: list[str], suggestion: str | None) -> dict[str, Verdict]:
    verdicts: dict[str, Verdict] = {}
    for name in plan.to_merge:
        if not culprit.sandboxes:
            verdicts[name] = Verdict("failed", f"the integration fails the tests of {', '.join(failing)}; "
                                               f"bisection blames no sandbox: {culprit.reason}")
        elif name in culprit.sandboxes:
            partners = [s for s in culprit.sandboxes if s != name]
            together = f" together with {', '.join(partners)}" if partners else ""
            verdicts[name] = Verdict("failed", f"breaks the tests of {', '.join(failing)}{together} "
                                               f"(named by bisection); fix it and merge again")
        else:
            hint = f"; merge it without the culprit: `{suggestion}`" if suggestion else ""
            verdicts[name] = Verdict("not merged", f"innocent: the batch failed because of "
                                                   f"{', '.join(culprit.sandboxes)}{hint}")
    return verdicts


@flow(name="sandbox_merge", flow_run_name=_merge_run_name, log_prints=False)
@logs_in_home
def sandbox_merge(sandboxes: list[str] | None = None, home: str | None = None) -> dict[str, Any]:
    """Merge sandboxes A, B, C (default: those ahead of D) into D; D moves only if all of it passes."""
    logger = get_run_logger()
    parse_requested(sandboxes)  # unknown names and D are refused before anything runs
    settings = _settings(home)
    settings.layout().ensure()
    repo = open_workspace(settings)
    run_id = new_run_id()
    started = _now()
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    with repo.merge_lock():
        recovered = recover_task(settings)
        for line in recovered:
            logger.warning(line)
        plan = plan_task(settings, sandboxes)

        def finish(outcome: str, message: str, verdicts: dict[str, Verdict], *, check: ConflictReport | None = None,
                   merged: bool = False, head_after: str | None = None, candidate: str | None = None,
                   validation: dict[str, ProjectValidation] | None = None, culprit: Culprit | None = None,
                   suggestion: str | None = None) -> MergeReport:
            for name in plan.not_ahead:
                verdicts[name] = Verdict("nothing to merge", f"sandbox {name} has nothing D lacks")
            timings["total"] = time.perf_counter() - t0
            report = MergeReport(
                run_id=run_id, outcome=outcome, merged=merged, requested=plan.requested, to_merge=plan.to_merge,
                integration_head_before=plan.d_head, integration_head_after=head_after or plan.d_head,
                candidate=candidate, conflicts=tuple(c.as_dict() for c in check.conflicts) if check else (),
                matrix=tuple(check.matrix()) if check else (), conflict_check=check.as_dict() if check else {},
                validation={p: v.as_dict() for p, v in (validation or {}).items()},
                culprit=culprit.sandboxes if culprit else None, culprit_reason=culprit.reason if culprit else None,
                bisection=tuple(culprit.as_dict()["probes"]) if culprit else (),
                per_sandbox={n: verdicts[n].as_dict() for n in plan.requested if n in verdicts},
                mergeable=check.mergeable if check else (), suggestion=suggestion, message=message,
                recovered=tuple(recovered), timings={k: round(v, 3) for k, v in timings.items()},
                started=started, finished=_now(), flow_run_id=_flow_run_id())
            report = record_merge_task(settings, report, {n: verdicts[n] for n in plan.requested if n in verdicts})
            if plan.to_merge:
                change_log_task(settings, "merge", "sandbox/D-integration", {
                    "run_id": run_id, "outcome": outcome, "merged": merged, "sandboxes": list(plan.to_merge),
                    "head_before": plan.d_head, "head_after": head_after or plan.d_head,
                    "culprit": list(culprit.sandboxes) if culprit else None, "flow_run_id": _flow_run_id()})
            logger.info("sandbox merge %s: %s", run_id, message)
            return report

        if not plan.to_merge:
            asked = ", ".join(plan.requested)
            return finish("nothing to merge", f"Nothing to merge: {asked} {'is' if len(plan.requested) == 1 else 'are'}"
                          " not ahead of D.", {}).as_dict()

        t = time.perf_counter()
        check = conflict_check_task(settings, plan)
        timings["conflict_check"] = time.perf_counter() - t
        if check.has_conflicts:
            suggestion = f"noa merge {' '.join(check.mergeable)}" if check.mergeable else None
            pairs = sorted({" x ".join(c.sandboxes) for c in check.conflicts})
            message = (f"Refused: {len(check.conflicts)} conflicting file{'s' if len(check.conflicts) != 1 else ''} "
                       f"({'; '.join(pairs)}); nothing was merged and D is unchanged.")
            return finish("conflict", message, _conflict_verdicts(plan, check, suggestion), check=check,
                          suggestion=suggestion).as_dict()

        t = time.perf_counter()
        drops = {n: [d.drop_id for d in repo.drops(n)] for n in plan.to_merge}
        candidate = build_integration_task(settings, plan.d_head, plan.heads, list(plan.to_merge),
                                           merge_message(plan.to_merge, plan.heads, drops, run_id))
        timings["build"] = time.perf_counter() - t
        pin_ref = pin(repo.git, candidate.commit, "merge")
        try:
            t = time.perf_counter()
            changed, removed = affected_projects(repo.git, plan.d_head, candidate.commit)
            validator = _Validator(settings, run_id)
            validation = validator.run(candidate.commit, read_test_plans_task(settings, candidate.commit, changed))
            for project in removed:
                validation[project] = ProjectValidation(project, "", "skipped", reason="removed by the merge")
            timings["validation"] = time.perf_counter() - t
            failing = [p for p, v in validation.items() if not v.ok]
            if failing:
                t = time.perf_counter()
                culprit = _bisect(settings, plan, failing, validator)
                timings["bisection"] = time.perf_counter() - t
                rest = [n for n in plan.to_merge if n not in culprit.sandboxes]
                suggestion = f"noa merge {' '.join(rest)}" if culprit.sandboxes and rest else None
                blame = ", ".join(culprit.sandboxes) or "no sandbox"
                message = (f"Refused: the integration of {', '.join(plan.to_merge)} fails the tests of "
                           f"{', '.join(failing)}; D is unchanged. Bisection names {blame}: {culprit.reason}.")
                return finish("validation failed", message, _failure_verdicts(plan, culprit, failing, suggestion),
                              check=check, candidate=candidate.commit, validation=validation, culprit=culprit,
                              suggestion=suggestion).as_dict()

            t = time.perf_counter()
            entry = JournalEntry(run_id=run_id, d_old=plan.d_head, d_new=candidate.commit,
                                 sandboxes={n: plan.heads[n] for n in plan.to_merge}, created=_now())
            d_moved = False
            reset: dict[str, bool] = {}
            try:
                with transaction():
                    move_integration_task(settings, entry)
                    d_moved = True
                    for name in plan.to_merge:
                        reset[name] = reset_sandbox_task(settings, name, plan.heads[name], candidate.commit, run_id)
                    confirm_integration_task(settings, candidate.commit)
            except Exception as exc:
                head_now = repo.head(Sandbox.D)
                restored = restore(repo, entry)  # idempotent: only refs the hooks did not put back
                MergeJournal(repo).clear()
                if not d_moved and isinstance(exc, IntegrationMoved):
                    message = f"Refused: {exc.one_line()}"
                    verdicts = {n: Verdict("not merged", "D moved while the merge ran; merge again")
                                for n in plan.to_merge}
                    return finish("concurrent update", message, verdicts, check=check, candidate=candidate.commit,
                                  validation=validation, head_after=repo.head(Sandbox.D)).as_dict()
                by = ("nothing had moved" if not d_moved else
                      "the rollback hooks" if not restored else
                      "the rollback hooks and the journal" if head_now == plan.d_head else
                      "the journal (the rollback hook left D moved)")
                logger.error("merge %s rolled back: %s", run_id, "; ".join(restored) or "refs restored by the hooks")
                message = (f"Rolled back: {type(exc).__name__}: {exc} after D had "
                           f"{'moved' if d_moved else 'not moved'}; D is back at {repo.head(Sandbox.D)[:12]} "
                           f"(restored by {by}).")
                verdicts = {n: Verdict("not merged", f"the merge was rolled back: {type(exc).__name__}: {exc}")
                            for n in plan.to_merge}
                report = finish("rolled back", message, verdicts, check=check, candidate=candidate.commit,
                                validation=validation, head_after=repo.head(Sandbox.D))
                error = MergeRolledBack(message)
                error.report = report.as_dict()  # type: ignore[attr-defined]
                raise error from exc
            MergeJournal(repo).clear()  # the commit point: from here on the merge stands
            timings["integrate"] = time.perf_counter() - t
        finally:
            unpin(repo.git, pin_ref)

        verdicts = {}
        for name in plan.to_merge:
            note = ("reset to the new D" if reset.get(name)
                    else "it received new commits during the merge, so it was not reset (those stay ahead of D)")
            verdicts[name] = Verdict("merged", f"merged into D at {candidate.commit[:12]}; {note}")
        tested = [p for p, v in validation.items() if v.status not in ("skipped",)]
        message = (f"Merged {', '.join(plan.to_merge)} into D: {plan.d_head[:12]} -> {candidate.commit[:12]}; "
                   f"tests of {len(tested)} project{'s' if len(tested) != 1 else ''} passed"
                   + (f", {len(validation) - len(tested)} skipped" if len(validation) > len(tested) else "") + ".")
        return finish("merged", message, verdicts, check=check, merged=True, head_after=candidate.commit,
                      candidate=candidate.commit, validation=validation).as_dict()
