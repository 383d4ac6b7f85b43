"""The Python toolchain: tests with pytest (sharded, counted from pytest's own summary,
subtests apart) and lint with ruff (``ruff check --output-format json``), both isolated.

Its parts, one job each:

* :mod:`noa_core.swarm.python_env` - the project (detection, name, test command from
  ``noa.yaml``) and the environment the tests run under;
* :mod:`noa_core.swarm.python_tests` - the test check's job and its steps:
  :func:`~noa_core.swarm.python_tests.begin_tests` ->
  :func:`~noa_core.swarm.python_collection.plan_tests` ->
  :func:`~noa_core.swarm.python_tests.run_test_shard` (xN, in parallel) ->
  :func:`~noa_core.swarm.python_test_results.finish_tests`; both drivers run them: this
  module's :meth:`PythonToolchain.run_tests` (threads) and the ``python_swarm`` Prefect flow
  (one task per step and per shard);
* :mod:`noa_core.swarm.python_collection` - collecting the suite and planning its shards;
* :mod:`noa_core.swarm.python_test_results` - aggregating the shards, confirming failures,
  flaky tests, what the hive learns;
* :mod:`noa_core.swarm.python_lint` - ruff.
"""

from __future__ import annotations

import functools
import platform
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from noa_core.swarm.hive_keys import content_hash
from noa_core.swarm.interface import (
    CheckResult,
    SwarmContext,
    SwarmReport,
    Toolchain,
    skipped_result,
)
from noa_core.swarm.python_collection import plan_tests
from noa_core.swarm.python_env import has_python, project_name, pytest_version
from noa_core.swarm.python_lint import find_ruff, lint_with_ruff, tool_version
from noa_core.swarm.python_test_results import finish_tests
from noa_core.swarm.python_tests import abort_tests, begin_tests, run_test_shard

__all__ = ["PythonToolchain"]

_AUTO = object()


class PythonToolchain(Toolchain):
    name = "python"
    checks = ("tests", "lint")

    def __init__(self, *, ruff: Any = _AUTO) -> None:
        self._ruff: str | None = find_ruff() if ruff is _AUTO else ruff

    def detect(self, tree: Path) -> bool:
        return has_python(tree)

    @functools.cached_property
    def _ruff_version(self) -> str | None:
        return tool_version(self._ruff) if self._ruff else None

    def tool_versions(self) -> dict[str, str | None]:
        return {"python": platform.python_version(), "pytest": pytest_version(), "ruff": self._ruff_version}

    # lint ---------------------------------------------------------------------------------

    def lint(self, tree: Path, ctx: SwarmContext) -> CheckResult:
        """``ruff check --output-format json`` isolated; findings counted by rule."""
        if not self._ruff or not self._ruff_version:
            return skipped_result("python", "lint", self.not_installed("ruff"), tool="ruff")
        return lint_with_ruff(tree, ctx, self._ruff, self._ruff_version)

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
