"""The Python lint check: ``ruff check --output-format json``, isolated, findings counted
by rule, through the hive."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from noa_core.isolation import make_work_copy, run_isolated
from noa_core.swarm.hive_keys import content_hash
from noa_core.swarm.interface import CheckResult, SwarmContext, through_hive

__all__ = ["find_ruff", "lint_with_ruff", "tool_version"]

_MAX_LINT_JSON = 64 * 1024 * 1024


def tool_version(exe: str) -> str | None:
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    out = (proc.stdout or proc.stderr).strip().splitlines()
    return out[0].strip() if proc.returncode == 0 and out else None


def find_ruff() -> str | None:
    """ruff next to NOA's interpreter first (the venv), then on PATH."""
    here = Path(sys.executable).parent / "ruff"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("ruff")


def _lint_summary(findings: list[Any], tree_prefix: str) -> tuple[dict[str, int], list[dict[str, Any]]]:
    by_rule: dict[str, int] = {}
    sample: list[dict[str, Any]] = []
    for f in findings:
        if not isinstance(f, dict):
            continue
        code = str(f.get("code") or "syntax")
        by_rule[code] = by_rule.get(code, 0) + 1
        if len(sample) < 20:
            loc = f.get("location") or {}
            name = str(f.get("filename") or "")
            if name.startswith(tree_prefix):
                name = name[len(tree_prefix):]
            sample.append({"code": code, "path": name, "line": loc.get("row") if isinstance(loc, dict) else None,
                           "message": str(f.get("message", ""))[:300]})
    return dict(sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0]))), sample


def lint_with_ruff(tree: Path, ctx: SwarmContext, ruff: str, version: str) -> CheckResult:
    """``ruff check --output-format json`` isolated, with the ruff at ``ruff`` (``version``);
    findings counted by rule."""
    tree = Path(tree).resolve()
    argv = [ruff, "check", "--output-format", "json", "--no-cache", "."]
    chash = ctx.content_hash or content_hash(tree)

    def compute() -> CheckResult:
        parent = Path(ctx.work_parent) / "python-lint"
        work = make_work_copy(tree, parent)
        out = parent / f"{work.name}.json"
        try:
            res = run_isolated(argv, work, ctx.limits, stdout_path=out, hide_paths=ctx.hide_paths,
                               env={"RUFF_NO_CACHE": "true"})
        finally:
            shutil.rmtree(work, ignore_errors=True)
        command = ("ruff", *argv[1:])
        base: dict[str, Any] = dict(
            toolchain="python", check="lint", tool="ruff", tool_version=version, command=command,
            seconds=res.seconds, isolation=res.isolation, computed_by=ctx.agent)
        if res.timed_out:
            return CheckResult(status="failed", reason="ruff timed out", data={"uncacheable": "timeout"}, **base)
        try:
            size = out.stat().st_size
            findings = json.loads(out.read_text(errors="replace")) if 0 < size <= _MAX_LINT_JSON else None
        except (OSError, ValueError):
            findings = None
        if res.returncode not in (0, 1) or not isinstance(findings, list):
            tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or [""]
            return CheckResult(status="failed", reason=f"ruff exited {res.returncode}: {tail[0][:300]}",
                               **base)
        by_rule, sample = _lint_summary(findings, str(work) + "/")
        n = sum(by_rule.values())
        return CheckResult(status="ok" if n == 0 else "failed",
                           reason="" if n == 0 else f"{n} ruff findings ({', '.join(list(by_rule)[:5])})",
                           findings=n, data={"by_rule": by_rule, "sample": sample}, **base)

    return through_hive(ctx, toolchain="python", check="lint", tool="ruff", tool_version=version,
                        command=["ruff", *argv[1:]], compute=compute, content_hash=chash)
