"""How a finished ``code_drop`` run files its drop-in item: processed, failed or quarantined, and why."""

from __future__ import annotations

from typing import Any

from noa_core.dropin.journal import ItemRecord, Outcome
from noa_core.dropin.runs import RunOutcome

TESTS_BAD = ("failed", "error", "timeout")


def one_line(text: str, limit: int = 2000) -> str:
    return " ".join(str(text).split())[:limit]


def summary(report: dict[str, Any]) -> str:
    tests = report.get("tests") or {}
    parts = [f"{report.get('project', '?')}"]
    if tests:
        parts.append(f"tests {tests.get('status')}: {tests.get('passed', 0)} passed, {tests.get('failed', 0)} failed"
                     + (f", {tests.get('errors')} errors" if tests.get("errors") else ""))
    if report.get("sandbox"):
        parts.append(f"sandbox {report['sandbox']}")
    if isinstance(report.get("confidence"), (int, float)):
        parts.append(f"confidence {report['confidence']:.2f}")
    return ", ".join(parts)


def judge(outcome: RunOutcome) -> tuple[Outcome, str, bool]:
    """Where a finished run files its item: (outcome folder, reason, whether the same content may run again)."""
    report = outcome.report
    retryable = False
    result: Outcome
    if outcome.state == "completed" and report:
        tests = report.get("tests") or {}
        if tests.get("status") in TESTS_BAD:
            result, reason = "failed", f"tests {tests.get('status')}: {summary(report)}"
        else:
            result, reason = "processed", summary(report)
    elif outcome.state == "completed":
        result, reason, retryable = "failed", "the run completed but its report could not be read", True
    elif outcome.state == "failed" and outcome.hostile:
        result, reason = "quarantined", f"{outcome.error_type}: {one_line(outcome.message)}"
    elif outcome.state == "failed":
        result = "failed"
        reason = f"{outcome.error_type}: {one_line(outcome.message)}" if outcome.error_type else \
            one_line(outcome.message) or "the run failed"
        retryable = not outcome.bad_input
    else:
        result, retryable = "failed", True
        reason = f"the flow run was {outcome.state}: {one_line(outcome.message) or 'no message'}"
    return result, reason, retryable


def reason_text(rec: ItemRecord) -> str | None:
    """The ``reason.txt`` of an item that was not processed (None for one that was)."""
    url = rec.extra.get("url")
    if rec.outcome == "processed":
        return None
    return "\n".join([
        f"{rec.outcome}: {rec.reason}",
        f"item: {rec.name} ({rec.kind})",
        f"content key: {rec.key}",
        f"attempt: {rec.attempt}",
        f"flow run: {url or rec.run_id or 'none (refused before a run)'}",
        f"finished: {rec.finished_at}",
        "retry: drop the same content again" if rec.retryable else
        "retry: this content is not run again from the drop-in folder (use `noa drop`)",
    ]) + "\n"


__all__ = ["TESTS_BAD", "judge", "one_line", "reason_text", "summary"]
