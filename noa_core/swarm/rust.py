"""The Rust toolchain: ``cargo check``, ``cargo clippy`` (static analysis) and ``cargo test``,
all ``--offline --frozen`` and isolated, one after the other in one work copy (the build
carries over).

There is no network in the sandbox. The crate's dependencies are vendored first, outside
it, by :func:`noa_core.deps.cargo.prepare_cargo` (from Debian's crate registry
``/usr/share/cargo/registry`` when the ``librust-*-dev`` packages put one there, else
crates.io; a missing ``Cargo.lock`` is generated and named in the result) and given to
every check read-only. When they cannot be fetched, every check fails with cargo's own
message ("dependencies not available offline: ..."), never ok. cargo is found by
:mod:`noa_core.toolchains` (rustup's under a home directory included) and exposed
read-only. Without cargo every check is "skipped: cargo not installed"; without clippy,
that check alone is skipped.
"""

from __future__ import annotations

import functools
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from noa_core.deps.cargo import prepare_cargo
from noa_core.deps.layout import DepsLayout, DepsResult
from noa_core.deps.native import cargo_argv
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
    Status,
    SwarmContext,
    SwarmReport,
    skipped_result,
)
from noa_core.swarm.interface import Toolchain as SwarmToolchain
from noa_core.swarm.shard_counts import format_counts
from noa_core.toolchains import SANDBOX_CARGO_HOME, Toolchain, find_rust, rust_toolchain
from noa_core.validation.counts import NoSummaryLine, parse_cargo_test

__all__ = ["RustToolchain", "find_cargo"]

DEBIAN_REGISTRY = Path("/usr/share/cargo/registry")
#: what ``cargo test`` compiles by default (lib, bins, tests, examples; benches only with
#: ``test = true``): check and clippy look at the same targets, so a nightly-only bench a
#: crate never builds in its tests cannot fail them (``--all-targets`` would).
TEST_TARGETS = ("--tests", "--examples")
_SANDBOX_CARGO_HOME = SANDBOX_CARGO_HOME
_WARNING = re.compile(r"^(?:\S+:\d+:\d+: )?warning(?:\[\w+\])?: ", re.MULTILINE)
_ERROR = re.compile(r"^(?:\S+:\d+:\d+: )?error(?:\[\w+\])?: ", re.MULTILINE)
_SUMMARY_WARNING = re.compile(r"^warning: .* generated \d+ warnings?", re.MULTILINE)
_OFFLINE = re.compile(r"offline|no matching package named|failed to get .* as a dependency|"
                      r"failed to download|failed to load source for dependency", re.IGNORECASE)
_AUTO = object()


def find_cargo() -> str | None:
    """cargo as :func:`noa_core.toolchains.find_rust` finds it (PATH, rustup's places), or None."""
    rust = find_rust()
    return rust.tool("cargo") if rust else None


