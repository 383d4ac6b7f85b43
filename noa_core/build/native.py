"""Rust and Go builds: ``cargo build --release --offline`` and ``go build -o bin/ ./...``,
isolated in the project's work copy, with the environments of the Rust and Go swarms
(Debian's crate registry for cargo, GOPROXY=off for go)."""

from __future__ import annotations

import os
from pathlib import Path

from noa_core.build.interface import BuildStep
from noa_core.config import ExecLimits
from noa_core.isolation import run_isolated
from noa_core.swarm.go import GoToolchain
from noa_core.swarm.rust import RustToolchain

__all__ = ["cargo_build", "go_build"]

_LIB_SUFFIXES = (".rlib", ".so", ".a", ".dylib")


def _tail(log: Path, n: int = 2) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(ln[:200] for ln in lines[-n:])


def cargo_build(work: Path, limits: ExecLimits, log_dir: Path, *, hide_paths: tuple[str, ...] = ()
                ) -> tuple[BuildStep, list[tuple[str, Path]]]:
    rust = RustToolchain()
    if not rust.cargo:
        return BuildStep("cargo", "skipped", rust.not_installed("cargo")), []
    argv = [rust.cargo, *rust._config_args(), "build", "--release", "--offline"]
    log = log_dir / "cargo-build.log"
    res = run_isolated(argv, work, limits, env=rust._env(), readonly_paths=rust._readonly(), hide_paths=hide_paths,
                       stdout_path=log, merge_stderr=True)
    command = ("cargo", "build", "--release", "--offline")
    if not res.ok:
        why = "cargo build timed out" if res.timed_out else f"cargo build exited {res.returncode}: {_tail(log)}"
        return BuildStep("cargo", "failed", why, command, res.seconds, str(log), res.isolation), []
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


def go_build(work: Path, limits: ExecLimits, log_dir: Path, *, hide_paths: tuple[str, ...] = ()
             ) -> tuple[BuildStep, list[tuple[str, Path]]]:
    go = GoToolchain()
    if not go.go:
        return BuildStep("go", "skipped", go.not_installed("go")), []
    bin_dir = work / ".noa-bin"
    bin_dir.mkdir(exist_ok=True)
    argv = [go.go, "build", "-trimpath", "-o", str(bin_dir) + "/", "./..."]
    log = log_dir / "go-build.log"
    res = run_isolated(argv, work, limits, env=go._env(work), hide_paths=hide_paths, stdout_path=log,
                       merge_stderr=True)
    command = ("go", "build", "-trimpath", "-o", "bin/", "./...")
    if not res.ok:
        why = "go build timed out" if res.timed_out else f"go build exited {res.returncode}: {_tail(log)}"
        return BuildStep("go", "failed", why, command, res.seconds, str(log), res.isolation), []
    built = [("go-binary", f) for f in sorted(bin_dir.iterdir()) if f.is_file() and not f.is_symlink()]
    reason = f"{len(built)} executable(s)" if built else "compiled; no main package, so no executable"
    return BuildStep("go", "ok", reason, command, res.seconds, str(log), res.isolation), built
