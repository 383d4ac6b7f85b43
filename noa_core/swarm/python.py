"""The Python toolchain: tests with pytest (sharded, counted from pytest's own summary,
subtests apart) and lint with ruff (``ruff check --output-format json``), both isolated.

Tests run under NOA's own interpreter (which has pytest); the project's dependencies are
not installed, so a suite that needs them fails to import them and says so. The test
command comes from the project's ``noa.yaml`` (``test.command``, ``test.pythonpath``,
``test.timeout_s``), else ``python -m pytest`` with ``src`` on the path for a src layout.

The test check is cut into steps so that both drivers run the same code: this module's
:meth:`PythonToolchain.run_tests` (threads) and the ``python_swarm`` Prefect flow (one
task per step and per shard): :func:`begin_tests` -> :func:`plan_tests` ->
:func:`run_test_shard` (xN, in parallel) -> :func:`finish_tests`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from noa_core.config import ExecLimits
from noa_core.errors import ManifestError
from noa_core.isolation import make_work_copy, run_isolated
from noa_core.manifest import MANIFEST_FILENAME, NoaManifest, load_manifest
from noa_core.swarm import sharding
from noa_core.swarm.hive import ResultMeta, content_hash, result_key
from noa_core.swarm.interface import (
    CheckResult,
    SwarmContext,
    SwarmReport,
    Toolchain,
    skipped_result,
    through_hive,
)
from noa_core.swarm.sharding import Collection, Shard, ShardPlan, ShardRun
from noa_core.pyenv.provider import EnvChoice, prepare_python_env
from noa_core.validation.runner import is_python_command, suggest_pythonpath

__all__ = [
    "PythonToolchain",
    "TestsJob",
    "abort_tests",
    "begin_tests",
    "finish_tests",
    "plan_tests",
    "project_name",
    "run_test_shard",
]

DEFAULT_TEST_COMMAND = ("python", "-m", "pytest")
ORDER_DEPENDENT = "order-dependent"  # hive fact: failed only when sharded away from the files before it
WHOLE_RUN_FAILURE = "whole-run-failure"  # hive fact: failed in a whole-suite run too
_SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".tox", "target", "vendor"}
_MAX_DETECT_ENTRIES = 20_000
_MAX_LINT_JSON = 64 * 1024 * 1024
_AUTO = object()


# ----------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=1)
def environment_fingerprint() -> str:
    """A short hash of every distribution installed next to NOA's interpreter: the tests run
    there, so a changed environment is different work."""
    names = sorted(f"{(d.metadata['Name'] or '').lower()}=={d.version}" for d in importlib.metadata.distributions())
    return hashlib.blake2b("\n".join(names).encode(), digest_size=6).hexdigest()


@functools.lru_cache(maxsize=1)
def pytest_version() -> str | None:
    try:
        return importlib.metadata.version("pytest")
    except importlib.metadata.PackageNotFoundError:
        return None


def _tool_version(exe: str) -> str | None:
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


def project_name(tree: Path) -> str:
    """The name durations and flaky tests are recorded under: noa.yaml, pyproject, or the
    directory name without a version suffix."""
    tree = Path(tree)
    try:
        if (tree / MANIFEST_FILENAME).is_file():
            return load_manifest(tree / MANIFEST_FILENAME).name
    except ManifestError:
        pass
    py = tree / "pyproject.toml"
    try:
        if py.is_file() and not py.is_symlink() and py.stat().st_size < 1_000_000:
            name = tomllib.loads(py.read_text(errors="replace")).get("project", {}).get("name")
            if isinstance(name, str) and name.strip():
                return name.strip()[:200]
    except (OSError, tomllib.TOMLDecodeError):
        pass
    for manifest in ("Cargo.toml",):
        path = tree / manifest
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 1_000_000:
                name = tomllib.loads(path.read_text(errors="replace")).get("package", {}).get("name")
                if isinstance(name, str) and name.strip():
                    return name.strip()[:200]
        except (OSError, tomllib.TOMLDecodeError):
            pass
    return re.sub(r"-v?\d[\w.+-]*$", "", tree.resolve().name)[:200] or "project"


def _manifest(tree: Path) -> NoaManifest | None:
    path = Path(tree) / MANIFEST_FILENAME
    return load_manifest(path) if path.is_file() else None  # a bad noa.yaml is refused (exit 2)


def has_python(tree: Path) -> bool:
    tree = Path(tree)
    if any((tree / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg")):
        return True
    seen = 0
    for _root, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
        seen += len(files) + len(dirs)
        if any(f.endswith(".py") for f in files):
            return True
        if seen > _MAX_DETECT_ENTRIES:
            return False
    return False


# ------------------------------------------------------------------------------ tests


@dataclass(frozen=True)
class TestsJob:
    """Everything the test steps need; plain data, so it travels between Prefect tasks."""

    __test__ = False  # not a pytest test class

    tree: str
    command: tuple[str, ...]
    pythonpath: tuple[str, ...]
    kind: str  # sharding.suite_kind: "pytest", "pytest-whole", "other"
    why_whole: str
    content_hash: str
    tool_version: str
    project: str
    limits: Mapping[str, Any]
    key: str
    work_parent: str
    hide_paths: tuple[str, ...]
    shards: int
    reuse: bool
    agent: str
    python_env: Mapping[str, Any] | None = None  # EnvChoice.as_dict(): the project's own environment

    @property
    def exec_limits(self) -> ExecLimits:
        return ExecLimits.model_validate(dict(self.limits))

    @property
    def env_choice(self) -> EnvChoice | None:
        return EnvChoice.from_dict(dict(self.python_env)) if self.python_env else None

    def meta(self) -> ResultMeta:
        return ResultMeta(toolchain="python", check="tests", tool="pytest", tool_version=self.tool_version,
                          content_hash=self.content_hash, command=self.command)

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, Mapping) else v)
                for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TestsJob":
        fields = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**fields)


def project_env(tree: Path, command: Sequence[str], ctx: SwarmContext, limits: ExecLimits) -> EnvChoice | None:
    """The project's own environment for a Python test command (None for other commands)."""
    if not is_python_command(command):
        return None
    manifest = _manifest(tree)
    home = ctx.home or Path(ctx.work_parent)
    return prepare_python_env(tree, home=home, limits=limits, config=manifest.python_env if manifest else None,
                              hide_paths=tuple(ctx.hide_paths))


