"""Rust and Go builds (``cargo build --release``, ``go build -o bin/ ./...``) and any build
command of noa.yaml whose program is cargo, go or npm: isolated in the project's work copy,
with the toolchain and the dependencies prepared exactly as for the tests
(:func:`noa_core.deps.native.prepare_native_run`: the toolchain found wherever it lives and
exposed read-only, the dependencies fetched outside the sandbox, ``--offline --frozen``).
A build whose toolchain or dependencies cannot be had is not run: the step fails with the
tool's own reason, never a bare "exited 127".
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from noa_core.analysis.build_system import go_has_main
from noa_core.build.interface import BuildStep
from noa_core.config import ExecLimits
from noa_core.deps.layout import DepsLayout
from noa_core.deps.native import prepare_native_run
from noa_core.isolation import ExecResult, run_isolated
from noa_core.toolchains import find_go, find_rust

__all__ = ["NativeBuild", "cargo_build", "go_build", "run_build_command"]

_LIB_SUFFIXES = (".rlib", ".so", ".a", ".dylib")


def _tail(log: Path, n: int = 2) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(ln[:200] for ln in lines[-n:])


@dataclass(frozen=True)
class NativeBuild:
    """A build command's run: ``result`` is None when it could not start (``reason`` says why)."""

    argv: tuple[str, ...]
    result: ExecResult | None
    reason: str = ""
    notes: tuple[str, ...] = ()


def run_build_command(argv: Sequence[str], work: Path, limits: ExecLimits, log: Path, *, deps: DepsLayout,
                      hide_paths: tuple[str, ...] = ()) -> NativeBuild:
    """Run ``argv`` isolated in ``work``; a cargo / go / npm command gets its toolchain and dependencies."""
    native = prepare_native_run(list(argv), work, layout=deps, log=log.with_suffix(".deps.log"),
                                timeout=float(limits.wall_seconds))
    if native.status == "unknown":
        return NativeBuild(tuple(argv), None, f"not built: {native.reason}")
    run_argv = list(native.argv) if native.ready else list(argv)
    res = run_isolated(run_argv, work, limits, env=dict(native.env), readonly_paths=list(native.readonly_paths),
                       hide_paths=hide_paths, stdout_path=log, merge_stderr=True)
    return NativeBuild(tuple(run_argv), res, notes=native.notes)


def _failure(tool: str, build: NativeBuild, log: Path) -> str:
    if build.result is None:
        return build.reason
    if build.result.timed_out:
        return f"{tool} timed out"
    return f"{tool} exited {build.result.returncode}: {_tail(log)}"


def cargo_build(work: Path, limits: ExecLimits, log_dir: Path, *, deps: DepsLayout, hide_paths: tuple[str, ...] = ()
                ) -> tuple[BuildStep, list[tuple[str, Path]]]:
    if find_rust() is None:
        return BuildStep("cargo", "skipped", "cargo not installed"), []
    log = log_dir / "cargo-build.log"
    build = run_build_command(["cargo", "build", "--release"], work, limits, log, deps=deps, hide_paths=hide_paths)
    command = build.argv
    res = build.result
    if res is None or not res.ok:
        return BuildStep("cargo", "failed", _failure("cargo build", build, log), command,
                         res.seconds if res else 0.0, str(log), res.isolation if res else ""), []
    release = work / "target" / "release"
    built: list[tuple[str, Path]] = []
    for f in sorted(release.iterdir()) if release.is_dir() else []:
        if not f.is_file() or f.is_symlink() or f.suffix == ".d":
            continue
        if f.name.endswith(_LIB_SUFFIXES):
            built.append(("rust-library", f))
        elif os.access(f, os.X_OK):
            built.append(("rust-binary", f))
    return BuildStep("cargo", "ok", f"{len(built)} artifact(s)", command, res.seconds, str(log), res.isolation), built


def go_build(work: Path, limits: ExecLimits, log_dir: Path, *, deps: DepsLayout, hide_paths: tuple[str, ...] = ()
             ) -> tuple[BuildStep, list[tuple[str, Path]]]:
    if find_go() is None:
        return BuildStep("go", "skipped", "go not installed"), []
    log = log_dir / "go-build.log"
    if go_has_main(work):
        bin_dir = work / ".noa-bin"
        bin_dir.mkdir(exist_ok=True)
        argv = ["go", "build", "-trimpath", "-o", str(bin_dir) + "/", "./..."]
        command: tuple[str, ...] = ("go", "build", "-trimpath", "-o", "bin/", "./...")
    else:  # a library: `-o DIR/` wants a main package; compiling every package is the build
        bin_dir = None
        argv = ["go", "build", "-trimpath", "./..."]
        command = tuple(argv)
    build = run_build_command(argv, work, limits, log, deps=deps, hide_paths=hide_paths)
    res = build.result
    if res is None or not res.ok:
        return BuildStep("go", "failed", _failure("go build", build, log), command,
                         res.seconds if res else 0.0, str(log), res.isolation if res else ""), []
    built = [("go-binary", f) for f in sorted(bin_dir.iterdir()) if f.is_file() and not f.is_symlink()] \
        if bin_dir else []
    reason = f"{len(built)} executable(s)" if built else "compiled; no main package, so no executable"
    return BuildStep("go", "ok", reason, command, res.seconds, str(log), res.isolation), built
