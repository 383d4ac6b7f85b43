"""Committed secrets, found with detect-secrets over every file of the tree.

detect-secrets scans nothing outside a git repository unless told to, so the files
come from our own walk (all regular files, vendored ones included; no symlinks, no
``.git``) and go to its per-file API in child processes (``_secrets_worker.py``),
split by size over the CPUs and killed at the time limit. Files a worker did not reach
in time are listed and make the result ``unknown``.

Findings carry the secret type, path and line, never the value, and a severity with
the reason for it from :mod:`noa_core.analysis.secret_policy`: provider formats high,
entropy-only matches low (informational in test files), and the project's own
allow-lists (``pragma: allowlist secret``, ``.secrets.baseline``, ``security.secrets.allow``
in its ``noa.yaml``) honoured except for provider-format secrets, which the received tree
can never waive.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from noa_core.analysis import _proc
from noa_core.sourcetree import safe_fs
from noa_core.analysis.interface import AnalyzerError, AnalyzerResult, Finding
from noa_core.analysis.secret_policy import AllowRule, Baseline, is_committed_secret, judge, parse_baseline
from noa_core.errors import ManifestError
from noa_core.manifest import MANIFEST_FILENAME, MAX_MANIFEST_BYTES, SecretsPolicyConfig, parse_manifest

WORKER = Path(__file__).with_name("_secrets_worker.py")
MAX_FILE_BYTES = 8 * 1024 * 1024
BYTES_PER_WORKER = 64 * 1024
HEAD_BYTES = 8192
MAX_FINDINGS = 500


def _detect_secrets_available() -> bool:
    return importlib.util.find_spec("detect_secrets") is not None


class SecretsAnalyzer:
    name = "secrets"
    version = "2"  # 2: severity by kind and place, allow-lists

    def __init__(self, *, timeout: float = 120.0, workers: int | None = None) -> None:
        self.timeout = timeout
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))

    def analyze(self, tree: Path) -> AnalyzerResult:
        if not _detect_secrets_available():
            return AnalyzerResult(self.name, "skipped", reason="detect-secrets is not installed")
        listing = safe_fs.walk(tree)
        to_scan: list[tuple[str, int]] = []
        too_large: list[str] = []
        unreadable: list[str] = []
        binary = 0
        for f in listing.files:
            if f.size > MAX_FILE_BYTES:
                too_large.append(f.rel)
                continue
            try:
                head = safe_fs.read_bytes(tree, f.rel, HEAD_BYTES)
            except OSError:
                unreadable.append(f.rel)
                continue
            if safe_fs.is_binary(head):
                binary += 1
                continue
            to_scan.append((f.rel, f.size))

        policy, rules, baseline, policy_notes = _project_policy(tree)
        records, not_reached, failed = self._scan(tree, to_scan, baseline)
        findings: list[Finding] = []
        by_type: dict[str, int] = {}
        by_severity: dict[str, int] = {}
        committed = 0
        for rec in sorted(records, key=lambda r: r["file"]):
            rel = rec["file"]
            for hit in rec.get("secrets", []):
                kind = str(hit["type"])
                by_type[kind] = by_type.get(kind, 0) + 1
                rule = next((r for r in rules if r.matches(rel, kind)), None)
                verdict = judge(kind, rel, pragma=bool(hit.get("allowlisted")), baselined=bool(hit.get("baselined")),
                                rule=rule, baseline_path=policy.baseline)
                by_severity[verdict.severity] = by_severity.get(verdict.severity, 0) + 1
                finding = Finding(
                    analyzer=self.name, rule=kind, severity=verdict.severity,
                    message=f"possible {kind} in {rel}" + (" (allowed)" if verdict.allowed else ""),
                    path=rel, line=int(hit["line"]), reason=verdict.reason, allowed=verdict.allowed)
                committed += is_committed_secret(finding.as_dict())
                if len(findings) < MAX_FINDINGS:
                    findings.append(finding)
        data: dict[str, Any] = {
            "files_scanned": len(records) - len(failed),
            "files_total": len(listing.files),
            "binary_skipped": binary,
            "symlinks_skipped": listing.symlinks_skipped,
            "secrets": sum(by_type.values()),
            "by_type": by_type,
            "by_severity": by_severity,
            "committed": committed,
            "allow_list": {"baseline": baseline.path if baseline else None, "noa_yaml_entries": len(rules),
                           "notes": policy_notes},
            "findings_truncated": sum(by_type.values()) > len(findings),
        }
        unscanned = too_large + unreadable + not_reached + failed
        if unscanned:
            data["not_scanned"] = unscanned[:200]
            parts = []
            if unreadable:
                parts.append(f"{len(unreadable)} unreadable")
            if too_large:
                parts.append(f"{len(too_large)} over {MAX_FILE_BYTES // (1024 * 1024)} MiB")
            if not_reached:
                parts.append(f"{len(not_reached)} not reached within {self.timeout:.0f} s")
            if failed:
                parts.append(f"{len(failed)} failed in detect-secrets")
            return AnalyzerResult(self.name, "unknown",
                                  reason=f"{len(unscanned)} files not scanned: " + ", ".join(parts),
                                  data=data, findings=tuple(findings))
        return AnalyzerResult(self.name, "ok", data=data, findings=tuple(findings))

    def _scan(self, tree: Path, files: list[tuple[str, int]], baseline: Baseline | None = None
              ) -> tuple[list[dict[str, Any]], list[str], list[str]]:
        """Scan in parallel workers. Returns (records, files not reached, files failed)."""
        if not files:
            return [], [], []
        total = sum(size for _, size in files)
        n = max(1, min(self.workers, -(-total // BYTES_PER_WORKER)))
        sizes = dict(files)
        # Balanced by bytes; each worker then goes smallest first, so that a time limit
        # leaves the fewest files unscanned.
        chunks = [sorted(c, key=lambda rel: (sizes[rel], rel)) for c in _proc.chunks_by_size(files, n)]
        records: list[dict[str, Any]] = []
        not_reached: list[str] = []
        with tempfile.TemporaryDirectory(prefix="noa-secrets-") as tmp:
            scratch = Path(tmp)
            running = []
            for i, chunk in enumerate(chunks):
                request = scratch / f"request-{i}.json"
                results = scratch / f"results-{i}.jsonl"
                waived = {rel: baseline.for_file(rel) for rel in chunk if baseline and baseline.for_file(rel)}
                request.write_text(json.dumps({"root": str(Path(tree).resolve()), "files": chunk,
                                               "baseline": waived}))
                argv = _proc.python_argv(str(WORKER), str(request), str(results))
                running.append((chunk, results, _proc.start(argv, scratch, tag=f"w{i}")))
            deadline = time.monotonic() + self.timeout
            for chunk, results, proc in running:
                done = _proc.finish(proc, deadline)
                got = _read_records(results)
                records.extend(got)
                seen = {r["file"] for r in got}
                not_reached.extend(rel for rel in chunk if rel not in seen)
                if done.returncode not in (0, None) and not got:
                    raise AnalyzerError(f"detect-secrets worker failed: {done.stderr_tail()}")
        failed = [r["file"] for r in records if "error" in r]
        return records, not_reached, failed


def _project_policy(tree: Path) -> tuple[SecretsPolicyConfig, list[AllowRule], Baseline | None, list[str]]:
    """The tree's own allow-lists: ``security.secrets`` of its noa.yaml and its baseline file.

    A noa.yaml or baseline that does not parse is not applied (the note says why); the
    scan itself goes on, so a broken allow-list can only make findings stricter."""
    notes: list[str] = []
    policy = SecretsPolicyConfig()
    if safe_fs.is_regular(tree, MANIFEST_FILENAME):
        try:
            raw = safe_fs.read_bytes(tree, MANIFEST_FILENAME, MAX_MANIFEST_BYTES + 1)
            policy = parse_manifest(raw.decode("utf-8", errors="replace")).security.secrets
        except OSError as exc:
            notes.append(f"noa.yaml allow-list not applied: cannot read: {exc}")
        except ManifestError as exc:
            notes.append(f"noa.yaml allow-list not applied: {exc.one_line()}")
    rules = [AllowRule(e.path, e.type, e.reason, i) for i, e in enumerate(policy.allow)]
    baseline = None
    if safe_fs.is_regular(tree, policy.baseline):
        try:
            raw = safe_fs.read_bytes(tree, policy.baseline, 8 * 1024 * 1024 + 1)
            baseline = parse_baseline(raw, policy.baseline)
        except (OSError, ValueError) as exc:
            notes.append(f"baseline not applied: {exc}")
    return policy, rules, baseline, notes


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by the kill
        if isinstance(rec, dict) and isinstance(rec.get("file"), str):
            out.append(rec)
    return out
