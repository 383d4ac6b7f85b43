"""Batch processing of a pytest suite: collect -> plan N shards -> run them -> aggregate.

1. :func:`collect_tests` runs ``pytest --collect-only`` isolated (nothing is executed)
   and gets the node ids from NOA's pytest plugin (:mod:`noa_core.swarm.pytest_plugin`).
2. :func:`plan_shards` splits the test *files* into N shards, balanced by the seconds the
   hive recorded per file (longest processing time first: each file, heaviest first, goes
   to the least-loaded shard). Files without a record weigh the mean of the recorded ones;
   with no record at all, files weigh their number of tests.
3. :func:`run_shard` runs one shard isolated in its own work copy: the suite's command
   with the shard's files as arguments, ``--rootdir=.`` pinned so node ids, conftest
   discovery and the config file are those of a whole-suite run.
4. :func:`aggregate` adds the shards' counts, each read from pytest's own summary line.

Sharding is refused (the suite then runs whole, as one shard) when the command is not
pytest, names paths of its own, or collection fails: the aggregate must equal what a
single run says, so anything that could change what is collected is not sharded.
Per-file durations and failed node ids from each run feed the hive.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from noa_core.config import ExecLimits
from noa_core.pyenv.provider import EnvChoice
from noa_core.validation.counts import TestCounts
from noa_core.validation.runner import SuiteRun, run_test_suite

__all__ = [
    "Collection",
    "PLUGIN",
    "Shard",
    "ShardPlan",
    "ShardRun",
    "aggregate",
    "collect_tests",
    "format_counts",
    "nothing_to_run",
    "order_prefix",
    "plan_shards",
    "pytest_base",
    "run_shard",
    "rerun_failed",
    "run_sharded",
    "shard_command",
    "suite_kind",
    "whole_suite_plan",
]

PLUGIN = "noa_swarm_pytest_plugin"  # noa_core/swarm/pytest_plugin.py, copied on its own (see plugin_dir)
_PLUGIN_SOURCE = Path(__file__).with_name("pytest_plugin.py")


def plugin_dir(work_parent: Path) -> Path:
    """A directory holding only NOA's pytest plugin (as :data:`PLUGIN`), for the runs' PYTHONPATH:
    the project's environment gets that one file, never the rest of NOA."""
    data = _PLUGIN_SOURCE.read_bytes()
    target = Path(work_parent) / f".noa-plugin-{hashlib.blake2b(data, digest_size=6).hexdigest()}"
    module = target / f"{PLUGIN}.py"
    if not module.is_file():
        target.mkdir(parents=True, exist_ok=True)
        tmp = target / f".{os.getpid()}-{threading.get_ident()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, module)
    return target
REPORT_ENV = "NOA_SWARM_REPORT"
REPORT_NAME = ".noa-swarm-report.json"
MAX_REPORT_BYTES = 64 * 1024 * 1024
MAX_RERUN_IDS = 50

# pytest options whose value is the next argument (so it is not a path)
_VALUE_OPTS = {
    "-k", "-m", "-p", "-o", "-c", "-W", "-r", "-n", "--rootdir", "--deselect", "--ignore", "--ignore-glob",
    "--tb", "--maxfail", "--import-mode", "--confcutdir", "--basetemp", "--junitxml", "--junit-xml",
    "--durations", "--durations-min", "--log-level", "--log-cli-level", "--override-ini", "--color",
    "--capture", "--show-capture", "--timeout", "--dist", "--maxprocesses", "--verbosity", "--inifile",
    "--config-file", "--cov", "--cov-report", "--cov-config", "--cov-fail-under", "--randomly-seed",
}
_PATH_OPTS = {"--pyargs"}  # options that make the positional arguments mean something else


Kind = Literal["pytest", "pytest-whole", "other"]


def _pytest_args(argv: Sequence[str]) -> list[str] | None:
    if not argv:
        return None
    head = os.path.basename(argv[0])
    if head in ("pytest", "py.test"):
        return list(argv[1:])
    if head.startswith("python") and len(argv) >= 3 and argv[1] == "-m" and argv[2] == "pytest":
        return list(argv[3:])
    return None


