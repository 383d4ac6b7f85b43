"""Stage 3: the project's benchmarks, compared with the baseline stored in NOA_HOME.

Benchmarks come from two places: the Go swarm's ``go test -bench`` results (in the swarm
summary), and pytest-benchmark, run here isolated with ``--benchmark-json`` when the
project has benchmark tests (a test taking the ``benchmark`` fixture) and pytest-benchmark
is installed. Each benchmark is a time per operation in nanoseconds.

The baseline is ``NOA_HOME/baselines/<project>.json``. The first run that measures a
benchmark records it; later runs compare with it (``regression_pct`` = how much slower,
in percent). Delete the file to take a new baseline.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from noa_core.config import ExecLimits
from noa_core.isolation import make_work_copy, run_isolated
from noa_core.manifest import NoaManifest
from noa_core.pyenv.provider import EnvChoice

__all__ = [
    "Baselines",
    "BenchmarkRun",
    "compare",
    "go_benchmarks",
    "has_pytest_benchmarks",
    "parse_pytest_benchmark_json",
    "run_pytest_benchmarks",
]

_BENCH_FIXTURE = re.compile(r"def\s+test\w*\s*\([^)]*\bbenchmark\b", re.DOTALL)
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", "build", "dist"}
MAX_SCAN_BYTES = 512 * 1024


@dataclass(frozen=True)
class BenchmarkRun:
    """Benchmarks measured by one tool: ``{name: ns_per_op}``; ``reason`` when none were."""

    source: str
    status: str  # ok | failed | skipped
    benchmarks: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "status": self.status, "benchmarks": dict(self.benchmarks),
                "reason": self.reason, "seconds": round(self.seconds, 3)}


def go_benchmarks(swarm_summary: Mapping[str, Any] | None) -> BenchmarkRun | None:
    """The Go swarm's ``bench`` check, or None when the swarm had no Go."""
    rep = ((swarm_summary or {}).get("swarms") or {}).get("go")
    if not rep:
        return None
    for r in rep.get("results", []):
        if r.get("check") != "bench":
            continue
        data = r.get("data") or {}
        found = {f"go:{name}": float(v["ns_per_op"]) for name, v in (data.get("benchmarks") or {}).items()
                 if isinstance(v, Mapping) and "ns_per_op" in v}
        return BenchmarkRun("go test -bench", r.get("status", "skipped"), found, r.get("reason", ""),
                            float(r.get("seconds", 0.0)))
    return None


def has_pytest_benchmarks(tree: Path) -> bool:
    """A Python test file with a test that takes pytest-benchmark's ``benchmark`` fixture."""
    for root, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
        for name in files:
            if not (name.endswith(".py") and (name.startswith("test") or name.endswith("_test.py")
                                              or "bench" in name)):
                continue
            path = Path(root) / name
            try:
                if path.is_symlink() or path.stat().st_size > MAX_SCAN_BYTES:
                    continue
                if _BENCH_FIXTURE.search(path.read_text(errors="replace")):
                    return True
            except OSError:
                continue
    return False


def parse_pytest_benchmark_json(doc: Mapping[str, Any]) -> dict[str, float]:
    """``{fullname: median ns}`` from pytest-benchmark's ``--benchmark-json`` file."""
    out: dict[str, float] = {}
    for b in doc.get("benchmarks", []) or []:
        stats = b.get("stats") or {}
        value = stats.get("median", stats.get("mean"))
        name = b.get("fullname") or b.get("name")
        if isinstance(value, (int, float)) and name:
            out[f"py:{name}"] = float(value) * 1e9
    return out


