"""The Rust toolchain: ``cargo check``, ``cargo clippy`` (static analysis) and ``cargo test``,
all ``--offline`` and isolated, one after the other in one work copy (the build carries over).

There is no network in the sandbox: a crate whose dependencies are not available offline
fails to resolve them, and the check says so ("dependencies not available offline").
Where Debian's Rust library packages are installed (``librust-*-dev`` put crate sources
under ``/usr/share/cargo/registry``), that directory replaces crates.io for the run.
Without cargo every check is "skipped: cargo not installed"; without clippy, that check
alone is skipped.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from noa_core.swarm._native import SharedCopy, cached, host_version, last_lines
from noa_core.swarm.hive import content_hash
from noa_core.swarm.interface import CheckResult, Status, SwarmContext, SwarmReport, Toolchain, skipped_result
from noa_core.swarm.sharding import format_counts
from noa_core.validation.counts import NoSummaryLine, parse_cargo_test

__all__ = ["RustToolchain", "find_cargo"]

DEBIAN_REGISTRY = Path("/usr/share/cargo/registry")
_SANDBOX_CARGO_HOME = "/tmp/home/.cargo"
_WARNING = re.compile(r"^(?:\S+:\d+:\d+: )?warning(?:\[\w+\])?: ", re.M)
_ERROR = re.compile(r"^(?:\S+:\d+:\d+: )?error(?:\[\w+\])?: ", re.M)
_SUMMARY_WARNING = re.compile(r"^warning: .* generated \d+ warnings?", re.M)
_OFFLINE = re.compile(r"offline|no matching package named|failed to get .* as a dependency|"
                      r"failed to download|failed to load source for dependency", re.I)
_AUTO = object()


def find_cargo() -> str | None:
    """cargo on PATH, else rustup's default place (``~/.cargo/bin``), root's included."""
    found = shutil.which("cargo")
    if found:
        return found
    for candidate in (Path.home() / ".cargo" / "bin" / "cargo", Path("/root/.cargo/bin/cargo")):
        try:
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        except OSError:
            continue
    return None


class RustToolchain(Toolchain):
    name = "rust"
    checks = ("check", "clippy", "test")

    def __init__(self, *, cargo: object = _AUTO) -> None:
        self.cargo: str | None = find_cargo() if cargo is _AUTO else cargo  # type: ignore[assignment]

    def detect(self, tree: Path) -> bool:
        return (Path(tree) / "Cargo.toml").is_file()

    # environment -------------------------------------------------------------------------

    @functools.cached_property
    def _rustup_home(self) -> str | None:
        if not self.cargo:
            return None
        cargo = Path(self.cargo)
        proxy = os.path.basename(os.path.realpath(cargo)).startswith("rustup") or (
            cargo.parent.name == "bin" and cargo.parent.parent.name == ".cargo")  # rustup may hard-link
        if not proxy:
            return None  # a plain cargo (Debian's): no rustup proxy to feed
        home = os.environ.get("RUSTUP_HOME") or str(cargo.parent.parent.parent / ".rustup")
        return home if Path(home).is_dir() else None

    def _env(self) -> dict[str, str]:
        assert self.cargo
        bindir = os.path.dirname(self.cargo)
        env = {"PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin", "CARGO_HOME": _SANDBOX_CARGO_HOME,
               "CARGO_TERM_COLOR": "never", "CARGO_NET_OFFLINE": "true", "CARGO_INCREMENTAL": "0"}
        if self._rustup_home:
            env["RUSTUP_HOME"] = self._rustup_home
            toolchain = os.environ.get("RUSTUP_TOOLCHAIN")
            if toolchain:
                env["RUSTUP_TOOLCHAIN"] = toolchain
        return env

    def _readonly(self) -> list[str]:
        assert self.cargo
        out = [os.path.dirname(self.cargo)]
        if self._rustup_home:
            out.append(self._rustup_home)
        return out

    def _config_args(self) -> list[str]:
        if DEBIAN_REGISTRY.is_dir():
            return ["--config", 'source.crates-io.replace-with="noa-debian"',
                    "--config", f'source.noa-debian.directory="{DEBIAN_REGISTRY}"']
        return []

    def _host_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "RUSTUP_TOOLCHAIN")}
        env["PATH"] = self._env()["PATH"]
        if self._rustup_home:
            env["RUSTUP_HOME"] = self._rustup_home
        return env

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

    def _static(self, copy: SharedCopy, ctx: SwarmContext, check: str, sub: list[str], version: str,
                chash: str) -> CheckResult:
        assert self.cargo
        argv = [self.cargo, *self._config_args(), *sub]
        key_cmd = ["cargo", *argv[1:]]

        def compute() -> CheckResult:
            res, text, log = copy.run(argv, ctx, env=self._env(), readonly=self._readonly(), name=check)
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

    def _test(self, copy: SharedCopy, ctx: SwarmContext, version: str, chash: str) -> CheckResult:
        assert self.cargo
        argv = [self.cargo, *self._config_args(), "test", "--offline"]
        key_cmd = ["cargo", *argv[1:]]

        def compute() -> CheckResult:
            res, text, log = copy.run(argv, ctx, env=self._env(), readonly=self._readonly(), name="test")
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
            if res.returncode == 0 and counts.ok:
                return CheckResult(status="ok", counts=counts, data=data, **base)
            reason = (f"{counts.failed} test(s) failed" if counts.failed else
                      f"cargo test exited {res.returncode}: {last_lines(text, 2)}")
            return CheckResult(status="failed", reason=reason, counts=counts, data=data, **base)

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
            results.append(self._static(copy, ctx, "check", ["check", "--offline", "--all-targets",
                                                             "--message-format", "short"], version, chash))
            if versions["clippy"]:
                results.append(self._static(copy, ctx, "clippy", ["clippy", "--offline", "--all-targets",
                                                                  "--message-format", "short"],
                                            f"{version}; {versions['clippy']}", chash))
            else:
                results.append(skipped_result("rust", "clippy", self.not_installed("clippy"), tool="cargo"))
            results.append(self._test(copy, ctx, version, chash))
        return SwarmReport.of("rust", results, seconds=time.perf_counter() - t0, agent=ctx.agent)
