"""Stage 4: bandit, semgrep (NOA's shipped rules), committed secrets and known vulnerabilities.

bandit, detect-secrets and pip-audit already ran as the code drop's analyzers (cached by
content); their results are read here, semgrep runs now. Each check keeps its own status
(``ok`` / ``unknown`` / ``skipped`` with the reason), and every finding goes through the
severity gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from noa_core.stages.semgrep import SemgrepRun

__all__ = ["CHECKS", "security_checks"]

#: check name -> analyzer name in the code drop's analysis
CHECKS: dict[str, str] = {"bandit": "sast", "secrets": "secrets", "vulnerabilities": "vulnerabilities"}


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
        findings.extend(found)
        reason = res.get("reason", "")
        if found and not reason:
            reason = _by_severity(found)
        rows.append({"check": check, "status": res.get("status", "unknown"), "findings": len(found),
                     "reason": reason})
    sg = [f.as_dict() for f in semgrep.findings]
    findings.extend(sg)
    rows.append({"check": "semgrep", "status": semgrep.status, "findings": len(sg),
                 "reason": semgrep.reason or (f"{semgrep.rules} rules, {semgrep.files_scanned} files"
                                              if semgrep.status == "ok" else "")})
    return rows, findings


def _by_severity(found: list[dict[str, Any]]) -> str:
    """E.g. ``1 high, 4 info, 2 allowed``: what a check's findings amount to."""
    counts: dict[str, int] = {}
    for f in found:
        key = "allowed" if f.get("allowed") else str(f.get("severity"))
        counts[key] = counts.get(key, 0) + 1
    order = ("critical", "high", "medium", "low", "info", "allowed")
    return ", ".join(f"{counts[k]} {k}" for k in order if k in counts)
