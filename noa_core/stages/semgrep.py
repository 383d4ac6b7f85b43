"""semgrep with the rule files NOA ships (``noa_core/data/semgrep/*.yaml``), offline.

semgrep's ``--config auto`` fetches rules from the network, so NOA ships its own and runs
``semgrep scan --metrics off --disable-version-check --config <each file> --json`` inside
the isolation sandbox (no network; the tree read-only, a scratch directory writable).
Without semgrep the check is ``skipped: semgrep not installed``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noa_core.analysis.interface import Finding
from noa_core.config import ExecLimits
from noa_core.isolation import run_isolated

__all__ = ["RULES_DIR", "SemgrepRun", "find_semgrep", "rule_files", "rule_id_of", "rule_ids", "run_semgrep"]

RULES_DIR = Path(__file__).resolve().parent.parent / "data" / "semgrep"
SEVERITY = {"ERROR": "high", "WARNING": "medium", "INFO": "low"}
MAX_FINDINGS = 500


@dataclass(frozen=True)
class SemgrepRun:
    status: str  # ok | unknown | skipped
    reason: str = ""
    findings: tuple[Finding, ...] = ()
    rules: int = 0
    files_scanned: int = 0
    errors: tuple[str, ...] = ()
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "findings": [f.as_dict() for f in self.findings],
                "rules": self.rules, "files_scanned": self.files_scanned, "errors": list(self.errors),
                "seconds": round(self.seconds, 3)}


def find_semgrep() -> str | None:
    """The semgrep beside this interpreter (the venv), else on PATH."""
    here = Path(sys.executable).parent / "semgrep"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("semgrep")


def rule_files(rules_dir: Path = RULES_DIR) -> list[Path]:
    return sorted(p for p in Path(rules_dir).glob("*.yaml") if p.is_file())


def rule_ids(files: list[Path]) -> list[str]:
    """The ``id`` of every rule in the rule files, as the files spell them (unreadable files are skipped)."""
    import yaml

    ids: list[str] = []
    for f in files:
        try:
            rules = (yaml.safe_load(f.read_text()) or {}).get("rules", [])
        except (OSError, yaml.YAMLError, AttributeError):
            continue
        ids.extend(str(r["id"]) for r in rules if isinstance(r, dict) and r.get("id"))
    return ids


def rule_id_of(check_id: str, ids: list[str]) -> str:
    """The rule id behind semgrep's ``check_id``.

    semgrep names a finding ``<config path, slashes as dots>.<rule id>`` (the path as given
    on its command line, so it holds the checkout's folders). The rule id is the longest of
    the shipped ids that is the whole ``check_id`` or its dotted tail; nothing is guessed from
    the path. A ``check_id`` that matches no shipped id is returned as it is.
    """
    matches = [i for i in ids if check_id == i or check_id.endswith("." + i)]
    return max(matches, key=len) if matches else check_id


def run_semgrep(tree: Path, limits: ExecLimits, *, rules_dir: Path = RULES_DIR, timeout_s: float = 300.0,
                hide_paths: tuple[str, ...] = (), semgrep: str | None = None) -> SemgrepRun:
    exe = semgrep if semgrep is not None else find_semgrep()
    if not exe:
        return SemgrepRun("skipped", "semgrep not installed")
    files = rule_files(rules_dir)
    if not files:
        return SemgrepRun("skipped", f"no semgrep rule files in {rules_dir}")
    tree = Path(tree).resolve()
    exe_dir = os.path.dirname(os.path.realpath(exe))
    argv = [exe, "scan", "--metrics", "off", "--disable-version-check", "--json", "--quiet", "--no-git-ignore",
            "--timeout", "30", "--jobs", "1", "--max-target-bytes", "2000000",
            *(a for f in files for a in ("--config", str(f))), "--output", "", str(tree)]
    limits = limits.model_copy(update={"wall_seconds": min(float(limits.wall_seconds), timeout_s)})
    with tempfile.TemporaryDirectory(prefix="noa-semgrep-") as scratch:
        out = Path(scratch) / "semgrep.json"
        argv[argv.index("--output") + 1] = str(out)
        env = {"SEMGREP_SEND_METRICS": "off", "SEMGREP_ENABLE_VERSION_CHECK": "0",
               "PATH": f"{exe_dir}:{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin"}
        res = run_isolated(argv, Path(scratch), limits, env=env, readonly_paths=[str(tree), str(rules_dir)],
                           hide_paths=hide_paths, merge_stderr=True)
        if res.timed_out:
            return SemgrepRun("unknown", f"semgrep did not finish within {limits.wall_seconds:.0f} s",
                              seconds=res.seconds)
        try:
            doc = json.loads(out.read_text())
        except (OSError, ValueError):
            tail = [ln for ln in res.stdout.strip().splitlines() if ln.strip()][-1:] or [""]
            return SemgrepRun("unknown", f"semgrep exited {res.returncode} without a report: {tail[0][:300]}",
                              seconds=res.seconds)
    ids = rule_ids(files)
    findings: list[Finding] = []
    for r in doc.get("results", []) or []:
        extra = r.get("extra") or {}
        path = str(r.get("path", ""))
        try:
            path = Path(path).resolve().relative_to(tree).as_posix()
        except ValueError:
            pass
        rule = rule_id_of(str(r.get("check_id", "?")), ids)
        findings.append(Finding(analyzer="semgrep", rule=rule,
                                severity=SEVERITY.get(str(extra.get("severity", "")).upper(), "low"),  # type: ignore[arg-type]
                                message=str(extra.get("message", "")).strip()[:300], path=path,
                                line=(r.get("start") or {}).get("line")))
    errors = tuple(str(e.get("message", e))[:300] for e in doc.get("errors", []) or [] if isinstance(e, dict))
    scanned = len(((doc.get("paths") or {}).get("scanned")) or [])
    status = "ok" if not errors else "unknown"
    reason = "" if not errors else f"{len(errors)} semgrep errors: {errors[0][:200]}"
    return SemgrepRun(status, reason, tuple(findings[:MAX_FINDINGS]), len(ids), scanned, errors,
                      res.seconds)
