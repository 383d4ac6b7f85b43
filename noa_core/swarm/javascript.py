"""The JavaScript (npm) toolchain: the project's ``npm test``, isolated, with its own dependencies.

The dependencies are installed first, outside the sandbox and without running any script
(:func:`noa_core.deps.npm.prepare_npm`: ``npm ci --ignore-scripts``, or ``npm install
--ignore-scripts`` without a lock), into the agent's work copy; then ``npm test`` runs inside
with node/npm exposed read-only (:mod:`noa_core.toolchains`) and no network. Counts come
from Node's own test runner (``node --test``'s closing block); for other runners the
outcome comes from the exit code and the result says so. When the dependencies cannot be
installed the check fails with npm's message, never ok.

A project without a ``test`` script (or with npm's placeholder) is skipped; without node
or npm every check is "skipped: npm not installed".
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from noa_core.deps.layout import DepsLayout, DepsResult
from noa_core.deps.npm import npm_test_argv, prepare_npm
from noa_core.swarm._native import (
    SharedCopy,
    cached,
    counted_result,
    host_version,
    last_lines,
)
from noa_core.swarm.hive_keys import content_hash
from noa_core.swarm.interface import (
    CheckResult,
    SwarmContext,
    SwarmReport,
    Toolchain,
    skipped_result,
)
from noa_core.swarm.shard_counts import format_counts
from noa_core.toolchains import Toolchain as HostToolchain
from noa_core.toolchains import find_node
from noa_core.validation.counts import NoSummaryLine
from noa_core.validation.node_counts import parse_node_test

__all__ = ["JavaScriptToolchain", "test_script"]

_AUTO = object()
_PLACEHOLDER = "no test specified"


def test_script(tree: Path) -> str | None:
    """The project's ``scripts.test`` from package.json, or None (none, npm's placeholder, unreadable)."""
    try:
        doc = json.loads((Path(tree) / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    scripts = doc.get("scripts") if isinstance(doc, dict) else None
    test = scripts.get("test") if isinstance(scripts, dict) else None
    return test if isinstance(test, str) and test.strip() and _PLACEHOLDER not in test else None


test_script.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


class JavaScriptToolchain(Toolchain):
    name = "javascript"
    checks = ("test",)

    def __init__(self, *, node: object = _AUTO) -> None:
        self.node: HostToolchain | None = find_node() if node is _AUTO else node  # type: ignore[assignment]

    def detect(self, tree: Path) -> bool:
        return (Path(tree) / "package.json").is_file()

    @functools.cached_property
    def _versions(self) -> dict[str, str | None]:
        if self.node is None:
            return {"node": None, "npm": None}
        env = self.node.host_env()
        npm = self.node.tools.get("npm")
        return {"node": host_version([self.node.tool("node"), "--version"], env),
                "npm": host_version([npm, "--version"], env) if npm else None}

    def tool_versions(self) -> dict[str, str | None]:
        return dict(self._versions)

    def fetch(self, work: Path, ctx: SwarmContext) -> DepsResult:
        assert self.node is not None
        layout = DepsLayout.resolve(ctx.home, fallback=Path(ctx.work_parent))
        log = Path(ctx.work_parent) / "javascript" / f"{work.name}.deps.log"
        return prepare_npm(work, self.node, layout, log=log, timeout=float(ctx.limits.wall_seconds))

    def _test(self, copy: SharedCopy, ctx: SwarmContext, version: str, chash: str, deps: DepsResult) -> CheckResult:
        node = self.node
        assert node is not None
        argv = npm_test_argv([node.tool("npm"), "test"])
        key_cmd = ["npm", "test", "(pretest, no posttest)"]

        def compute() -> CheckResult:
            env = {**node.sandbox_env(), **deps.env}
            res, text, log = copy.run(argv, ctx, env=env, readonly=[*node.readonly_paths, *deps.readonly_paths],
                                      name="test")
            base: dict[str, Any] = {"toolchain": "javascript", "check": "test", "tool": "npm", "tool_version": version,
                                    "command": tuple(key_cmd), "seconds": res.seconds, "isolation": res.isolation,
                                    "computed_by": ctx.agent}
            data: dict[str, Any] = {"log": str(log)}
            if res.timed_out:
                return CheckResult(status="failed", reason="npm test timed out",
                                   data={**data, "uncacheable": "timeout"}, **base)
            try:
                counts = parse_node_test(text)
                counts = replace(counts, summary_line=format_counts(counts))
            except NoSummaryLine:
                counts = None
            if counts is None:
                if res.returncode == 0:
                    return CheckResult(status="ok", reason="npm test exited 0 (no node --test counts in its output)",
                                       data=data, **base)
                return CheckResult(status="failed", reason=f"npm test exited {res.returncode}: {last_lines(text)}",
                                   data=data, **base)
            return counted_result(counts, res.returncode, f"npm test exited {res.returncode}: {last_lines(text, 2)}",
                                  data=data, **base)

        return cached(ctx, toolchain="javascript", check="test", tool="npm", version=version, command=key_cmd,
                      content=chash, compute=compute)

    def run(self, tree: Path, ctx: SwarmContext) -> SwarmReport:
        t0 = time.perf_counter()
        tree = Path(tree).resolve()
        if not self.detect(tree):
            return SwarmReport.of("javascript", [skipped_result("javascript", "test", "no package.json in the project")],
                                  agent=ctx.agent)
        if test_script(tree) is None:
            return SwarmReport.of("javascript", [skipped_result("javascript", "test",
                                                                "package.json has no test script")], agent=ctx.agent)
        versions = self._versions
        if self.node is None or not versions["node"] or not versions["npm"]:
            reason = self.not_installed("npm")
            return SwarmReport.of("javascript", [skipped_result("javascript", "test", reason, tool="npm")],
                                  agent=ctx.agent)
        version = f"node {versions['node']}; npm {versions['npm']}"
        chash = ctx.content_hash or content_hash(tree)
        with SharedCopy(tree, Path(ctx.work_parent) / "javascript") as copy:
            deps = self.fetch(copy.work, ctx)
            if not deps.ready:
                result = CheckResult(toolchain="javascript", check="test", status="failed", tool="npm",
                                     tool_version=version, reason=f"dependencies not available: {deps.reason}",
                                     seconds=deps.seconds, data={"log": deps.log, "uncacheable": "dependencies"})
                return SwarmReport.of("javascript", [result], seconds=time.perf_counter() - t0, agent=ctx.agent)
            result = self._test(copy, ctx, version, chash, deps)
        if deps.notes:
            result = replace(result, data={**result.data, "dependencies": list(deps.notes)})
        return SwarmReport.of("javascript", [result], seconds=time.perf_counter() - t0, agent=ctx.agent)
