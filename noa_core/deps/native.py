"""The one call a test runner makes for a cargo / go / npm (node) command: find the toolchain,
fetch the project's dependencies outside the sandbox, and say what the sandboxed run needs.

:func:`prepare_native_run` returns the command to run (the tool's absolute path, cargo's
``--config`` for the vendored sources and ``--offline --frozen``), the environment and the
read-only paths (toolchain + dependencies), and notes for the report; or ``unknown`` with
the reason (no such toolchain here, dependencies that cannot be fetched): the suite is then
not run. Any other command is ``none``: nothing to do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from noa_core.deps.cargo import prepare_cargo
from noa_core.deps.golang import prepare_go
from noa_core.deps.layout import DepsLayout, DepsResult
from noa_core.deps.npm import npm_test_argv, prepare_npm, sandbox_npm_env
from noa_core.toolchains import (
    SANDBOX_CARGO_HOME,
    find_go,
    find_node,
    find_rust,
    toolchain_of,
)

__all__ = ["NativeRun", "cargo_argv", "prepare_native_run"]

#: subcommands that build the project, so need its dependencies
CARGO_BUILDING = frozenset({"test", "build", "check", "clippy", "bench", "run", "doc", "nextest", "t", "b", "c", "r"})
GO_BUILDING = frozenset({"test", "build", "vet", "run", "install", "list"})
_CARGO_VALUE_OPTS = frozenset({"--config", "-Z", "-C", "--color", "--manifest-path"})
_HOW_FOUND = {"rust": "cargo (PATH, $CARGO_HOME/bin, rustup's .cargo/bin, $NOA_CARGO)",
              "go": "go (PATH, /usr/lib/go/bin, /usr/local/go/bin, $NOA_GO)",
              "node": "node (PATH, $NOA_NODE)"}


@dataclass(frozen=True)
class NativeRun:
    status: Literal["ready", "unknown", "none"]
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    readonly_paths: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    reason: str = ""
    deps: DepsResult | None = None
    toolchain: str = ""

    @property
    def ready(self) -> bool:
        return self.status == "ready"


def _subcommand(argv: Sequence[str]) -> int | None:
    """Index of cargo's / go's subcommand in ``argv`` (after global options)."""
    i = 1
    while i < len(argv):
        a = argv[i]
        if a in _CARGO_VALUE_OPTS:
            i += 2
            continue
        if a.startswith(("-", "+")):
            i += 1
            continue
        return i
    return None


def cargo_argv(argv: Sequence[str], deps_args: Sequence[str]) -> list[str]:
    """``cargo SUB --config VENDOR --offline --frozen ...``: vendored sources, no network, the lock as is.

    The options follow the subcommand: an external one (``cargo clippy``) passes them on to
    the cargo it runs, while options before it would be lost there."""
    out = list(argv)
    sub = _subcommand(out)
    if sub is None:
        return out
    stop = out.index("--", sub) if "--" in out[sub:] else len(out)
    extra = [*deps_args, *(f for f in ("--offline", "--frozen") if f not in out[sub:stop])]
    out[sub + 1:sub + 1] = extra
    return out


def _npm_needs_deps(argv: Sequence[str], work: Path) -> bool:
    return (work / "package.json").is_file()


def prepare_native_run(command: Sequence[str], work: Path, *, layout: DepsLayout, log: Path,
                       timeout: float = 600.0) -> NativeRun:
    """See the module docstring. ``work`` is the run's work copy (a lock file or node_modules may
    be written into it); ``log`` receives the fetch steps' output."""
    argv = list(command)
    name = toolchain_of(argv)
    if name is None:
        return NativeRun("none", tuple(argv))
    toolchain = {"rust": find_rust, "go": find_go, "node": find_node}[name]()
    head = os.path.basename(argv[0])
    if toolchain is None or (head not in toolchain.tools and head not in ("nodejs",)):
        return NativeRun("unknown", tuple(argv), toolchain=name,
                         reason=f"{head} is not installed on this host (looked for {_HOW_FOUND[name]})")
    argv[0] = toolchain.tools.get(head, toolchain.tools.get("node", argv[0]))
    env = toolchain.sandbox_env()
    readonly = list(toolchain.readonly_paths)
    notes = [f"{name} toolchain {os.path.dirname(argv[0])}"]
    deps: DepsResult | None = None
    sub = _subcommand(argv)
    subcommand = argv[sub] if sub is not None else ""
    if name == "rust":
        env.update({"CARGO_HOME": SANDBOX_CARGO_HOME, "CARGO_NET_OFFLINE": "true", "CARGO_TERM_COLOR": "never"})
        if subcommand in CARGO_BUILDING:
            deps = prepare_cargo(work, toolchain, layout, log=log, timeout=timeout)
            if deps.ready:
                argv = cargo_argv(argv, deps.args)
    elif name == "go":
        if subcommand in GO_BUILDING:
            deps = prepare_go(work, toolchain, layout, log=log, timeout=timeout)
    else:
        env.update(sandbox_npm_env())
        if _npm_needs_deps(argv, work):
            deps = prepare_npm(work, toolchain, layout, log=log, timeout=timeout)
        argv = npm_test_argv(argv)
    if deps is not None:
        if not deps.ready:
            return NativeRun("unknown", tuple(argv), env=env, readonly_paths=tuple(readonly), reason=deps.reason,
                             notes=tuple(notes), deps=deps, toolchain=name)
        env.update(deps.env)
        readonly += deps.readonly_paths
        notes += deps.notes
    return NativeRun("ready", tuple(argv), env=env, readonly_paths=tuple(dict.fromkeys(readonly)),
                     notes=tuple(notes), deps=deps, toolchain=name)