def _suite(tree: Path) -> tuple[list[str], list[str], float | None]:
    manifest = _manifest(tree)
    command = list(manifest.test.command) if manifest and manifest.test.command else list(DEFAULT_TEST_COMMAND)
    pythonpath = list(manifest.test.pythonpath) if manifest and manifest.test.pythonpath else []
    if not pythonpath and (command[0].startswith("python") or os.path.basename(command[0]) == "pytest"):
        pythonpath = suggest_pythonpath(tree)
    timeout = float(manifest.test.timeout_s) if manifest and manifest.test.command else None
    return command, pythonpath, timeout


def tests_tool_version(env: EnvChoice | None = None) -> str:
    """What, besides the tree, decides a test result: the project's environment (or NOA's)."""
    if env is not None and env.env is not None:
        pytest_pin = next((p for p in env.env.packages if p.startswith("pytest==")), "pytest==?")
        return f"{pytest_pin.replace('==', ' ')}; {env.env.interpreter}; project env {env.env.key}"
    return (f"pytest {pytest_version() or '?'}; {platform.python_implementation()} {platform.python_version()}; "
            f"env {environment_fingerprint()}")


def begin_tests(tree: Path, ctx: SwarmContext) -> tuple[TestsJob, CheckResult | None]:
    """The job, and the hive's result for it when identical work was done before (then
    nothing else is to be run). Otherwise the job's lease is held: end with
    :func:`finish_tests` or :func:`abort_tests`."""
    tree = Path(tree).resolve()
    command, pythonpath, timeout = _suite(tree)
    kind, why = sharding.suite_kind(command)
    limits = ctx.limits if timeout is None else ctx.limits.model_copy(update={"wall_seconds": timeout})
    chash = ctx.content_hash or content_hash(tree)
    env = project_env(tree, command, ctx, limits)
    version = tests_tool_version(env)
    # the shard count is not part of the key: the aggregate equals a single run's counts
    key = result_key("pytest", version, chash, [*command, "pythonpath=" + ":".join(pythonpath)],
                     kind="python/tests")
    work = Path(ctx.work_parent) / "python-tests"
    job = TestsJob(tree=str(tree), command=tuple(command), pythonpath=tuple(pythonpath), kind=kind, why_whole=why,
                   content_hash=chash, tool_version=version, project=ctx.project or project_name(tree),
                   limits=limits.model_dump(), key=key, work_parent=str(work), hide_paths=tuple(ctx.hide_paths),
                   shards=max(1, int(ctx.shards)), reuse=ctx.reuse, agent=ctx.agent,
                   python_env=env.as_dict() if env is not None else None)
    if env is not None and not env.ready:
        return job, CheckResult(toolchain="python", check="tests", status="failed", tool="pytest",
                                reason=f"unknown: no environment for the project: {env.reason}",
                                tool_version=version, command=tuple(command),
                                data={"outcome": "unknown", "environment": env.summary(),
                                      "uncacheable": "no environment: nothing was run"})
    if env is None and pytest_version() is None and kind != "other":
        return job, skipped_result("python", "tests", Toolchain.not_installed("pytest"), tool="pytest")
    if ctx.hive is not None:
        payload = ctx.hive.begin(key, ctx.agent, reuse=ctx.reuse, lease_s=float(limits.wall_seconds) * 2 + 120)
        if payload is not None:
            return job, replace(CheckResult.from_dict(payload), cached=True, key=key)
    return job, None