def run_pytest_benchmarks(tree: Path, manifest: NoaManifest | None, limits: ExecLimits, work_parent: Path,
                          *, hide_paths: Sequence[str] = (), python_env: EnvChoice | None = None) -> BenchmarkRun:
    """``pytest --benchmark-only --benchmark-json`` in an isolated work copy, in the project's own
    environment (``python_env``; pytest-benchmark must be among what the project declares)."""
    source = "pytest-benchmark"
    if not has_pytest_benchmarks(tree):
        return BenchmarkRun(source, "skipped", reason="no pytest benchmarks in the project")
    python = sys.executable
    env: dict[str, str] = {}
    readonly: list[str] = []
    if python_env is not None:
        if not python_env.ready or python_env.env is None:
            return BenchmarkRun(source, "failed", reason=f"unknown: no environment for the project: {python_env.reason}")
        if not python_env.env.has("pytest-benchmark"):
            return BenchmarkRun(source, "skipped", reason="pytest-benchmark is not among the project's dependencies")
        python = str(python_env.env.python)
        readonly += list(python_env.readonly_paths)
        env["PATH"] = f"{python_env.env.bin_dir}:/usr/local/bin:/usr/bin:/bin"
    elif importlib.util.find_spec("pytest_benchmark") is None:
        return BenchmarkRun(source, "skipped", reason="pytest-benchmark not installed")
    work_parent.mkdir(parents=True, exist_ok=True)
    work = make_work_copy(tree, work_parent)
    out = work / ".noa-benchmark.json"
    path = [str(work / p) for p in manifest.test.pythonpath] if manifest is not None else []
    if python_env is not None and python_env.site is not None:
        path.append(str(python_env.site))
    if path:
        env["PYTHONPATH"] = ":".join(path)
    argv = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-only",
            f"--benchmark-json={out}", "-o", "addopts="]
    try:
        res = run_isolated(argv, work, limits, env=env, hide_paths=hide_paths, merge_stderr=True,
                           readonly_paths=readonly)
        if res.timed_out:
            return BenchmarkRun(source, "failed", reason="pytest --benchmark-only timed out", seconds=res.seconds)
        try:
            doc = json.loads(out.read_text())
        except (OSError, ValueError):
            tail = res.stdout.strip().splitlines()[-1:] or [""]
            return BenchmarkRun(source, "failed", reason=f"pytest exited {res.returncode}: {tail[0][:300]}",
                                seconds=res.seconds)
        found = parse_pytest_benchmark_json(doc)
        if res.returncode != 0:
            return BenchmarkRun(source, "failed", found, f"pytest --benchmark-only exited {res.returncode}",
                                res.seconds)
        return BenchmarkRun(source, "ok" if found else "skipped", found,
                            "" if found else "pytest-benchmark measured nothing", res.seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compare(current: Mapping[str, float], baseline: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per measured benchmark: its time, the baseline's, and the regression in percent
    (positive = slower; None for a benchmark the baseline does not have yet)."""
    rows = []
    for name, ns in sorted(current.items()):
        base = baseline.get(name)
        base_ns = float(base["ns_per_op"]) if base and base.get("ns_per_op") else None
        pct = round((ns - base_ns) / base_ns * 100.0, 3) if base_ns else None
        rows.append({"name": name, "ns_per_op": ns, "baseline_ns_per_op": base_ns, "regression_pct": pct})
    return rows


class Baselines:
    """``<dir>/<project>.json``: the first measurement of each benchmark of a project."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    def path(self, project: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._+-]", "_", project)[:100] or "project"
        return self.dir / f"{safe}.json"

    def load(self, project: str) -> dict[str, dict[str, Any]]:
        try:
            doc = json.loads(self.path(project).read_text())
        except (OSError, ValueError):
            return {}
        marks = doc.get("benchmarks") if isinstance(doc, dict) else None
        return {k: v for k, v in (marks or {}).items() if isinstance(v, dict)}

    def record_missing(self, project: str, current: Mapping[str, float], content_hash: str = "") -> list[str]:
        """Add the benchmarks the baseline lacks; returns their names. Existing ones stay."""
        known = self.load(project)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        new = [n for n in sorted(current) if n not in known]
        if not new:
            return []
        for n in new:
            known[n] = {"ns_per_op": float(current[n]), "recorded_at": now, "content_hash": content_hash}
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.path(project)
        with tempfile.NamedTemporaryFile("w", dir=self.dir, delete=False, suffix=".tmp") as fh:
            json.dump({"project": project, "benchmarks": known}, fh, indent=2, sort_keys=True)
        os.replace(fh.name, path)
        return new
