"""Running one shard isolated in its own work copy (the suite's command with the shard's
files, ``--rootdir=.`` pinned), and re-running failed node ids once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noa_core.config import ExecLimits
from noa_core.pyenv.provider import EnvChoice
from noa_core.swarm.pytest_commands import Kind
from noa_core.swarm.pytest_runs import run_with_plugin, with_plugin
from noa_core.swarm.shard_plan import Shard
from noa_core.validation.counts import TestCounts

__all__ = ["MAX_RERUN_IDS", "ShardRun", "rerun_failed", "run_shard", "shard_command"]

MAX_RERUN_IDS = 50


@dataclass(frozen=True)
class ShardRun:
    """One shard's isolated run: pytest's own counts, per-file seconds, failed node ids."""

    index: int
    files: tuple[str, ...]
    outcome: str
    counts: TestCounts | None
    seconds: float
    returncode: int
    isolation: str
    command: tuple[str, ...]
    log_path: str
    durations: Mapping[str, float] = field(default_factory=dict)
    failed: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "files": list(self.files), "outcome": self.outcome,
                "counts": self.counts.as_dict() if self.counts else None, "seconds": self.seconds,
                "returncode": self.returncode, "isolation": self.isolation, "command": list(self.command),
                "log_path": self.log_path, "durations": dict(self.durations), "failed": list(self.failed),
                "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ShardRun":
        from noa_core.swarm.interface import counts_from_dict

        return cls(index=int(d["index"]), files=tuple(d["files"]), outcome=d["outcome"],
                   counts=counts_from_dict(d.get("counts")), seconds=float(d["seconds"]),
                   returncode=int(d["returncode"]), isolation=d["isolation"], command=tuple(d["command"]),
                   log_path=d["log_path"], durations=dict(d.get("durations") or {}),
                   failed=tuple(d.get("failed") or ()), notes=tuple(d.get("notes") or ()))


def shard_command(base: Sequence[str], shard: Shard, clear_addopts: bool = False, kind: Kind = "pytest") -> list[str]:
    if kind != "pytest" and shard.files:
        raise ValueError("only a shardable pytest command takes a shard's files")
    return [*with_plugin(base, clear_addopts, kind), *shard.files]


def run_shard(tree: Path, base: Sequence[str], shard: Shard, *, work_parent: Path, limits: ExecLimits,
              pythonpath: Sequence[str] = (), hide_paths: Sequence[str] = (), clear_addopts: bool = False,
              env: Mapping[str, str] | None = None, kind: Kind = "pytest",
              python_env: EnvChoice | None = None) -> ShardRun:
    """Run one shard isolated in a fresh copy of ``tree`` (``kind`` from :func:`suite_kind`)."""
    argv = shard_command(base, shard, clear_addopts, kind)
    run, report = run_with_plugin(Path(tree), argv, work_parent=Path(work_parent), limits=limits,
                                  pythonpath=pythonpath, hide_paths=hide_paths, env=env, python_env=python_env)
    return ShardRun(index=shard.index, files=shard.files, outcome=run.outcome, counts=run.counts,
                    seconds=run.seconds, returncode=run.returncode, isolation=run.isolation,
                    command=run.command, log_path=str(run.log_path), durations=report["durations"],
                    failed=tuple(report["failed"]), notes=run.notes)


def rerun_failed(tree: Path, base: Sequence[str], node_ids: Sequence[str], *, work_parent: Path,
                 limits: ExecLimits, pythonpath: Sequence[str] = (), hide_paths: Sequence[str] = (),
                 clear_addopts: bool = False, env: Mapping[str, str] | None = None,
                 python_env: EnvChoice | None = None) -> ShardRun:
    """Run the given node ids once more, isolated, on a fresh copy of the same content."""
    return run_shard(tree, base, Shard(-1, tuple(node_ids[:MAX_RERUN_IDS])), work_parent=work_parent, limits=limits,
                     pythonpath=pythonpath, hide_paths=hide_paths, clear_addopts=clear_addopts, env=env,
                     python_env=python_env)