_LAYOUT_FILES = {"conftest.py", "pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg"}
_LAYOUT_SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_MAX_LAYOUT_FILE = 2 * 1024 * 1024


def collection_key(job: TestsJob) -> str | None:
    """The hive key of a suite's *collection*: what decides which test files pytest collects.

    That is the tree's file layout (every path, not the contents), the contents of every
    conftest.py and pytest configuration file, the command and the environment; editing a
    test file's body does not change which files hold tests. ``None`` (always collect) when
    doctests are involved: there, editing a module's docstring adds or removes a test file.
    """
    if any("doctest" in a for a in job.command):
        return None
    tree = Path(job.tree)
    digest = hashlib.blake2b(digest_size=32)
    for root, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if d not in _LAYOUT_SKIP_DIRS)
        rel_root = os.path.relpath(root, tree)
        for name in sorted(files):
            rel = os.path.normpath(os.path.join(rel_root, name))
            digest.update(rel.encode("utf-8", "surrogateescape") + b"\0")
            if name in _LAYOUT_FILES:
                path = Path(root) / name
                try:
                    if path.is_symlink() or path.stat().st_size > _MAX_LAYOUT_FILE:
                        return None
                    data = path.read_bytes()
                except OSError:
                    return None
                if b"doctest" in data:
                    return None
                digest.update(hashlib.blake2b(data, digest_size=16).digest())
    return result_key("pytest --collect-only", job.tool_version, digest.hexdigest(),
                      [*job.command, "pythonpath=" + ":".join(job.pythonpath)], kind="python/collect")


