"""The Python test check's job and its steps that run the suite.

The test check is cut into steps so that both drivers run the same code:
:meth:`~noa_core.swarm.python.PythonToolchain.run_tests` (threads) and the ``python_swarm``
Prefect flow (one task per step and per shard): :func:`begin_tests` ->
:func:`~noa_core.swarm.python_collection.plan_tests` -> :func:`run_test_shard` (xN, in
parallel) -> :func:`~noa_core.swarm.python_test_results.finish_tests` (or
:func:`abort_tests` when the run broke).

Tests run under the project's own environment when one is built, else NOA's interpreter
(which has pytest; the project's dependencies are then not installed, so a suite that needs
them fails to import them and says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from noa_core.config import ExecLimits
from noa_core.pyenv.provider import EnvChoice
from noa_core.swarm.hive_keys import ResultMeta, content_hash, result_key
from noa_core.swarm.interface import (
    CheckResult,
    SwarmContext,
    Toolchain,
    skipped_result,
)
from noa_core.swarm.pytest_commands import suite_kind
from noa_core.swarm.python_env import (
    project_env,
    project_name,
    pytest_version,
    suite_command,
    tests_tool_version,
)
from noa_core.swarm.shard_plan import Shard
from noa_core.swarm.shard_runs import ShardRun, run_shard

__all__ = [
    "ORDER_DEPENDENT",
    "WHOLE_RUN_FAILURE",
    "TestsJob",
    "abort_tests",
    "begin_tests",
    "run_test_shard",
]

ORDER_DEPENDENT = "order-dependent"  # hive fact: failed only when sharded away from the files before it
WHOLE_RUN_FAILURE = "whole-run-failure"  # hive fact: failed in a whole-suite run too


@dataclass(frozen=True)
class TestsJob:
    """Everything the test steps need; plain data, so it travels between Prefect tasks."""

    __test__ = False  # not a pytest test class

    tree: str
    command: tuple[str, ...]
    pythonpath: tuple[str, ...]
    kind: str  # pytest_commands.suite_kind: "pytest", "pytest-whole", "other"
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
    def from_dict(cls, d: Mapping[str, Any]) -> TestsJob:
        fields = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**fields)


def begin_tests(tree: Path, ctx: SwarmContext) -> tuple[TestsJob, CheckResult | None]:
    """The job, and the hive's result for it when identical work was done before (then
    nothing else is to be run). Otherwise the job's lease is held: end with
    :func:`finish_tests` or :func:`abort_tests`."""
    tree = Path(tree).resolve()
    command, pythonpath, timeout = suite_command(tree)
    kind, why = suite_kind(command)
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


def run_test_shard(job: TestsJob, shard: Shard, clear_addopts: bool = False) -> ShardRun:
    """One agent's shard, isolated in its own work copy."""
    return run_shard(Path(job.tree), job.command, shard, work_parent=Path(job.work_parent),
                     limits=job.exec_limits, pythonpath=job.pythonpath, hide_paths=job.hide_paths,
                     clear_addopts=clear_addopts, kind=job.kind,  # type: ignore[arg-type]
                     python_env=job.env_choice)


def abort_tests(job: TestsJob, ctx: SwarmContext) -> None:
    """Give the job's lease back without storing anything (the run broke)."""
    if ctx.hive is not None:
        ctx.hive.release(job.key, job.agent)
