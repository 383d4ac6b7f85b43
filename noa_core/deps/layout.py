"""Where fetched dependencies are cached, and what a preparation step returns."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["CACHE_ENV", "DepsLayout", "DepsResult", "run_host_step", "tail"]

CACHE_ENV = "NOA_DEPS_CACHE"
Status = Literal["ready", "unknown"]


@dataclass(frozen=True)
class DepsLayout:
    """``$NOA_DEPS_CACHE`` when set, else ``<NOA_HOME>/deps``: ``cargo/``, ``npm/``, ``go/``."""

    root: Path

    @classmethod
    def resolve(cls, home: Path | None = None, fallback: Path | None = None) -> DepsLayout:
        """The cache for ``home`` (NOA_HOME); without one, ``$NOA_HOME``, then ``fallback``."""
        shared = os.environ.get(CACHE_ENV, "").strip()
        if shared:
            return cls(Path(shared).resolve())
        base = home or (Path(os.environ["NOA_HOME"]) if os.environ.get("NOA_HOME", "").strip() else None)
        if base is not None:
            return cls(Path(base).resolve() / "deps")
        if fallback is None:
            raise ValueError("no NOA_HOME and no fallback for the dependency cache")
        return cls(Path(fallback).resolve() / "deps-cache")

    def dir(self, *parts: str) -> Path:
        p = self.root.joinpath(*parts)
        p.mkdir(parents=True, exist_ok=True)
        return p


@dataclass(frozen=True)
class DepsResult:
    """What a sandboxed run gets after the fetch step: or ``unknown`` and why."""

    status: Status
    reason: str = ""
    env: Mapping[str, str] = field(default_factory=dict)  # for the sandboxed run
    readonly_paths: tuple[str, ...] = ()  # the fetched dependencies, exposed read-only
    args: tuple[str, ...] = ()  # global options for the tool (cargo's --config FILE)
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    log: str = ""  # the fetch step's own output (host side)

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    def as_dict(self) -> dict[str, object]:
        return {"status": self.status, "reason": self.reason, "notes": list(self.notes),
                "seconds": round(self.seconds, 3), "readonly_paths": list(self.readonly_paths), "log": self.log}


def tail(text: str, n: int = 6, width: int = 300) -> str:
    """The last ``n`` meaningful lines of a tool's output, joined on one line."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("warning: spurious network error", "npm notice"))] or lines
    return " | ".join(ln[:width] for ln in lines[-n:])


def run_host_step(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path,
                  timeout: float, stdout_path: Path | None = None) -> tuple[int, str]:
    """Run one of NOA's own fetch commands on the host (no project code), output to ``log``
    (stdout to ``stdout_path`` instead when given).

    Returns (exit code, output); 124 on timeout, 127 when the tool cannot start."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh, contextlib.ExitStack() as stack:
        out_fh = stack.enter_context(open(stdout_path, "wb")) if stdout_path is not None else None
        fh.write(("$ " + " ".join(argv) + "\n").encode())
        fh.flush()
        start = fh.tell()
        try:
            proc = subprocess.run(list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out_fh or fh,
                                  stderr=fh if out_fh else subprocess.STDOUT, timeout=timeout, check=False)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = 124
            fh.write(f"\nnoa: {argv[0]} timed out after {timeout:.0f}s\n".encode())
        except OSError as exc:
            rc = 127
            fh.write(f"\nnoa: cannot run {argv[0]}: {exc.strerror}\n".encode())
    with open(log, "rb") as fh:
        fh.seek(start)
        out = fh.read()[-256 * 1024:].decode("utf-8", errors="replace")
    return rc, out
