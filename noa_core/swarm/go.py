"""The Go toolchain: ``go vet``, ``go test -v`` and the performance tests
(``go test -run '^$' -bench .``), isolated, one after the other in one work copy.

There is no network in the sandbox (``GOPROXY=off``). The module's dependencies come first,
outside it, from :func:`noa_core.deps.golang.prepare_go`: its ``vendor/`` directory, or
NOA's module cache filled by ``go mod download`` (``GOPROXY`` from the environment) and
exposed read-only. When they cannot be had every check fails with go's own message
("module dependencies not available offline: ..."), never ok. The build cache lives
inside the work copy, so vet, test and bench share it and nothing persists between runs.
go is found by :mod:`noa_core.toolchains`. Without Go every check is "skipped: go not
installed".
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from noa_core.deps.golang import prepare_go
from noa_core.deps.layout import DepsLayout, DepsResult
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
from noa_core.toolchains import find_go as _find_go_toolchain
from noa_core.toolchains import go_toolchain
from noa_core.validation.counts import NoSummaryLine, parse_go_test

__all__ = ["GoToolchain", "find_go", "parse_benchmarks"]

BENCH_TIME = "200ms"
_BENCH = re.compile(r"^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+([\d.]+) ns/op(.*)$", re.MULTILINE)
_OFFLINE = re.compile(r"GOPROXY=off|module lookup disabled|cannot find module providing package|"
                      r"missing go\.sum entry|no required module provides package", re.IGNORECASE)
_AUTO = object()


def find_go() -> str | None:
    """go as :func:`noa_core.toolchains.find_go` finds it, or None."""
    go = _find_go_toolchain()
    return go.tool("go") if go else None


def parse_benchmarks(output: str) -> dict[str, dict[str, float]]:
    """``BenchmarkAdd-2   331531386   0.5531 ns/op [12 B/op  1 allocs/op]`` lines, by name."""
    out: dict[str, dict[str, float]] = {}
    for m in _BENCH.finditer(output):
        entry = {"iterations": float(m.group(2)), "ns_per_op": float(m.group(3))}
        for value, unit in re.findall(r"([\d.]+) (B/op|allocs/op|MB/s)", m.group(4)):
            entry[unit.replace("/", "_per_").replace("MB_per_s", "mb_per_s")] = float(value)
        out[m.group(1)] = entry
    return out


class GoToolchain(Toolchain):
    name = "go"
    checks = ("vet", "test", "bench")

    def __init__(self, *, go: object = _AUTO) -> None:
        self.go: str | None = find_go() if go is _AUTO else go  # type: ignore[assignment]

    def detect(self, tree: Path) -> bool:
        return (Path(tree) / "go.mod").is_file()

    @functools.cached_property
    def _version(self) -> str | None:
        return host_version([self.go, "version"]) if self.go else None

    def tool_versions(self) -> dict[str, str | None]:
        return {"go": self._version}

    @functools.cached_property
    def toolchain(self) -> HostToolchain | None:
        return go_toolchain(self.go) if self.go else None

    def _env(self, work: Path, deps: DepsResult | None = None) -> dict[str, str]:
        assert self.go
        cache = work / ".noa-go"  # ./... skips directories starting with "."
        env = {"PATH": f"{os.path.dirname(os.path.realpath(self.go))}:/usr/local/bin:/usr/bin:/bin",
               "GOPATH": str(cache / "path"), "GOCACHE": str(cache / "cache"),
               "GOMODCACHE": str(cache / "path" / "pkg" / "mod"), "GOPROXY": "off", "GOSUMDB": "off",
               "GOTOOLCHAIN": "local", "GOTELEMETRY": "off", "GOENV": "off", "CGO_ENABLED": "0",
               "GOFLAGS": "-buildvcs=false"}
        if deps is not None:
            env.update(deps.env)  # GOMODCACHE (NOA's, read-only) and GOFLAGS=-mod=mod|vendor
        return env

    def _readonly(self, deps: DepsResult | None = None) -> list[str]:
        base = list(self.toolchain.readonly_paths) if self.toolchain else []
        return [*base, *(deps.readonly_paths if deps else ())]

    def fetch(self, work: Path, ctx: SwarmContext) -> DepsResult:
        """The module's dependencies: vendored, or fetched into NOA's module cache outside the sandbox."""
        assert self.toolchain
        layout = DepsLayout.resolve(ctx.home, fallback=Path(ctx.work_parent))
        log = Path(ctx.work_parent) / "go" / f"{work.name}.deps.log"
        return prepare_go(work, self.toolchain, layout, log=log, timeout=float(ctx.limits.wall_seconds))

    def _check(self, copy: SharedCopy, ctx: SwarmContext, check: str, sub: list[str], chash: str,
               interpret: Callable[[int, str, str, dict[str, Any]], CheckResult],
               deps: DepsResult | None = None) -> CheckResult:
        assert self.go and self._version
        argv = [self.go, *sub]
        key_cmd = ["go", *sub]
        version = self._version

        def compute() -> CheckResult:
            res, text, log = copy.run(argv, ctx, env=self._env(copy.work, deps), readonly=self._readonly(deps),
                                      name=check)
            base: dict[str, Any] = dict(
                toolchain="go", check=check, tool="go", tool_version=version, command=tuple(key_cmd),
                seconds=res.seconds, isolation=res.isolation, computed_by=ctx.agent)
            if res.timed_out:
                return CheckResult(status="failed", reason=f"go {sub[0]} timed out",
                                   data={"log": str(log), "uncacheable": "timeout"}, **base)
            return interpret(res.returncode, text, str(log), base)

        return cached(ctx, toolchain="go", check=check, tool="go", version=version, command=key_cmd,
                      content=chash, compute=compute)

    @staticmethod
    def _failure(what: str, rc: int, text: str) -> str:
        why = last_lines(text)
        if _OFFLINE.search(text):
            why = "module dependencies not available offline: " + why
        return f"{what} exited {rc}: {why}"

    def _vet(self, rc: int, text: str, log: str, base: dict[str, Any]) -> CheckResult:
        if rc == 0:
            return CheckResult(status="ok", data={"log": log}, **base)
        findings = len(re.findall(r"^\S+\.go:\d+:\d+: ", text, re.MULTILINE))
        return CheckResult(status="failed", reason=self._failure("go vet", rc, text), findings=findings,
                           data={"log": log}, **base)

    def _test(self, rc: int, text: str, log: str, base: dict[str, Any]) -> CheckResult:
        try:
            counts = parse_go_test(text)
            counts = replace(counts, summary_line=format_counts(counts))
        except NoSummaryLine:
            counts = None
        if counts is None:
            return CheckResult(status="failed" if rc else "skipped",
                               reason=self._failure("go test", rc, text) if rc else "no go test output",
                               data={"log": log}, **base)
        if rc == 0 and counts.total == 0 and counts.subtests_passed == 0:
            return CheckResult(status="skipped", reason="no Go tests in the module", counts=counts,
                               data={"log": log}, **base)
        return counted_result(counts, rc, self._failure("go test", rc, text), data={"log": log}, **base)

    def _bench(self, rc: int, text: str, log: str, base: dict[str, Any]) -> CheckResult:
        benchmarks = parse_benchmarks(text)
        if rc != 0:
            return CheckResult(status="failed", reason=self._failure("go test -bench", rc, text),
                               data={"log": log, "benchmarks": benchmarks}, **base)
        if not benchmarks:
            return CheckResult(status="skipped", reason="no benchmarks in the module", data={"log": log}, **base)
        # a measurement on identical content is reused like any result; ask with reuse=False
        # (noa swarm run --fresh) for new numbers
        return CheckResult(status="ok", reason=f"{len(benchmarks)} benchmarks",
                           data={"log": log, "benchmarks": benchmarks}, **base)

    def run(self, tree: Path, ctx: SwarmContext) -> SwarmReport:
        t0 = time.perf_counter()
        tree = Path(tree).resolve()
        if not self.detect(tree):
            return SwarmReport.of("go", [skipped_result("go", c, "no go.mod in the project") for c in self.checks],
                                  agent=ctx.agent)
        if not self.go or not self._version:
            reason = self.not_installed("go")
            return SwarmReport.of("go", [skipped_result("go", c, reason, tool="go") for c in self.checks],
                                  agent=ctx.agent)
        chash = ctx.content_hash or content_hash(tree)
        with SharedCopy(tree, Path(ctx.work_parent) / "go") as copy:
            deps = self.fetch(copy.work, ctx)
            if not deps.ready:
                reason = f"module dependencies not available offline: {deps.reason}"
                return SwarmReport.of("go", [CheckResult(
                    toolchain="go", check=c, status="failed", reason=reason, tool="go", tool_version=self._version,
                    seconds=deps.seconds, data={"log": deps.log, "uncacheable": "dependencies"})
                    for c in self.checks], seconds=time.perf_counter() - t0, agent=ctx.agent)
            results = [
                self._check(copy, ctx, "vet", ["vet", "./..."], chash, self._vet, deps),
                self._check(copy, ctx, "test", ["test", "-v", "-count=1", "./..."], chash, self._test, deps),
                self._check(copy, ctx, "bench", ["test", "-run", "^$", "-bench", ".", "-benchtime", BENCH_TIME,
                                                 "-count=1", "./..."], chash, self._bench, deps),
            ]
        if deps.notes:
            results = [replace(r, data={**r.data, "dependencies": list(deps.notes)}) for r in results]
        return SwarmReport.of("go", results, seconds=time.perf_counter() - t0, agent=ctx.agent)
