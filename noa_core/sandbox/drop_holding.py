"""The merge queue's decisions when a batch fails validation: which drops to hold, which to merge.

Called by the ``sandbox_merge`` flow (through ``flows/merge_queue.py``, which binds the steps
to Prefect tasks) when the whole batch fails validation. Projects are tested one by one on
their own tree (``projects/<name>``), so a failing project can only be broken by the drops
that change it:

* changed by one drop: that drop is held, without bisection (its project's tests fail);
* changed by several (the same project dropped into two sandboxes): :func:`find_culprit`
  bisects over those drops, testing only that project, and the culprits are held (one
  drop, or the pair that passes alone and fails together);
* the kept drops are built into a new candidate and validated again (unchanged project
  trees reuse their results) until it passes or no drop is left.

Then :func:`drop_verdicts` says to each sandbox what became of its drops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from noa_core.sandbox.bisect import find_culprit
from noa_core.sandbox.drop_queue import (
    DropUnit,
    HeldDrop,
    QueueResult,
    drop_merge_message,
    whole_sandboxes,
)
from noa_core.sandbox.git import Git
from noa_core.sandbox.merge import (
    Integration,
    IntegrationConflict,
    MergePlan,
    ProjectValidation,
    TestPlan,
    Verdict,
    affected_projects,
    project_trees,
)


class Validator(Protocol):
    def run(self, commit: str, plans: list[TestPlan]) -> dict[str, ProjectValidation]: ...


@dataclass(frozen=True)
class QueueSteps:
    """What the queue needs from its caller: the workspace's git, and the steps the flow runs as tasks.

    ``build(keep, message)``: a candidate of D plus only the drops whose keys are in ``keep``;
    ``test_plans(commit, projects)``: how each project is tested at ``commit``;
    ``log(message)``: progress (one bisection probe per line).
    """

    git: Git
    build: Callable[[list[str], bytes | None], Integration]
    test_plans: Callable[[str, list[str]], list[TestPlan]]
    validator: Validator
    log: Callable[[str], None] = lambda _message: None


@dataclass
class QueueOutcome:
    result: QueueResult
    candidate: Integration | None = None       # D + the kept drops, validated (None: nothing to merge)
    validation: dict[str, ProjectValidation] = field(default_factory=dict)
    unattributed: list[str] = field(default_factory=list)   # failing projects no drop of this run changes


def _why(v: ProjectValidation) -> str:
    return v.status + (f" ({v.summary_line})" if v.summary_line else (f" ({v.reason})" if v.reason else ""))


def _validate(steps: QueueSteps, plan: MergePlan, commit: str) -> dict[str, ProjectValidation]:
    changed, removed = affected_projects(steps.git, plan.d_head, commit)
    validation = steps.validator.run(commit, steps.test_plans(commit, changed))
    for project in removed:
        validation[project] = ProjectValidation(project, "", "skipped", reason="removed by the merge")
    return validation


def _bisect_project(steps: QueueSteps, plan: MergePlan, units: list[DropUnit], touching: list[DropUnit],
                    project: str, probes: list[dict[str, Any]]) -> list[HeldDrop]:
    by_key = {u.key: u for u in units}

    def probe(subset: tuple[str, ...]) -> tuple[bool, str]:
        if subset:
            try:
                commit = steps.build(list(subset), None).commit
            except IntegrationConflict as exc:
                return True, f"does not merge cleanly: {exc.one_line()}"
        else:
            commit = plan.d_head
        if project not in project_trees(steps.git, commit):
            return False, f"passes ({project} absent)"
        result = steps.validator.run(commit, steps.test_plans(commit, [project]))[project]
        detail = "passes" if result.ok else f"{project} {_why(result)}"
        steps.log(f"bisection probe D+{'+'.join(subset) or 'nothing'}: {detail}")
        return not result.ok, detail

    culprit = find_culprit([u.key for u in touching], probe, batch_detail=f"all of them fail {project}",
                           noun=("drop", "drops"))
    for p in culprit.probes:
        probes.append({"project": project, "drops": list(p.sandboxes), "failed": p.failed, "detail": p.detail,
                       "sandboxes": list(dict.fromkeys(by_key[k].sandbox for k in p.sandboxes))})
    if not culprit.sandboxes:  # the project already fails on D: none of these drops can be shown to pass
        return [HeldDrop(u, f"the tests of {project} already fail on D without any drop; "
                            f"this drop changes {project}", project) for u in touching]
    return [HeldDrop(by_key[k], f"{culprit.reason} of {project} (named by bisection)", project)
            for k in culprit.sandboxes]


def hold_failing_drops(steps: QueueSteps, plan: MergePlan, units: list[DropUnit],
                       validation: dict[str, ProjectValidation], run_id: str,
                       already_held: dict[str, HeldDrop] | None = None) -> QueueOutcome:
    """Hold the drops that make ``validation`` fail; build and validate the rest.

    ``validation`` is of the batch without ``already_held`` (drops held for conflicts).
    """
    outcome = QueueOutcome(QueueResult(held=dict(already_held or {})), validation=validation)
    held = outcome.result.held
    keep = [u.key for u in units if u.key not in held]
    for _round in range(len(units) + 1):
        failing = [p for p, v in outcome.validation.items() if not v.ok]
        if not failing:
            return outcome
        for project in failing:
            touching = [u for u in units if u.key in keep and u.project == project]
            if len(touching) == 1:
                unit = touching[0]
                held[unit.key] = HeldDrop(unit, f"its project's tests fail with it: {project} "
                                                f"{_why(outcome.validation[project])}", project)
            elif touching:
                for h in _bisect_project(steps, plan, units, touching, project, outcome.result.probes):
                    held[h.unit.key] = h
            else:
                outcome.unattributed.append(project)
        if outcome.unattributed:
            outcome.candidate = None
            return outcome
        keep = [k for k in keep if k not in held]
        if not keep:
            outcome.candidate = None
            return outcome
        kept = [u for u in units if u.key in keep]
        message = drop_merge_message(plan.to_merge, plan.heads, kept, list(held.values()),
                                     whole_sandboxes(units, keep, plan.to_merge), run_id)
        outcome.candidate = steps.build(keep, message)
        outcome.validation = _validate(steps, plan, outcome.candidate.commit)
    outcome.candidate = None
    return outcome


def held_summary(held: list[HeldDrop]) -> str:
    return "; ".join(f"{h.unit.drop_id} ({h.unit.project}, sandbox {h.unit.sandbox}): {h.reason}" for h in held)


def drop_verdicts(plan: MergePlan, units: list[DropUnit], held: dict[str, HeldDrop], merged_at: str | None,
                  moved: Callable[[str], bool | None]) -> dict[str, Verdict]:
    """Each sandbox's verdict after the queue held ``held`` (``merged_at``: the new D, None if D did not move).

    ``moved(name)``: True when the sandbox was reset/rebuilt, False when it received commits
    meanwhile (left alone), None when it was not to be moved.
    """
    verdicts: dict[str, Verdict] = {}
    for name in plan.to_merge:
        mine = [u for u in units if u.sandbox == name]
        held_here = [held[u.key] for u in mine if u.key in held]
        merged_here = [u for u in mine if u.key not in held] if merged_at else []
        if merged_at and not held_here:
            note = ("reset to the new D" if moved(name)
                    else "it received new commits during the merge, so it was not reset (those stay ahead of D)")
            verdicts[name] = Verdict("merged", f"merged into D at {merged_at[:12]}; {note}")
        elif merged_here:
            note = ("it now holds only the held drops, on top of the new D" if moved(name)
                    else "it was left as it was (it received new commits during the merge, or its held drops "
                         "could not be put back on the new D)")
            verdicts[name] = Verdict("partially merged",
                                     f"{len(merged_here)} drop{'s' if len(merged_here) != 1 else ''} "
                                     f"({', '.join(u.drop_id for u in merged_here)}) merged into D at "
                                     f"{merged_at[:12] if merged_at else '-'}; held: {held_summary(held_here)}; {note}")
        elif held_here:
            verdicts[name] = Verdict("failed", f"held: {held_summary(held_here)}; fix the drop and merge again")
        else:
            verdicts[name] = Verdict("not merged", "nothing of it was merged: the rest of the batch still fails")
    return verdicts