def suite_kind(command: Sequence[str]) -> tuple[Kind, str]:
    """``("pytest", "")`` for a shardable pytest command, ``("pytest-whole", why)`` for a pytest
    command that must run whole, ``("other", why)`` for any other test command."""
    base, why = pytest_base(command)
    if base is not None:
        return "pytest", ""
    return ("pytest-whole" if _pytest_args(command) is not None else "other"), why


def pytest_base(command: Sequence[str]) -> tuple[list[str] | None, str]:
    """``(argv, "")`` when ``command`` is a pytest run that can be sharded, else ``(None, why)``.

    Shardable: ``python -m pytest`` / ``pytest`` with options only (no paths or node ids
    of its own, no ``-c``/``--rootdir`` that the shards would have to reproduce).
    """
    argv = list(command)
    if not argv:
        return None, "no test command"
    rest = _pytest_args(argv)
    if rest is None:
        return None, f"not a pytest command ({os.path.basename(argv[0])}): run whole"
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg in _PATH_OPTS:
            return None, f"the command uses {arg}: run whole"
        opt = arg.split("=", 1)[0]
        if opt in ("-c", "--rootdir", "--config-file", "--inifile"):
            return None, f"the command sets {opt}: run whole"
        if arg.startswith("-"):
            if arg in _VALUE_OPTS:
                i += 1
            i += 1
            continue
        return None, f"the command names its own paths ({arg}): run whole"
    return argv, ""


def format_counts(c: TestCounts) -> str:
    """pytest's wording of counts (``3 passed, 1 failed, 4 subtests passed``)."""
    parts = [(c.failed, "failed"), (c.passed, "passed"), (c.skipped, "skipped"), (c.deselected, "deselected"),
             (c.xfailed, "xfailed"), (c.xpassed, "xpassed"), (c.warnings, "warnings"), (c.errors, "errors"),
             (c.subtests_failed, "subtests failed"), (c.subtests_passed, "subtests passed"),
             (c.subtests_skipped, "subtests skipped")]
    text = ", ".join(f"{n} {w}" for n, w in parts if n)
    text += "".join(f", {n} {k}" for k, n in c.other if n and k != "collected")
    return text or "no tests ran"


# ----------------------------------------------------------------------------- results


def _read_report(work: Path) -> dict[str, Any]:
    """NOA's plugin output, read as untrusted data."""
    path = work / REPORT_NAME
    empty: dict[str, Any] = {"collected": [], "skipped_files": [], "durations": {}, "failed": []}
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_REPORT_BYTES:
            return empty
        doc = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return empty
    if not isinstance(doc, dict):
        return empty
    out = dict(empty)
    for key in ("collected", "skipped_files", "failed"):
        val = doc.get(key)
        if isinstance(val, list):
            out[key] = [v for v in val if isinstance(v, str) and v and len(v) < 8192]
    durations = doc.get("durations")
    if isinstance(durations, dict):
        out["durations"] = {k: float(v) for k, v in durations.items()
                            if isinstance(k, str) and isinstance(v, (int, float)) and 0 <= v < 86_400}
    return out


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


def _with_plugin(base: Sequence[str], clear_addopts: bool, kind: Kind = "pytest") -> list[str]:
    if kind == "other":
        return list(base)
    argv = [*base, "-p", PLUGIN]
    if kind == "pytest":
        argv.append("--rootdir=.")
    if clear_addopts:
        argv += ["-o", "addopts="]
    return argv


def _run(tree: Path, argv: list[str], *, work_parent: Path, limits: ExecLimits, pythonpath: Sequence[str],
         hide_paths: Sequence[str], env: Mapping[str, str] | None = None,
         python_env: EnvChoice | None = None) -> tuple[SuiteRun, dict[str, Any]]:
    plugin = plugin_dir(work_parent)
    run_env = {**(env or {}), REPORT_ENV: REPORT_NAME}
    run_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin), run_env.get("PYTHONPATH", "")]))
    run = run_test_suite(tree, argv, work_parent=work_parent, limits=limits, pythonpath=pythonpath,
                         env=run_env, keep_work_copy=True, hide_paths=hide_paths,
                         readonly_paths=(str(plugin),), python_env=python_env)
    try:
        report = _read_report(run.work_dir)
    finally:
        shutil.rmtree(run.work_dir, ignore_errors=True)
    return run, report


