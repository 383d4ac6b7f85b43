"""Stage 4: bandit, semgrep (NOA's shipped rules), committed secrets and known vulnerabilities.

bandit, detect-secrets and pip-audit already ran as the code drop's analyzers (cached by
content); their results are read here, semgrep runs now. Each check keeps its own status
(``ok`` / ``unknown`` / ``skipped`` with the reason), and every finding goes through the
severity gate.

Code-pattern findings (bandit, semgrep) in test files and fixtures are informational: test
code does not ship, and an ``exec`` that builds test functions or a ``shell=True`` in a test
helper is no hole in the product (GitLab's SAST leaves ``test``/``tests``/``spec`` out
altogether; here they stay listed, with the severity they would have in shipped code in
their reason). Committed secrets keep their own policy (a provider key is high anywhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from noa_core.sourcetree.test_paths import why_test_file
from noa_core.stages.semgrep import SemgrepRun

__all__ = ["CHECKS", "CODE_PATTERN_CHECKS", "security_checks"]

#: check name -> analyzer name in the code drop's analysis
CHECKS: dict[str, str] = {"bandit": "sast", "secrets": "secrets", "vulnerabilities": "vulnerabilities"}
#: checks whose findings are code patterns: informational in test files
CODE_PATTERN_CHECKS = frozenset({"bandit", "semgrep"})


def security_checks(analyzers: Mapping[str, Mapping[str, Any]], semgrep: SemgrepRun
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one row per check, every finding) from the analysis results and a semgrep run."""
    rows: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    for check, analyzer in CHECKS.items():
        res = analyzers.get(analyzer)
        if res is None:
            rows.append({"check": check, "status": "skipped", "findings": 0, "reason": "not analysed"})
            continue
        found = [dict(f) for f in res.get("findings", [])]
        in_tests = 0
        if check in CODE_PATTERN_CHECKS:
            found, in_tests = _tests_informational(found)
        findings.extend(found)
        reason = res.get("reason", "")
        if found and (not reason or in_tests):
            reason = _by_severity(found) + (f" ({in_tests} in test files)" if in_tests else "")
        rows.append({"check": check, "status": res.get("status", "unknown"), "findings": len(found),
                     "reason": reason})
    sg, sg_in_tests = _tests_informational([f.as_dict() for f in semgrep.findings])
    findings.extend(sg)
    rows.append({"check": "semgrep", "status": semgrep.status, "findings": len(sg),
                 "reason": semgrep.reason or (f"{semgrep.rules} rules, {semgrep.files_scanned} files"
                                              + (f", {sg_in_tests} findings in test files" if sg_in_tests else "")
                                              if semgrep.status == "ok" else "")})
    return rows, findings


def _tests_informational(found: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Findings in test files and fixtures become ``info``, their reason saying what they would be."""
    out: list[dict[str, Any]] = []
    demoted = 0
    for f in found:
        rule = why_test_file(str(f.get("path") or "")) if f.get("path") else None
        if rule is None or f.get("severity") == "info":
            out.append(f)
            continue
        demoted += 1
        why = f"{f.get('severity')} in shipped code; informational in a test file ({rule}): test code does not ship"
        out.append({**f, "severity": "info", "reason": f"{why}; {f['reason']}" if f.get("reason") else why})
    return out, demoted


def _by_severity(found: list[dict[str, Any]]) -> str:
    """E.g. ``1 high, 4 info, 2 allowed``: what a check's findings amount to."""
    counts: dict[str, int] = {}
    for f in found:
        key = "allowed" if f.get("allowed") else str(f.get("severity"))
        counts[key] = counts.get(key, 0) + 1
    order = ("critical", "high", "medium", "low", "info", "allowed")
    return ", ".join(f"{counts[k]} {k}" for k in order if k in counts)