class RustToolchain(SwarmToolchain):
    name = "rust"
    checks = ("check", "clippy", "test")

    def __init__(self, *, cargo: object = _AUTO) -> None:
        self.cargo: str | None = find_cargo() if cargo is _AUTO else cargo  # type: ignore[assignment]

    def detect(self, tree: Path) -> bool:
        return (Path(tree) / "Cargo.toml").is_file()

    # environment -------------------------------------------------------------------------

    @functools.cached_property
    def toolchain(self) -> Toolchain | None:
        """Where cargo is and what the sandbox needs to run it (:mod:`noa_core.toolchains`)."""
        return rust_toolchain(self.cargo) if self.cargo else None

    def _env(self) -> dict[str, str]:
        assert self.toolchain
        return {**self.toolchain.sandbox_env(), "CARGO_HOME": _SANDBOX_CARGO_HOME, "CARGO_TERM_COLOR": "never",
                "CARGO_NET_OFFLINE": "true", "CARGO_INCREMENTAL": "0"}

    def _readonly(self, deps: DepsResult | None = None) -> list[str]:
        assert self.toolchain
        return [*self.toolchain.readonly_paths, *(deps.readonly_paths if deps else ())]

    def _config_args(self) -> list[str]:
        """Debian's registry in place of crates.io (for callers that do not vendor first)."""
        if DEBIAN_REGISTRY.is_dir():
            return ["--config", 'source.crates-io.replace-with="noa-debian"',
                    "--config", f'source.noa-debian.directory="{DEBIAN_REGISTRY}"']
        return []

    def _host_env(self) -> dict[str, str]:
        assert self.toolchain
        return self.toolchain.host_env()

    @functools.cached_property
    def _versions(self) -> dict[str, str | None]:
        if not self.cargo:
            return {"cargo": None, "rustc": None, "clippy": None}
        env = self._host_env()
        rustc = shutil.which("rustc", path=env["PATH"]) or "rustc"
        return {"cargo": host_version([self.cargo, "--version"], env),
                "rustc": host_version([rustc, "--version"], env),
                "clippy": host_version([self.cargo, "clippy", "--version"], env)}

    def tool_versions(self) -> dict[str, str | None]:
        return dict(self._versions)

    # checks ------------------------------------------------------------------------------

    @staticmethod
    def _key_command(argv: list[str], deps: DepsResult) -> list[str]:
        """The command as the hive keys it: the vendored set by its key, not by its cache path."""
        vendored = {a: f"<vendored {Path(a).parent.name}>" for a in deps.args if a.endswith("config.toml")}
        return ["cargo", *(vendored.get(a, a) for a in argv[1:])]

    def _static(self, copy: SharedCopy, ctx: SwarmContext, check: str, sub: list[str], version: str,
                chash: str, deps: DepsResult) -> CheckResult:
        assert self.cargo
        argv = cargo_argv([self.cargo, *sub], deps.args)
        key_cmd = self._key_command(argv, deps)

        def compute() -> CheckResult:
            res, text, log = copy.run(argv, ctx, env=self._env(), readonly=self._readonly(deps), name=check)
            warnings = len(_WARNING.findall(text)) - len(_SUMMARY_WARNING.findall(text))
            errors = len(_ERROR.findall(text))
            base: dict[str, Any] = dict(
                toolchain="rust", check=check, tool="cargo", tool_version=version, command=tuple(key_cmd),
                seconds=res.seconds, isolation=res.isolation, computed_by=ctx.agent,
                findings=max(0, warnings) + errors)
            data = {"warnings": max(0, warnings), "errors": errors, "log": str(log)}
            if res.timed_out:
                return CheckResult(status="failed", reason=f"cargo {sub[0]} timed out",
                                   data={**data, "uncacheable": "timeout"}, **base)
            if res.returncode != 0:
                why = last_lines(text)
                if _OFFLINE.search(text):
                    why = "dependencies not available offline: " + why
                return CheckResult(status="failed", reason=f"cargo {sub[0]} exited {res.returncode}: {why}",
                                   data=data, **base)
            reason = f"{warnings} warnings" if warnings > 0 else ""
            return CheckResult(status="ok", reason=reason, data=data, **base)

        return cached(ctx, toolchain="rust", check=check, tool="cargo", version=version, command=key_cmd,
                      content=chash, compute=compute)

    def _test(self, copy: SharedCopy, ctx: SwarmContext, version: str, chash: str, deps: DepsResult) -> CheckResult:
        assert self.cargo
        argv = cargo_argv([self.cargo, "test"], deps.args)
        key_cmd = self._key_command(argv, deps)

        def compute() -> CheckResult:
            res, text, log = copy.run(argv, ctx, env=self._env(), readonly=self._readonly(deps), name="test")
            base: dict[str, Any] = dict(
                toolchain="rust", check="test", tool="cargo", tool_version=version, command=tuple(key_cmd),
                seconds=res.seconds, isolation=res.isolation, computed_by=ctx.agent)
            try:
                counts = parse_cargo_test(text)
                counts = replace(counts, summary_line=format_counts(counts))
            except NoSummaryLine:
                counts = None
            data = {"log": str(log)}
            if res.timed_out:
                return CheckResult(status="failed", reason="cargo test timed out", counts=counts,
                                   data={**data, "uncacheable": "timeout"}, **base)
            if counts is None:
                why = last_lines(text)
                if _OFFLINE.search(text):
                    why = "dependencies not available offline: " + why
                status: Status = "failed" if res.returncode != 0 else "skipped"
                return CheckResult(status=status, reason=f"no test results (exit {res.returncode}): {why}",
                                   data=data, **base)
            return counted_result(counts, res.returncode,
                                  f"cargo test exited {res.returncode}: {last_lines(text, 2)}", data=data, **base)

        return cached(ctx, toolchain="rust", check="test", tool="cargo", version=version, command=key_cmd,
                      content=chash, compute=compute)

    def run(self, tree: Path, ctx: SwarmContext) -> SwarmReport:
        t0 = time.perf_counter()
        tree = Path(tree).resolve()
        if not self.detect(tree):
            return SwarmReport.of("rust", [skipped_result("rust", c, "no Cargo.toml in the project")
                                           for c in self.checks], agent=ctx.agent)
        versions = self._versions
        if not self.cargo or not versions["cargo"]:
            reason = self.not_installed("cargo")
            return SwarmReport.of("rust", [skipped_result("rust", c, reason, tool="cargo") for c in self.checks],
                                  agent=ctx.agent)
        version = f"{versions['cargo']}; {versions['rustc'] or 'rustc ?'}"
        chash = ctx.content_hash or content_hash(tree)
        results: list[CheckResult] = []
        with SharedCopy(tree, Path(ctx.work_parent) / "rust") as copy:
            deps = self.fetch(copy.work, ctx)
            if not deps.ready:
                return SwarmReport.of("rust", self._without_dependencies(deps, version),
                                      seconds=time.perf_counter() - t0, agent=ctx.agent)
            results.append(self._static(copy, ctx, "check", ["check", *TEST_TARGETS, "--message-format", "short"],
                                        version, chash, deps))
            if versions["clippy"]:
                results.append(self._static(copy, ctx, "clippy", ["clippy", *TEST_TARGETS,
                                                                  "--message-format", "short"],
                                            f"{version}; {versions['clippy']}", chash, deps))
            else:
                results.append(skipped_result("rust", "clippy", self.not_installed("clippy"), tool="cargo"))
            results.append(self._test(copy, ctx, version, chash, deps))
        if deps.notes:
            results = [replace(r, data={**r.data, "dependencies": list(deps.notes)}) for r in results]
        return SwarmReport.of("rust", results, seconds=time.perf_counter() - t0, agent=ctx.agent)

    def fetch(self, work: Path, ctx: SwarmContext) -> DepsResult:
        """The crate's dependencies, vendored outside the sandbox (a missing Cargo.lock is written into ``work``)."""
        assert self.toolchain
        layout = DepsLayout.resolve(ctx.home, fallback=Path(ctx.work_parent))
        log = Path(ctx.work_parent) / "rust" / f"{work.name}.deps.log"
        return prepare_cargo(work, self.toolchain, layout, log=log, timeout=float(ctx.limits.wall_seconds))

    def _without_dependencies(self, deps: DepsResult, version: str) -> list[CheckResult]:
        """Every check failed (not run): the dependencies could not be had; cargo's own message."""
        reason = f"dependencies not available offline: {deps.reason}"
        return [CheckResult(toolchain="rust", check=c, status="failed", reason=reason, tool="cargo",
                            tool_version=version, seconds=deps.seconds,
                            data={"log": deps.log, "uncacheable": "dependencies"}) for c in self.checks]