def _collect(job: TestsJob, ctx: SwarmContext) -> Collection:
    """The suite's collection: from the hive when the layout is one it has seen, else collected now."""
    key = collection_key(job) if ctx.hive is not None else None
    if key is not None and job.reuse:
        hit = ctx.hive.get(key)  # type: ignore[union-attr]
        if hit is not None:
            ctx.hive.record_hit(key)  # type: ignore[union-attr]
            return replace(Collection.from_dict(hit["collection"]), reused=True, seconds=0.0)
    collection = sharding.collect_tests(Path(job.tree), job.command, work_parent=Path(job.work_parent),
                                        limits=job.exec_limits, pythonpath=job.pythonpath, hide_paths=job.hide_paths,
                                        python_env=job.env_choice)
    if key is not None and collection.usable and collection.outcome == "passed":
        meta = ResultMeta(toolchain="python", check="collect", tool="pytest", tool_version=job.tool_version,
                          content_hash=job.content_hash, command=job.command)
        ctx.hive.put(key, meta, {"status": "ok", "collection": collection.as_dict()}, job.agent)  # type: ignore[union-attr]
    return collection


def plan_tests(job: TestsJob, ctx: SwarmContext) -> tuple[ShardPlan, Collection | None]:
    """Collect (no test runs; or the hive's collection of the same layout) and split into
    ``job.shards`` shards by the hive's durations."""
    if job.kind != "pytest":
        return sharding.whole_suite_plan(job.why_whole), None
    collection = _collect(job, ctx)
    if collection.outcome == "no tests":
        return sharding.nothing_to_run(collection.problem), collection
    if not collection.usable:
        return sharding.whole_suite_plan(collection.problem), collection
    if job.shards <= 1:
        return sharding.whole_suite_plan("one shard asked for"), collection
    durations = ctx.hive.durations(job.project) if ctx.hive is not None else {}
    files = collection.files + tuple((f, 0) for f in collection.skipped_files)
    together = _order_groups(ctx, job, [f for f, _ in collection.files]) if ctx.hive is not None else []
    return sharding.plan_shards(files, job.shards, durations, together=together), collection


def _order_groups(ctx: SwarmContext, job: TestsJob, ordered: Sequence[str]) -> list[tuple[str, ...]]:
    """Files that must share a shard: each order-dependent test's file with the files that may
    provide what it needs (learnt from the failures; without that knowledge, every file before
    it). Overlapping groups are merged; each group keeps collection order."""
    assert ctx.hive is not None
    position = {f: i for i, f in enumerate(ordered)}
    groups: list[set[str]] = []
    for node, detail in ctx.hive.fact_details(job.project, ORDER_DEPENDENT).items():
        consumer = node.split("::", 1)[0]
        if consumer not in position:
            continue
        needs = [f for f in detail.get("needs_one_of", []) if f in position and position[f] < position[consumer]]
        group = {consumer, *(needs or sharding.order_prefix(ordered, {consumer}))}
        for other in [g for g in groups if g & group]:
            group |= other
            groups.remove(other)
        groups.append(group)
    return [tuple(sorted(g, key=position.__getitem__)) for g in groups if len(g) > 1]


def _provider_candidates(node: str, runs: Sequence[ShardRun], ordered: Sequence[str],
                         known: Mapping[str, Any] | None) -> list[str]:
    """Files that ran before ``node``'s file in a whole run but not in its shard: one of them
    provides what it needs. Narrowed with what earlier observations said, when they agree."""
    consumer = node.split("::", 1)[0]
    shard = next((r for r in runs if consumer in r.files), None)
    if shard is None or consumer not in ordered:
        return []
    before = ordered[: ordered.index(consumer)]
    candidates = [f for f in before if f not in shard.files]
    previous = set((known or {}).get("needs_one_of", []))
    narrowed = [f for f in candidates if f in previous]
    return narrowed or candidates


def run_test_shard(job: TestsJob, shard: Shard, clear_addopts: bool = False) -> ShardRun:
    """One agent's shard, isolated in its own work copy."""
    return sharding.run_shard(Path(job.tree), job.command, shard, work_parent=Path(job.work_parent),
                              limits=job.exec_limits, pythonpath=job.pythonpath, hide_paths=job.hide_paths,
                              clear_addopts=clear_addopts, kind=job.kind,  # type: ignore[arg-type]
                              python_env=job.env_choice)


