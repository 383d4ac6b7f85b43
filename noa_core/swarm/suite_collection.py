"""Collecting a pytest suite: ``pytest --collect-only`` isolated, the node ids grouped by
file, and whether those files can be sharded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from noa_core.config import ExecLimits
from noa_core.pyenv.provider import EnvChoice
from noa_core.swarm.pytest_runs import run_with_plugin, with_plugin

__all__ = ["Collection", "collect_tests"]


@dataclass(frozen=True)
class Collection:
    """What ``pytest --collect-only`` found, file by file."""

    outcome: str  # run_test_suite's outcome of the collect-only run
    node_ids: tuple[str, ...]
    files: tuple[tuple[str, int], ...]  # (file, number of tests), in collection order
    skipped_files: tuple[str, ...]  # skipped as a whole at collection: they still count
    summary_line: str
    seconds: float
    clear_addopts: bool  # the config's addopts had to be cleared (usage error)
    log_path: str
    problem: str = ""  # why the files cannot be sharded ("" when they can)
    reused: bool = False  # taken from the hive (same file layout, conftest and config), not collected now

    @property
    def usable(self) -> bool:
        return not self.problem

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "node_ids": list(self.node_ids), "files": [list(f) for f in self.files],
                "skipped_files": list(self.skipped_files), "summary_line": self.summary_line,
                "seconds": self.seconds, "clear_addopts": self.clear_addopts, "log_path": self.log_path,
                "problem": self.problem, "reused": self.reused}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Collection":
        return cls(outcome=d["outcome"], node_ids=tuple(d["node_ids"]),
                   files=tuple((str(f), int(n)) for f, n in d["files"]), skipped_files=tuple(d["skipped_files"]),
                   summary_line=d["summary_line"], seconds=float(d["seconds"]), clear_addopts=bool(d["clear_addopts"]),
                   log_path=d["log_path"], problem=d.get("problem", ""), reused=bool(d.get("reused", False)))


def _inside(rel: str, tree: Path) -> bool:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not rel:
        return False
    full = tree / Path(*p.parts)
    return full.is_file() and not full.is_symlink()

def collect_tests(tree: Path, base: Sequence[str], *, work_parent: Path, limits: ExecLimits,
                  pythonpath: Sequence[str] = (), hide_paths: Sequence[str] = (),
                  env: Mapping[str, str] | None = None, python_env: EnvChoice | None = None) -> Collection:
    """``pytest --collect-only`` isolated: the suite's node ids, grouped by file. No test runs."""
    tree = Path(tree)
    argv = [*with_plugin(base, False), "--collect-only", "-q"]
    run, report = run_with_plugin(tree, argv, work_parent=work_parent, limits=limits, pythonpath=pythonpath,
                                  hide_paths=hide_paths, env=env, python_env=python_env)
    files: dict[str, int] = {}
    for node in report["collected"]:
        f = node.split("::", 1)[0]
        files[f] = files.get(f, 0) + 1
    skipped = tuple(f for f in report["skipped_files"] if f not in files)
    problem = ""
    if run.outcome == "unknown":
        problem = "; ".join(run.notes) or "not run"
    elif run.outcome == "no tests":
        problem = "pytest collected no tests"
    elif run.outcome != "passed":
        problem = f"collection did not succeed ({run.outcome}, exit {run.returncode}): run whole"
    elif not files:
        problem = "NOA's pytest plugin reported no node ids: run whole"
    else:
        outside = [f for f in [*files, *skipped] if not _inside(f, tree)]
        if outside:
            problem = f"collected files outside the tree or not plain files ({outside[0]}): run whole"
    counted = run.counts.other if run.counts else ()
    n_collected = dict(counted).get("collected")
    if not problem and n_collected is not None and n_collected != len(report["collected"]):
        problem = (f"pytest said {n_collected} collected, the plugin saw {len(report['collected'])}: run whole")
    return Collection(outcome=run.outcome, node_ids=tuple(report["collected"]), files=tuple(files.items()),
                      skipped_files=skipped, summary_line=run.counts.summary_line if run.counts else "",
                      seconds=run.seconds, clear_addopts=run.retried_without_addopts, log_path=str(run.log_path),
                      problem=problem)
