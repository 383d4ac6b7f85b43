"""``sandbox_merge``: the seed's Sandbox Merge Flow (A feature + B bug fix + C experimental -> D).

recover an interrupted merge -> plan (which sandboxes are ahead of D) -> conflict check
(``git merge-tree``: every pair, D included, and the cumulative merge queue; no worktree
touched) -> on conflicts hold the conflicting drops (``noa_core/sandbox/drop_conflicts.py``:
a drop conflicting with D, the later of two conflicting drops of one project) or, when a
conflict cannot be pinned on drops, stop with nothing merged -> build the integration
commit (parents D + sandbox heads; the kept drops only, when some are held) -> validate every
changed project's tests on it, isolated -> on failure, hold the drops that cause it, as a
merge queue does (``noa_core/sandbox/drop_queue.py``): a failing project changed by one
drop holds that drop; one changed by several is bisected over those drops (one drop, or
the pair that only fails together); the rest is merged, rebuilt and validated again until
it passes -> in one Prefect transaction: move D (compare-and-swap), reset each sandbox
onto the new D (a sandbox with held drops onto the new D plus those drops only), confirm. Any failure inside the transaction runs the tasks' rollback hooks, which put
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

from prefect import flow, get_run_logger
from prefect.transactions import transaction

from flows.merge_queue import hold_failing_drops
from noa_core import results
from noa_core.config import NoaSettings
from noa_core.observability.logs import logs_in_home
from noa_core.sandbox.conflicts import ConflictReport
from noa_core.sandbox.drop_conflicts import (
    ConflictHolds,
    conflict_verdicts,
    hold_conflicting_drops,
)
from noa_core.sandbox.drop_holding import drop_verdicts, held_summary
from noa_core.sandbox.drop_queue import (
    DropUnit,
    QueueResult,
    drop_merge_message,
    whole_sandboxes,
)
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
    restore,
    unpin,
)
from noa_core.sandbox.sandboxes import Sandbox
from tasks.changelog import change_log_task
from tasks.merge import (
    build_drop_integration_task,
    build_integration_task,
    confirm_integration_task,
    conflict_check_task,
    list_drops_task,
    move_integration_task,
    open_workspace,
    plan_task,
    read_test_plans_task,
    rebuild_sandbox_task,
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


def _report(report: MergeReport) -> results.MergeReport:
    """The flow's result: the merge domain's report as the typed model."""
    return results.MergeReport.from_domain(report)


@flow(name="sandbox_merge", flow_run_name=_merge_run_name, log_prints=False, persist_result=True)
@logs_in_home
def sandbox_merge(sandboxes: list[str] | None = None, home: str | None = None) -> results.MergeReport:
    """Merge the drops of sandboxes A, B, C (default: those ahead of D) into D; failing drops stay held.

    Needs drops landed in the sandboxes (``code_drop``). A conflict or failed validation is an
    outcome, not an error (D unchanged). Raises :class:`~noa_core.errors.BadInput` for an unknown
    sandbox name (or D), and :class:`~noa_core.sandbox.merge.MergeRolledBack` (its ``report``
    the MergeReport) when the merge broke off and D was put back.
    """
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
        units: list[DropUnit] = []
        queue = QueueResult()

        def finish(outcome: str, message: str, verdicts: dict[str, Verdict], *, check: ConflictReport | None = None,
                   merged: bool = False, head_after: str | None = None, candidate: str | None = None,
                   validation: dict[str, ProjectValidation] | None = None, suggestion: str | None = None,
                   culprit: tuple[tuple[str, ...], str] | None = None) -> MergeReport:
            for name in plan.not_ahead:
                verdicts[name] = Verdict("nothing to merge", f"sandbox {name} has nothing D lacks")
            timings["total"] = time.perf_counter() - t0
            drops = {"merged": [u.as_dict() for u in units if u.key not in queue.held] if merged else [],
                     "held": [h.as_dict() for h in queue.held.values()]}
            report = MergeReport(
                run_id=run_id, outcome=outcome, merged=merged, requested=plan.requested, to_merge=plan.to_merge,
                integration_head_before=plan.d_head, integration_head_after=head_after or plan.d_head,
                candidate=candidate, conflicts=tuple(c.as_dict() for c in check.conflicts) if check else (),
                matrix=tuple(check.matrix()) if check else (), conflict_check=check.as_dict() if check else {},
                validation={p: v.as_dict() for p, v in (validation or {}).items()},
                culprit=culprit[0] if culprit else None, culprit_reason=culprit[1] if culprit else None,
                bisection=tuple(queue.probes),
                per_sandbox={n: verdicts[n].as_dict() for n in plan.requested if n in verdicts},
                mergeable=check.mergeable if check else (), suggestion=suggestion, message=message,
                recovered=tuple(recovered), timings={k: round(v, 3) for k, v in timings.items()},
                started=started, finished=_now(), flow_run_id=_flow_run_id(), drops=drops)
            report = record_merge_task(settings, report, {n: verdicts[n] for n in plan.requested if n in verdicts})
            if plan.to_merge:
                change_log_task(settings, "merge", "sandbox/D-integration", {
                    "run_id": run_id, "outcome": outcome, "merged": merged, "sandboxes": list(plan.to_merge),
                    "head_before": plan.d_head, "head_after": head_after or plan.d_head,
                    "culprit": list(culprit[0]) if culprit else None,
                    "merged_drops": [d["drop_id"] for d in drops["merged"]],
                    "held_drops": [d["drop_id"] for d in drops["held"]], "flow_run_id": _flow_run_id()})
            logger.info("sandbox merge %s: %s", run_id, message)
            return report

        if not plan.to_merge:
            asked = ", ".join(plan.requested)
            return _report(finish("nothing to merge", f"Nothing to merge: {asked} "
                                  f"{'is' if len(plan.requested) == 1 else 'are'} not ahead of D.", {}))

        t = time.perf_counter()
        check = conflict_check_task(settings, plan)
        timings["conflict_check"] = time.perf_counter() - t

        def refuse_conflicts() -> results.MergeReport:
            queue.held.clear()
            suggestion = f"noa merge {' '.join(check.mergeable)}" if check.mergeable else None
            pairs = sorted({" x ".join(c.sandboxes) for c in check.conflicts})
            message = (f"Refused: {len(check.conflicts)} conflicting file{'s' if len(check.conflicts) != 1 else ''} "
                       f"({'; '.join(pairs)}); nothing was merged and D is unchanged.")
            return _report(finish("conflict", message, _conflict_verdicts(plan, check, suggestion), check=check,
                                  suggestion=suggestion))

        t = time.perf_counter()
        units = list_drops_task(settings, plan)
        conflict_holds = ConflictHolds()
        if check.has_conflicts:
            found = hold_conflicting_drops(repo.git, units, check)
            if found is None or len(found.held) == len(units):
                return refuse_conflicts()
            conflict_holds = found
            queue.held.update(found.held)
            for h in found.held.values():
                logger.warning("drop %s held for a conflict: %s", h.unit.drop_id, h.reason)
            keep = [u.key for u in units if u.key not in queue.held]
            try:
                candidate = build_drop_integration_task(
                    settings, plan, units, keep,
                    drop_merge_message(plan.to_merge, plan.heads, [u for u in units if u.key in keep],
                                       list(queue.held.values()), whole_sandboxes(units, keep, plan.to_merge),
                                       run_id))
            except IntegrationConflict as exc:
                logger.warning("the drops left after the conflicting ones do not merge: %s", exc.one_line())
                return refuse_conflicts()
        else:
            drop_ids = {n: [i for u in units if u.sandbox == n for i in (*u.superseded, u.drop_id)]
                        for n in plan.to_merge}
            candidate = build_integration_task(settings, plan.d_head, plan.heads, list(plan.to_merge),
                                               merge_message(plan.to_merge, plan.heads, drop_ids, run_id))
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
                held_out = hold_failing_drops(settings, plan, units, validation, validator, run_id,
                                              already_held=conflict_holds.held)
                queue = held_out.result
                timings["bisection"] = time.perf_counter() - t
                held = list(queue.held.values())
                culprit = (tuple(n for n in plan.to_merge if any(h.unit.sandbox == n for h in held)),
                           "; ".join(dict.fromkeys(h.reason for h in held)) or
                           f"no drop of this merge changes {', '.join(held_out.unattributed)}")
                if held_out.candidate is None:
                    verdicts = drop_verdicts(plan, units, queue.held, None, lambda _n: None)
                    verdicts.update(conflict_verdicts(plan, units, queue.held, conflict_holds))
                    why = (f"Held {len(held)} drop{'s' if len(held) != 1 else ''}: {held_summary(held)}."
                           if held and not held_out.unattributed else
                           f"No drop of this merge changes {', '.join(held_out.unattributed)}, which fails: "
                           "nothing can be held to make it pass.")
                    message = (f"Refused: the integration of {', '.join(plan.to_merge)} fails the tests of "
                               f"{', '.join(failing)}; D is unchanged. {why}")
                    return _report(finish("validation failed", message, verdicts, check=check,
                                          candidate=candidate.commit, validation=validation, culprit=culprit))
                unpin(repo.git, pin_ref)
                candidate, validation = held_out.candidate, held_out.validation
                pin_ref = pin(repo.git, candidate.commit, "merge")
            moves: dict[str, str] = {}   # sandbox -> where it goes once D moved
            for name in plan.to_merge:
                mine = [u for u in units if u.sandbox == name]
                held_here = [queue.held[u.key] for u in mine if u.key in queue.held]
                if not held_here:
                    moves[name] = candidate.commit
                elif len(held_here) < len(mine):
                    try:
                        moves[name] = rebuild_sandbox_task(settings, name, candidate.commit, held_here, run_id)
                    except IntegrationConflict as exc:
                        logger.warning("sandbox %s keeps its head: %s", name, exc.one_line())

            t = time.perf_counter()
            entry = JournalEntry(run_id=run_id, d_old=plan.d_head, d_new=candidate.commit,
                                 sandboxes={n: plan.heads[n] for n in moves}, created=_now(),
                                 targets={n: c for n, c in moves.items() if c != candidate.commit})
            d_moved = False
            reset: dict[str, bool] = {}
            try:
                with transaction():
                    move_integration_task(settings, entry)
                    d_moved = True
                    for name, target in moves.items():
                        reset[name] = reset_sandbox_task(settings, name, plan.heads[name], target, run_id)
                    confirm_integration_task(settings, candidate.commit)
            except Exception as exc:
                head_now = repo.head(Sandbox.D)
                restored = restore(repo, entry)  # idempotent: only refs the hooks did not put back
                MergeJournal(repo).clear()
                if not d_moved and isinstance(exc, IntegrationMoved):
                    message = f"Refused: {exc.one_line()}"
                    verdicts = {n: Verdict("not merged", "D moved while the merge ran; merge again")
                                for n in plan.to_merge}
                    return _report(finish("concurrent update", message, verdicts, check=check,
                                          candidate=candidate.commit, validation=validation,
                                          head_after=repo.head(Sandbox.D)))
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
                error.report = results.MergeReport.from_domain(report)  # type: ignore[attr-defined]
                raise error from exc
            MergeJournal(repo).clear()  # the commit point: from here on the merge stands
            timings["integrate"] = time.perf_counter() - t
        finally:
            unpin(repo.git, pin_ref)

        verdicts = drop_verdicts(plan, units, queue.held, candidate.commit,
                                 lambda n: reset.get(n) if n in moves else None)
        verdicts.update(conflict_verdicts(plan, units, queue.held, conflict_holds))
        tested = [p for p, v in validation.items() if v.status not in ("skipped",)]
        merged_units = [u for u in units if u.key not in queue.held]
        held = list(queue.held.values())
        whom = (", ".join(plan.to_merge) if not held else
                f"{len(merged_units)} drop{'s' if len(merged_units) != 1 else ''} of "
                f"{', '.join(dict.fromkeys(u.sandbox for u in merged_units))}")
        message = (f"Merged {whom} into D: {plan.d_head[:12]} -> {candidate.commit[:12]}; "
                   f"tests of {len(tested)} project{'s' if len(tested) != 1 else ''} passed"
                   + (f", {len(validation) - len(tested)} skipped" if len(validation) > len(tested) else "") + "."
                   + (f" Held in their sandbox: {held_summary(held)}." if held else ""))
        culprit = None
        if held:
            culprit = (tuple(n for n in plan.to_merge if any(h.unit.sandbox == n for h in held)),
                       "; ".join(dict.fromkeys(h.reason for h in held)))
        return _report(finish("partially merged" if held else "merged", message, verdicts, check=check,
                              merged=True, head_after=candidate.commit, candidate=candidate.commit,
                              validation=validation, culprit=culprit))