def collect_tests(tree: Path, base: Sequence[str], *, work_parent: Path, limits: ExecLimits,
                  pythonpath: Sequence[str] = (), hide_paths: Sequence[str] = (),
                  env: Mapping[str, str] | None = None, python_env: EnvChoice | None = None) -> Collection:
    """``pytest --collect-only`` isolated: the suite's node ids, grouped by file. No test runs."""
    tree = Path(tree)
    argv = [*_with_plugin(base, False), "--collect-only", "-q"]
    run, report = _run(tree, argv, work_parent=work_parent, limits=limits, pythonpath=pythonpath,
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


# ------------------------------------------------------------------------------ planning


@dataclass(frozen=True)
class Shard:
    index: int
    files: tuple[str, ...]  # () means the whole suite, as the command alone collects it
    weight: float = 0.0  # planned seconds (or tests, when nothing is recorded)


@dataclass(frozen=True)
class ShardPlan:
    shards: tuple[Shard, ...]
    basis: str  # "durations", "durations+mean", "test counts", "whole suite"
    known: int = 0  # files with recorded durations
    unknown: int = 0
    reason: str = ""  # why the suite is not sharded (whole-suite plans)

    @property
    def sharded(self) -> bool:
        return len(self.shards) > 1 or bool(self.shards and self.shards[0].files)

    def as_dict(self) -> dict[str, Any]:
        return {"basis": self.basis, "known": self.known, "unknown": self.unknown, "reason": self.reason,
                "shards": [{"index": s.index, "files": list(s.files), "weight": round(s.weight, 4)}
                           for s in self.shards]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ShardPlan":
        return cls(shards=tuple(Shard(int(s["index"]), tuple(s["files"]), float(s["weight"])) for s in d["shards"]),
                   basis=d["basis"], known=int(d.get("known", 0)), unknown=int(d.get("unknown", 0)),
                   reason=d.get("reason", ""))


def whole_suite_plan(reason: str) -> ShardPlan:
    return ShardPlan(shards=(Shard(0, ()),), basis="whole suite", reason=reason)


def nothing_to_run(reason: str) -> ShardPlan:
    """The plan of a suite in which collection found no test at all."""
    return ShardPlan(shards=(), basis="no tests", reason=reason)


def order_prefix(files: Sequence[str], dependent: set[str]) -> tuple[str, ...]:
    """The files up to and including the last order-dependent one, in collection order: run
    together and first, they see exactly what they see in a whole run."""
    last = max((i for i, f in enumerate(files) if f in dependent), default=-1)
    return tuple(files[: last + 1])


def plan_shards(files: Sequence[tuple[str, int]] | Mapping[str, int], n: int,
                durations: Mapping[str, float] | None = None, *,
                together: Sequence[Sequence[str]] = ()) -> ShardPlan:
    """Split test files into at most ``n`` shards, longest first onto the least-loaded shard.

    ``files`` maps each file to its number of tests (collection order is kept inside a
    shard); ``durations`` are recorded seconds per file. Each group in ``together`` stays in
    one shard (an order-dependent prefix, see :func:`order_prefix`). Deterministic.
    """
    items = list(files.items()) if isinstance(files, Mapping) else [(str(f), int(c)) for f, c in files]
    if not items:
        return whole_suite_plan("no test files")
    durations = durations or {}
    known = {f: float(durations[f]) for f, _ in items if f in durations}
    mean = sum(known.values()) / len(known) if known else None
    weights: dict[str, float] = {}
    for f, count in items:
        if f in known:
            weights[f] = known[f]
        else:
            weights[f] = mean if mean is not None else float(count)
    if not known:
        basis = "test counts"
    elif len(known) == len(items):
        basis = "durations"
    else:
        basis = "durations+mean"
    order = {f: i for i, (f, _) in enumerate(items)}
    units: list[tuple[str, ...]] = []
    grouped: set[str] = set()
    for group in together:
        unit = tuple(f for f in group if f in order and f not in grouped)
        if len(unit) > 1:
            units.append(unit)
            grouped.update(unit)
    if units:
        basis += f", {sum(len(u) for u in units)} order-dependent files kept together"
    units += [(f,) for f, _ in items if f not in grouped]
    weight = {u: sum(weights[f] for f in u) for u in units}
    n = max(1, min(int(n), len(units)))
    heap = [(0.0, i) for i in range(n)]
    buckets: list[list[str]] = [[] for _ in range(n)]
    loads = [0.0] * n
    for u in sorted(units, key=lambda u: (-weight[u], order[u[0]])):
        load, i = heapq.heappop(heap)
        buckets[i].extend(u)
        loads[i] = load + weight[u]
        heapq.heappush(heap, (loads[i], i))
    shards = tuple(Shard(i, tuple(sorted(b, key=order.__getitem__)), loads[i]) for i, b in enumerate(buckets) if b)
    shards = tuple(replace(s, index=i) for i, s in enumerate(shards))
    return ShardPlan(shards=shards, basis=basis, known=len(known), unknown=len(items) - len(known))


# ------------------------------------------------------------------------------- running


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
    return [*_with_plugin(base, clear_addopts, kind), *shard.files]


def run_shard(tree: Path, base: Sequence[str], shard: Shard, *, work_parent: Path, limits: ExecLimits,
              pythonpath: Sequence[str] = (), hide_paths: Sequence[str] = (), clear_addopts: bool = False,
              env: Mapping[str, str] | None = None, kind: Kind = "pytest",
              python_env: EnvChoice | None = None) -> ShardRun:
    """Run one shard isolated in a fresh copy of ``tree`` (``kind`` from :func:`suite_kind`)."""
    argv = shard_command(base, shard, clear_addopts, kind)
    run, report = _run(Path(tree), argv, work_parent=Path(work_parent), limits=limits, pythonpath=pythonpath,
                       hide_paths=hide_paths, env=env, python_env=python_env)
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


_OUTCOME_RANK = {"unknown": 6, "timeout": 5, "error": 4, "failed": 3, "passed": 2, "no tests": 1}


def aggregate(runs: Sequence[ShardRun]) -> tuple[TestCounts | None, str]:
    """Sum of the shards' counts (each from pytest's own summary) and the combined outcome:
    the worst of them, except that shards with no tests do not hide ones that passed."""
    if not runs:
        return None, "no tests"
    total: TestCounts | None = None
    for r in runs:
        if r.counts is not None:
            total = r.counts if total is None else total + r.counts
    outcome = max((r.outcome for r in runs), key=lambda o: _OUTCOME_RANK.get(o, 4))
    if total is not None:
        line = format_counts(total) + (f" ({len(runs)} shards)" if len(runs) > 1 else "")
        total = replace(total, summary_line=line if len(runs) > 1 else total.summary_line, tool="pytest")
    if any(r.counts is None and r.outcome != "no tests" for r in runs) and outcome in ("passed", "no tests"):
        outcome = "error"  # a shard without a summary line cannot be counted
    return total, outcome


def run_sharded(tree: Path, command: Sequence[str], n: int, *, work_parent: Path, limits: ExecLimits,
                pythonpath: Sequence[str] = (), hide_paths: Sequence[str] = (),
                durations: Mapping[str, float] | None = None, max_parallel: int | None = None,
                python_env: EnvChoice | None = None) -> tuple[ShardPlan, list[ShardRun], Collection | None]:
    """Collect, plan and run ``n`` shards in parallel threads (each its own isolated copy).

    The plain driver (no hive, no Prefect); the swarm flows run the same steps as tasks.
    """
    kind, why = suite_kind(command)
    base = list(command)
    collection: Collection | None = None
    clear = False
    if kind != "pytest":
        plan = whole_suite_plan(why)
    else:
        collection = collect_tests(tree, base, work_parent=work_parent, limits=limits, pythonpath=pythonpath,
                                   hide_paths=hide_paths, python_env=python_env)
        clear = collection.clear_addopts
        if collection.outcome == "no tests":
            plan = nothing_to_run(collection.problem)
        elif collection.usable and n > 1:
            plan = plan_shards(collection.files + tuple((f, 0) for f in collection.skipped_files), n, durations)
        else:
            plan = whole_suite_plan(collection.problem or "one shard asked for")
    workers = max(1, min(len(plan.shards), max_parallel or len(plan.shards)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="noa-shard") as pool:
        futures = [pool.submit(run_shard, tree, base, s, work_parent=work_parent, limits=limits,
                               pythonpath=pythonpath, hide_paths=hide_paths, clear_addopts=clear, kind=kind,
                               python_env=python_env)
                   for s in plan.shards]
        runs = [f.result() for f in futures]
    return plan, runs, collection