def _reason(outcome: str, runs: Sequence[ShardRun], job: TestsJob) -> str:
    if outcome == "timeout":
        return f"timed out (wall limit {job.exec_limits.wall_seconds:.0f} s)"
    if outcome == "error":
        bad = next((r for r in runs if r.outcome == "error" or r.counts is None), None)
        if bad is not None:
            return f"pytest exited {bad.returncode} (internal, usage or collection error; log {bad.log_path})"
    if outcome == "no tests":
        return "pytest collected no tests"
    return ""


def finish_tests(job: TestsJob, ctx: SwarmContext, plan: ShardPlan, runs: Sequence[ShardRun],
                 collection: Collection | None = None) -> CheckResult:
    """Aggregate the shards; confirm shard failures by a whole run; re-run failures once
    (failed, then passed on identical content = flaky); record durations, failures and what
    was learnt in the hive; store the result; release the lease."""
    t0 = time.perf_counter()
    notes: list[str] = []
    hive = ctx.hive
    flaky: list[str] = []
    rerun: ShardRun | None = None
    clear = collection.clear_addopts if collection else False
    try:
        # what the hive knew before this run
        known_broken = set(hive.facts(job.project, WHOLE_RUN_FAILURE)) if hive is not None else set()
        known_flaky = set(hive.flaky(job.project)) if hive is not None else set()
        shard_runs: list[ShardRun] = []
        counts, outcome = sharding.aggregate(runs)
        shard_failed = [n for r in runs for n in r.failed]
        if plan.sharded and outcome in ("failed", "error") and (
                outcome == "error" or not shard_failed or not set(shard_failed) <= known_broken):
            # Shard failures are confirmed by one whole-suite run unless every one of them is a
            # test known to fail in whole runs too: a test may depend on files that ran before it
            # (click's echo_via_pager tests need click._termui_impl imported by an earlier file),
            # and a reused file plan may no longer hold (a file that fails to import interrupts
            # a whole run). The result is then the whole run's: what a single run says.
            shard_runs = list(runs)
            plan = replace(sharding.whole_suite_plan("shards failed: confirmed by a whole-suite run"),
                           basis=f"whole suite (after {plan.basis})")
            runs = [run_test_shard(job, plan.shards[0], clear)]
            counts, outcome = sharding.aggregate(runs)
            notes.append(plan.reason)
            whole_failed = set(runs[0].failed)
            only_sharded = sorted(n for n in shard_failed if n not in whole_failed)
            if runs[0].counts is not None and only_sharded and outcome in ("passed", "failed"):
                # failed in a shard, passed in the whole run: order-dependent, or flaky? Alone
                # (by node id, nothing before it) an order-dependent test fails again.
                alone = sharding.rerun_failed(Path(job.tree), job.command, only_sharded,
                                              work_parent=Path(job.work_parent), limits=job.exec_limits,
                                              pythonpath=job.pythonpath, hide_paths=job.hide_paths,
                                              clear_addopts=clear, python_env=job.env_choice)
                dependent = [n for n in only_sharded[:sharding.MAX_RERUN_IDS] if n in set(alone.failed)]
                flaky += [n for n in only_sharded[:sharding.MAX_RERUN_IDS]
                          if n not in set(alone.failed) and alone.counts is not None]
                if dependent and hive is not None and collection is not None:
                    ordered = [f for f, _ in collection.files]
                    known = hive.fact_details(job.project, ORDER_DEPENDENT)
                    details = {n: {"needs_one_of": _provider_candidates(n, shard_runs, ordered, known.get(n))}
                               for n in dependent}
                    hive.record_facts(job.project, ORDER_DEPENDENT, dependent, details)
                if dependent:
                    notes.append(f"{len(dependent)} test(s) failed only when sharded (order-dependent: kept "
                                 f"with the files they need next time): " + ", ".join(dependent[:5]))
            if hive is not None and runs[0].counts is not None:
                hive.record_facts(job.project, WHOLE_RUN_FAILURE, sorted(whole_failed))
        failed = list(dict.fromkeys(n for r in runs for n in r.failed))
        ran_files = {f for r in runs for f in (r.files or tuple(r.durations))}
        if hive is not None:
            durations: dict[str, float] = {}
            for r in [*shard_runs, *runs]:
                if r.outcome != "timeout":
                    durations.update(r.durations)
            hive.record_durations(job.project, durations)
            if outcome in ("passed", "failed"):
                flaky += hive.passed_after_failing(job.project, job.content_hash, ran_files, failed)
        if outcome == "failed" and failed and job.kind == "pytest":
            if set(failed) <= known_broken - known_flaky:
                notes.append("every failure is a test seen failing in whole runs before: not re-run")
            elif len(failed) <= sharding.MAX_RERUN_IDS or set(failed) <= known_flaky:
                rerun_ids = failed[:sharding.MAX_RERUN_IDS]
                rerun = sharding.rerun_failed(Path(job.tree), job.command, rerun_ids,
                                              work_parent=Path(job.work_parent), limits=job.exec_limits,
                                              pythonpath=job.pythonpath, hide_paths=job.hide_paths,
                                              clear_addopts=clear, python_env=job.env_choice)
                if rerun.outcome in ("passed", "failed") and rerun.counts is not None:
                    again = set(rerun.failed)
                    flaky += [n for n in rerun_ids if n not in again]
            else:
                notes.append(f"{len(failed)} failures: too many to re-run")
        flaky = sorted(set(flaky))
        if hive is not None:
            hive.record_failures(job.project, job.content_hash, failed)
            if flaky:
                hive.record_flaky(job.project, job.content_hash, flaky)
        status = {"passed": "ok", "no tests": "skipped"}.get(outcome, "failed")
        reason = _reason(outcome, runs, job)
        still_failing = [n for n in failed if n not in flaky]
        if outcome == "failed" and failed and not still_failing and rerun is not None:
            status = "ok"
            reason = (f"{len(flaky)} flaky test(s) failed, then passed on a re-run of identical content: "
                      + ", ".join(flaky[:5]) + (" ..." if len(flaky) > 5 else ""))
        elif flaky:
            notes.append(f"flaky (failed, then passed on identical content): {', '.join(flaky[:5])}")
        if outcome == "failed" and still_failing and not reason:
            reason = f"{len(still_failing)} test(s) failed: " + ", ".join(still_failing[:5]) + (
                " ..." if len(still_failing) > 5 else "")
        elif outcome == "failed" and not reason and counts is not None:
            reason = f"{counts.failed} failed, {counts.errors} errors, {counts.subtests_failed} subtests failed"
        wall = max((r.seconds for r in runs), default=0.0) + max((r.seconds for r in shard_runs), default=0.0)
        data: dict[str, Any] = {
            "outcome": outcome, "project": job.project, "content_hash": job.content_hash,
            "plan": plan.as_dict(), "sharded": plan.sharded,
            "shards": [{"index": r.index, "files": len(r.files), "outcome": r.outcome, "seconds": r.seconds,
                        "summary": r.counts.summary_line if r.counts else "", "log": r.log_path} for r in runs],
            "confirmed_shards": [{"index": r.index, "files": len(r.files), "outcome": r.outcome,
                                  "seconds": r.seconds, "failed": list(r.failed[:20]), "log": r.log_path}
                                 for r in shard_runs],
            "collected": len(collection.node_ids) if collection else None,
            "collect_seconds": collection.seconds if collection else None,
            "collection_reused": bool(collection and collection.reused),
            "failed_tests": failed[:200], "flaky": flaky,
            "rerun": rerun.as_dict() if rerun else None,
            "notes": notes + sorted({n for r in runs for n in r.notes}),
            "environment": job.env_choice.summary() if job.env_choice else None,
        }
        if flaky:
            data["uncacheable"] = "flaky tests: the outcome is not a function of the content"
        if outcome in ("timeout", "error"):
            data["uncacheable"] = f"{outcome}: may be the host's doing, not the code's"
        first = runs[0] if runs else None
        result = CheckResult(
            toolchain="python", check="tests", status=status, reason=reason, tool="pytest",  # type: ignore[arg-type]
            tool_version=job.tool_version, command=job.command, counts=counts, data=data,
            seconds=round(wall + (collection.seconds if collection else 0.0) + (time.perf_counter() - t0), 3),
            isolation=first.isolation if first else "", key=job.key, computed_by=job.agent)
    except BaseException:
        abort_tests(job, ctx)
        raise
    if hive is not None:
        hive.end(job.key, job.agent, result.as_dict(), job.meta(), store=job.reuse and "uncacheable" not in data)
    return result


