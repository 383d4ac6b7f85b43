"""The stage gates: each takes what its stage measured and the ``gates`` of noa.yaml.

Defaults live in :class:`noa_core.manifest.GatesConfig` (min confidence 0.3, every test
passing, at most 10 % slower than the baseline, nothing above ``medium`` severity, no
committed secret, the build must succeed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from noa_core.analysis.secret_policy import is_committed_secret
from noa_core.manifest import GatesConfig
from noa_core.stages.result import Gate

__all__ = ["SEVERITY_RANK", "analysis_gate", "build_gate", "performance_gate", "security_gate", "testing_gate"]

SEVERITY_RANK: dict[str, int] = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
TEST_CHECKS = ("tests", "test")  # python "tests", rust and go "test"
BLOCKING_CHECKS = ("swarm", "check")  # a crashed swarm; a crate that does not compile


def analysis_gate(confidence: float | None, gates: GatesConfig) -> Gate:
    rule = f"confidence >= {gates.min_confidence:g}"
    if confidence is None:
        return Gate(rule, False, None, gates.min_confidence, "no confidence score")
    ok = confidence >= gates.min_confidence
    return Gate(rule, ok, round(confidence, 4), gates.min_confidence,
                "" if ok else f"confidence {confidence:.2f} is below {gates.min_confidence:g}")


def _counts(results: Iterable[Mapping[str, Any]]) -> tuple[int, int, int, int]:
    passed = failed = errors = total = 0
    for r in results:
        c = r.get("counts") or {}
        passed += int(c.get("passed", 0))
        failed += int(c.get("failed", 0))
        errors += int(c.get("errors", 0))
        total += int(c.get("passed", 0)) + int(c.get("failed", 0)) + int(c.get("errors", 0))
    return passed, failed, errors, total


def testing_gate(summary: Mapping[str, Any], gates: GatesConfig) -> Gate:
    """Pass rate of the swarms' test checks; a crashed swarm or a failed compile check fails."""
    rule = f"pass rate >= {gates.min_pass_rate:g}" + (", tests required" if gates.require_tests else "")
    results = [r for rep in (summary.get("swarms") or {}).values() for r in rep.get("results", [])]
    broken = [r for r in results if r.get("check") in BLOCKING_CHECKS and r.get("status") == "failed"]
    tests = [r for r in results if r.get("check") in TEST_CHECKS]
    ran = [r for r in tests if r.get("status") != "skipped"]
    passed, failed, errors, total = _counts(ran)
    if broken:
        why = "; ".join(f"{r.get('toolchain')}/{r.get('check')}: {r.get('reason') or 'failed'}" for r in broken)
        return Gate(rule, False, None, gates.min_pass_rate, why[:500])
    hard = [r for r in ran if r.get("status") == "failed" and not (r.get("counts") or {})]
    if hard:
        why = "; ".join(f"{r.get('toolchain')}/{r.get('check')}: {r.get('reason') or 'failed'}" for r in hard)
        return Gate(rule, False, None, gates.min_pass_rate, why[:500])
    if total == 0:
        if gates.require_tests:
            return Gate(rule, False, 0, gates.min_pass_rate, "no tests ran and the gate requires tests")
        return Gate(rule, None, None, gates.min_pass_rate, "no tests found")
    rate = passed / total
    ok = rate >= gates.min_pass_rate
    return Gate(rule, ok, round(rate, 4), gates.min_pass_rate,
                "" if ok else f"{failed} failed, {errors} errors of {total} tests: pass rate {rate:.3f}")


def performance_gate(comparisons: Sequence[Mapping[str, Any]], gates: GatesConfig) -> Gate:
    """Every benchmark at most ``max_regression_pct`` slower than its baseline."""
    rule = f"regression <= {gates.max_regression_pct:g}%"
    compared = [c for c in comparisons if c.get("regression_pct") is not None]
    if not compared:
        return Gate(rule, None, None, gates.max_regression_pct, "no baseline to compare with")
    worst = max(compared, key=lambda c: float(c["regression_pct"]))
    value = round(float(worst["regression_pct"]), 2)
    bad = [c for c in compared if float(c["regression_pct"]) > gates.max_regression_pct]
    if bad:
        why = ", ".join(f"{c['name']} {float(c['regression_pct']):+.1f}%" for c in bad[:10])
        return Gate(rule, False, value, gates.max_regression_pct, f"slower than the baseline: {why}")
    return Gate(rule, True, value, gates.max_regression_pct, "")


def security_gate(findings: Sequence[Mapping[str, Any]], gates: GatesConfig) -> Gate:
    """No finding above ``max_severity``; no committed secret when ``fail_on_secrets``.

    A committed secret is a secrets finding at medium or above that the project's
    allow-list did not waive (:mod:`noa_core.analysis.secret_policy`): entropy-only
    matches (low, informational in tests) never count. The reason names the first few
    with why each got its severity."""
    rule = f"severity <= {gates.max_severity}" + (", no secrets" if gates.fail_on_secrets else "")
    limit = SEVERITY_RANK[gates.max_severity]
    worst = max((SEVERITY_RANK.get(str(f.get("severity")), 0) for f in findings), default=None)
    worst_name = next((k for k, v in SEVERITY_RANK.items() if v == worst), None) if worst is not None else None
    secrets = [f for f in findings if is_committed_secret(dict(f))]
    over = [f for f in findings if SEVERITY_RANK.get(str(f.get("severity")), 0) > limit]
    reasons = []
    if over:
        by: dict[str, int] = {}
        for f in over:
            by[str(f.get("analyzer"))] = by.get(str(f.get("analyzer")), 0) + 1
        reasons.append(f"{len(over)} findings above {gates.max_severity} ("
                       + ", ".join(f"{k} {v}" for k, v in sorted(by.items())) + ")")
    if gates.fail_on_secrets and secrets:
        named = "; ".join(f"{f.get('rule')} in {f.get('path')}:{f.get('line')} ({f.get('reason') or f.get('severity')})"
                          for f in secrets[:3])
        more = f"; and {len(secrets) - 3} more" if len(secrets) > 3 else ""
        reasons.append(f"{len(secrets)} committed secret(s): {named}{more}")
    return Gate(rule, not reasons, worst_name, gates.max_severity, "; ".join(reasons))


def build_gate(status: str, reason: str, gates: GatesConfig) -> Gate:
    rule = "build succeeds" if gates.build_required else "build optional"
    if status == "skipped":
        return Gate(rule, None, status, None, reason)
    if status == "ok" or not gates.build_required:
        return Gate(rule, True, status, None, "" if status == "ok" else f"build failed, allowed: {reason}")
    return Gate(rule, False, status, None, reason)
