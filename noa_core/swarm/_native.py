"""What the Rust and Go toolchains share: one agent runs its checks one after the other in
one private work copy (so build caches carry over from check to test), each check through
the hive, each command isolated."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from noa_core.isolation import ExecResult, make_work_copy, run_isolated
from noa_core.swarm.interface import CheckResult, SwarmContext, through_hive
from noa_core.toolchains import host_version  # noqa: F401 - re-exported for the swarms
from noa_core.validation.counts import TestCounts

_MAX_LOG_READ = 16 * 1024 * 1024


class SharedCopy:
    """A lazily made work copy of ``tree`` for one agent; logs go next to it."""

    def __init__(self, tree: Path, parent: Path) -> None:
        self.tree = Path(tree)
        self.parent = Path(parent)
        self._work: Path | None = None

    @property
    def work(self) -> Path:
        if self._work is None:
            self._work = make_work_copy(self.tree, self.parent)
        return self._work

    def run(self, argv: Sequence[str], ctx: SwarmContext, *, env: Mapping[str, str],
            readonly: Sequence[str] = (), name: str = "run") -> tuple[ExecResult, str, Path]:
        """Run isolated in the copy; returns the result, the whole output (bounded) and its log."""
        work = self.work
        log = self.parent / f"{work.name}.{name}-{uuid.uuid4().hex[:6]}.log"
        res = run_isolated(list(argv), work, ctx.limits, env=env, readonly_paths=readonly,
                           hide_paths=ctx.hide_paths, stdout_path=log, merge_stderr=True)
        try:
            with open(log, "rb") as fh:
                fh.seek(0, 2)
                size = fh.tell()
                fh.seek(max(0, size - _MAX_LOG_READ))
                text = fh.read().decode("utf-8", errors="replace")
        except OSError:
            text = res.stdout
        return res, text, log

    def close(self) -> None:
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None

    def __enter__(self) -> "SharedCopy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cached(ctx: SwarmContext, *, toolchain: str, check: str, tool: str, version: str, command: Sequence[str],
           content: str, compute: Callable[[], CheckResult]) -> CheckResult:
    return through_hive(ctx, toolchain=toolchain, check=check, tool=tool, tool_version=version, command=command,
                        compute=compute, content_hash=content)


def last_lines(text: str, n: int = 3, width: int = 300) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(ln[:width] for ln in lines[-n:])


def counted_result(counts: TestCounts, returncode: int, failure: str, *, data: Mapping[str, object],
                   **base: object) -> CheckResult:
    """A test check whose tool printed counts: ok when it exited 0 and nothing failed; else
    failed, naming the failed tests or, when none did, ``failure`` (the exit and its output)."""
    if returncode == 0 and counts.ok:
        return CheckResult(status="ok", counts=counts, data=dict(data), **base)  # type: ignore[arg-type]
    reason = f"{counts.failed} test(s) failed" if counts.failed else failure
    return CheckResult(status="failed", reason=reason, counts=counts, data=dict(data), **base)  # type: ignore[arg-type]