def abort_tests(job: TestsJob, ctx: SwarmContext) -> None:
    """Give the job's lease back without storing anything (the run broke)."""
    if ctx.hive is not None:
        ctx.hive.release(job.key, job.agent)


# ------------------------------------------------------------------------------- lint


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


# -------------------------------------------------------------------------- toolchain


class PythonToolchain(Toolchain):
    name = "python"
    checks = ("tests", "lint")

    def __init__(self, *, ruff: Any = _AUTO) -> None:
        self._ruff: str | None = find_ruff() if ruff is _AUTO else ruff

    def detect(self, tree: Path) -> bool:
        return has_python(tree)

    @functools.cached_property
    def _ruff_version(self) -> str | None:
        return _tool_version(self._ruff) if self._ruff else None

    def tool_versions(self) -> dict[str, str | None]:
        return {"python": platform.python_version(), "pytest": pytest_version(), "ruff": self._ruff_version}

    # lint ---------------------------------------------------------------------------------

    def lint(self, tree: Path, ctx: SwarmContext) -> CheckResult:
        """``ruff check --output-format json`` isolated; findings counted by rule."""
        if not self._ruff or not self._ruff_version:
            return skipped_result("python", "lint", self.not_installed("ruff"), tool="ruff")
        tree = Path(tree).resolve()
        ruff, version = self._ruff, self._ruff_version
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

    # tests --------------------------------------------------------------------------------

    def run_tests(self, tree: Path, ctx: SwarmContext) -> CheckResult:
        """The test check with threads as agents: begin -> plan -> shards in parallel -> finish."""
        job, done = begin_tests(tree, ctx)
        if done is not None:
            return done
        try:
            plan, collection = plan_tests(job, ctx)
            clear = collection.clear_addopts if collection else False
            workers = max(1, min(len(plan.shards), ctx.max_parallel or len(plan.shards)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="noa-agent") as pool:
                runs = list(pool.map(lambda s: run_test_shard(job, s, clear), plan.shards))
        except BaseException:
            abort_tests(job, ctx)
            raise
        return finish_tests(job, ctx, plan, runs, collection)

    # all ----------------------------------------------------------------------------------

    def run(self, tree: Path, ctx: SwarmContext) -> SwarmReport:
        t0 = time.perf_counter()
        tree = Path(tree).resolve()
        if not self.detect(tree):
            return SwarmReport.of("python", [skipped_result("python", "tests", "no Python code in the project")],
                                  agent=ctx.agent)
        ctx = replace(ctx, content_hash=ctx.content_hash or content_hash(tree),
                      project=ctx.project or project_name(tree))
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="noa-python") as pool:
            tests = pool.submit(self.run_tests, tree, ctx.for_agent(f"{ctx.agent}/tests-{uuid.uuid4().hex[:6]}"))
            lint = pool.submit(self.lint, tree, ctx.for_agent(f"{ctx.agent}/lint-{uuid.uuid4().hex[:6]}"))
            results = [tests.result(), lint.result()]
        return SwarmReport.of("python", results, seconds=time.perf_counter() - t0, agent=ctx.agent)
