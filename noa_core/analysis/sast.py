"""Static security analysis of Python code with bandit.

bandit runs as a child process on an explicit list of the tree's Python files (from
our own walk: no symlinks, vendored directories left out), from a scratch directory,
with ``--ignore-nosec`` (a received tree cannot silence its own findings with
``# nosec``) and without reading any configuration from the tree (with explicit file
arguments bandit looks for no ``.bandit`` file). B101 (``assert``) in test code is
expected there: such findings are dropped and counted in ``data["suppressed"]``.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from noa_core.analysis import _proc
from noa_core.sourcetree import safe_fs
from noa_core.analysis.interface import AnalyzerError, AnalyzerResult, Finding, Severity

MAX_FILE_BYTES = 4 * 1024 * 1024
ARGV_BUDGET = 100_000  # characters of file arguments per bandit process
MAX_FINDINGS = 500

# bandit (issue_severity, issue_confidence) -> our severity.
SEVERITY: dict[tuple[str, str], Severity] = {
    ("HIGH", "HIGH"): "high", ("HIGH", "MEDIUM"): "high", ("HIGH", "LOW"): "medium",
    ("MEDIUM", "HIGH"): "medium", ("MEDIUM", "MEDIUM"): "medium", ("MEDIUM", "LOW"): "low",
    ("LOW", "HIGH"): "low", ("LOW", "MEDIUM"): "low", ("LOW", "LOW"): "info",
}
_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def _bandit_available() -> bool:
    return importlib.util.find_spec("bandit") is not None


class SastAnalyzer:
    name = "sast"
    version = "1"

    def __init__(self, *, timeout: float = 120.0) -> None:
        self.timeout = timeout

    def analyze(self, tree: Path) -> AnalyzerResult:
        listing = safe_fs.walk(tree)
        python = [f for f in listing.files if f.suffix in (".py", ".pyw")]
        vendored = sum(1 for f in python if f.vendored)
        too_large = [f.rel for f in python if not f.vendored and f.size > MAX_FILE_BYTES]
        targets = [f.rel for f in python if not f.vendored and f.size <= MAX_FILE_BYTES]
        if not targets:
            why = "no Python files" if not python else "only vendored or oversized Python files"
            return AnalyzerResult(self.name, "skipped", reason=why,
                                  data={"files": 0, "vendored_skipped": vendored})
        if not _bandit_available():
            return AnalyzerResult(self.name, "skipped", reason="bandit is not installed")

        root = Path(tree).resolve()
        results, errors, timed_out = self._run(root, targets)
        findings: list[Finding] = []
        suppressed = 0
        by_rule: dict[str, int] = {}
        by_severity: dict[str, int] = {}
        for issue in results:
            rel = _relative(root, str(issue.get("filename", "")))
            rule = str(issue.get("test_id", "?"))
            if rule == "B101" and safe_fs.is_test_file(rel):
                suppressed += 1
                continue
            severity = SEVERITY.get((str(issue.get("issue_severity", "")).upper(),
                                     str(issue.get("issue_confidence", "")).upper()), "low")
            by_rule[rule] = by_rule.get(rule, 0) + 1
            by_severity[severity] = by_severity.get(severity, 0) + 1
            findings.append(Finding(
                analyzer=self.name, rule=rule, severity=severity,
                message=f"{issue.get('test_name', rule)}: {issue.get('issue_text', '')}".strip(),
                path=rel, line=_int(issue.get("line_number"))))
        findings.sort(key=lambda f: (-_RANK[f.severity], f.path or "", f.line or 0))
        data: dict[str, Any] = {
            "files": len(targets),
            "vendored_skipped": vendored,
            "suppressed": suppressed,
            "suppressed_rule": "B101 (assert) in test files",
            "by_rule": dict(sorted(by_rule.items())),
            "by_severity": by_severity,
            "high": by_severity.get("high", 0) + by_severity.get("critical", 0),
            "files_failed": [_relative(root, e) for e in errors][:200],
            "findings_truncated": len(findings) > MAX_FINDINGS,
        }
        not_checked = len(errors) + len(timed_out) + len(too_large)
        if not_checked:
            parts = []
            if errors:
                parts.append(f"{len(errors)} bandit could not parse")
            if timed_out:
                parts.append(f"{len(timed_out)} not analysed within {self.timeout:.0f} s")
            if too_large:
                parts.append(f"{len(too_large)} over {MAX_FILE_BYTES // (1024 * 1024)} MiB")
            data["not_checked"] = (too_large + timed_out)[:200]
            return AnalyzerResult(self.name, "unknown",
                                  reason=f"{not_checked} Python files not checked: " + ", ".join(parts),
                                  data=data, findings=tuple(findings[:MAX_FINDINGS]))
        return AnalyzerResult(self.name, "ok", data=data, findings=tuple(findings[:MAX_FINDINGS]))

    def _run(self, root: Path, targets: list[str]
             ) -> tuple[list[dict[str, Any]], list[str], list[str]]:
        """bandit over batches of files; returns (issues, files it failed on, files not run)."""
        batches: list[list[str]] = [[]]
        used = 0
        for rel in targets:
            if used > ARGV_BUDGET:
                batches.append([])
                used = 0
            batches[-1].append(rel)
            used += len(str(root)) + len(rel) + 2
        issues: list[dict[str, Any]] = []
        errors: list[str] = []
        timed_out: list[str] = []
        deadline = time.monotonic() + self.timeout
        with tempfile.TemporaryDirectory(prefix="noa-bandit-") as tmp:
            scratch = Path(tmp)
            for i, batch in enumerate(batches):
                if time.monotonic() >= deadline:
                    timed_out.extend(batch)
                    continue
                report = scratch / f"bandit-{i}.json"
                argv = _proc.python_argv("-m", "bandit", "-f", "json", "-q", "--ignore-nosec",
                                         "-o", str(report), "--", *(str(root / r) for r in batch))
                done = _proc.finish(_proc.start(argv, scratch, tag=f"b{i}"), deadline)
                if done.timed_out:
                    timed_out.extend(batch)
                    continue
                try:
                    doc = json.loads(report.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError):
                    raise AnalyzerError(f"bandit produced no report (exit {done.returncode}): "
                                       f"{done.stderr_tail()}") from None
                issues.extend(r for r in doc.get("results", []) if isinstance(r, dict))
                errors.extend(str(e.get("filename", "?")) for e in doc.get("errors", [])
                              if isinstance(e, dict))
        return issues, errors, timed_out


def _relative(root: Path, filename: str) -> str:
    try:
        return Path(filename).resolve().relative_to(root).as_posix()
    except ValueError:
        return filename


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None
