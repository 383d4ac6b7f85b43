"""Run a dropped tree's test suite in isolation and count what the tool reports."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from noa_core.config import ExecLimits
from noa_core.deps.layout import DepsLayout
from noa_core.deps.native import prepare_native_run
from noa_core.errors import BadInput
from noa_core.isolation import ExecResult, make_work_copy, run_isolated
from noa_core.pyenv.provider import EnvChoice
from noa_core.validation.counts import (
    NoSummaryLine,
    TestCounts,
    parse_cargo_test,
    parse_go_test,
    parse_pytest_summary,
    parse_unittest,
)
from noa_core.validation.node_counts import parse_node_test

__all__ = ["Outcome", "SuiteRun", "is_python_command", "run_test_suite", "suggest_pythonpath"]

Outcome = Literal["passed", "failed", "error", "no tests", "timeout", "unknown"]
Tool = Literal["pytest", "unittest", "cargo", "go", "npm", "unknown"]

_PARSERS: dict[str, Callable[[str], TestCounts]] = {
    "pytest": parse_pytest_summary,
    "unittest": parse_unittest,
    "cargo": parse_cargo_test,
    "go": parse_go_test,
    "npm": parse_node_test,  # node --test's closing block (npm test)
}
_PYTHON_NAMES = {"python", "python3", f"python3.{sys.version_info.minor}"}
_MAX_LOG_READ = 64 * 1024 * 1024


def _pytest_major() -> int:
    try:
        return int(importlib.metadata.version("pytest").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return 0


_PYTEST_MAJOR = _pytest_major()

# pytest exit codes (pytest.ExitCode)
_PYTEST_OK, _PYTEST_FAILED, _PYTEST_INTERRUPTED, _PYTEST_INTERNAL, _PYTEST_USAGE, _PYTEST_NO_TESTS = range(6)


@dataclass(frozen=True)
class SuiteRun:
    """One isolated run of a test suite."""

    outcome: Outcome
    counts: TestCounts | None  # None when the tool printed no closing line
    returncode: int
    seconds: float
    isolation: str
    log_path: Path  # stdout+stderr of the (last) run, outside the work copy
    work_dir: Path
    command: tuple[str, ...]  # as finally run
    tool: str
    retried_without_addopts: bool = False
    timed_out: bool = False
    killed_by: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def one_line(self) -> str:
        counts = self.counts.summary_line if self.counts else "no summary line"
        return f"{self.outcome}: {counts} ({self.tool}, exit {self.returncode}, {self.seconds:.1f}s, {self.isolation})"


def suggest_pythonpath(tree: Path) -> list[str]:
    """``["src"]`` for a src layout (a package or module directly under ``src/``), else ``[]``."""
    src = Path(tree) / "src"
    if src.is_dir() and not src.is_symlink():
        for child in src.iterdir():
            if (child / "__init__.py").is_file() or child.suffix == ".py":
                return ["src"]
    return []


def is_python_command(command: Sequence[str]) -> bool:
    """True when ``command`` runs Python (``python ...``, ``pytest ...``): it needs a project environment."""
    return bool(command) and os.path.basename(command[0]) in (*_PYTHON_NAMES, "pytest", "py.test")


def _env_pytest_major(python_env: EnvChoice | None) -> int:
    if python_env is None or python_env.env is None:
        return _PYTEST_MAJOR
    for pin in python_env.env.packages:
        if pin.startswith("pytest=="):
            try:
                return int(pin.split("==", 1)[1].split(".")[0])
            except ValueError:
                return 0
    return 0


def _prepare(command: Sequence[str], python: str = sys.executable, pytest_major: int = _PYTEST_MAJOR,
             ) -> tuple[Tool, list[str]]:
    if not command or not all(isinstance(c, str) and c for c in command):
        raise BadInput("test command must be a non-empty list of strings")
    argv = list(command)
    head = os.path.basename(argv[0])
    if head in ("pytest", "py.test"):
        argv = [python, "-m", "pytest", *argv[1:]]
    elif head in _PYTHON_NAMES:
        argv[0] = python
    tool: Tool = "unknown"
    if argv[0] == python and len(argv) >= 3 and argv[1] == "-m":
        if argv[2] == "pytest":
            tool = "pytest"
        elif argv[2] == "unittest":
            tool = "unittest"
    elif head == "cargo" and "test" in argv[1:]:
        tool = "cargo"
    elif head == "go" and "test" in argv[1:]:
        tool = "go"
    elif head in ("npm", "node", "nodejs"):
        tool = "npm"
    if tool == "pytest":
        extra = [] if "no:cacheprovider" in argv else ["-p", "no:cacheprovider"]
        if pytest_major >= 9 and not any("verbosity_subtests" in a for a in argv):
            # pytest 9 hides passed subtests from the summary at the default verbosity
            # (it shows them with -q or -v): always have them counted, apart.
            extra += ["-o", "verbosity_subtests=1"]
        argv[3:3] = extra
    return tool, argv


def _relative_pythonpath(entries: Sequence[str], tree: Path) -> list[PurePosixPath]:
    out = []
    tree_abs = tree.resolve()
    for entry in entries:
        p = Path(entry)
        if p.is_absolute():
            try:
                p = p.resolve().relative_to(tree_abs)
            except ValueError:
                raise BadInput(f"pythonpath entry {entry} is outside the tree") from None
        rel = PurePosixPath(p.as_posix())
        if ".." in rel.parts:
            raise BadInput(f"pythonpath entry {entry} leaves the tree")
        out.append(rel)
    return out


def _parse(tool: str, log: Path) -> TestCounts | None:
    try:
        size = log.stat().st_size
        with open(log, "rb") as fh:
            if size > _MAX_LOG_READ:
                fh.seek(size - _MAX_LOG_READ)
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    parsers = [_PARSERS[tool]] if tool in _PARSERS else [parse_pytest_summary, parse_unittest]
    for parse in parsers:
        try:
            return parse(text)
        except NoSummaryLine:
            continue
    return None


def _outcome(tool: str, res: ExecResult, counts: TestCounts | None) -> Outcome:
    if res.timed_out or res.killed_by == "SIGXCPU":
        return "timeout"
    rc = res.returncode
    if tool == "pytest":
        if rc == _PYTEST_OK:
            return "passed"
        if rc == _PYTEST_FAILED:
            return "failed"
        if rc == _PYTEST_NO_TESTS:
            return "no tests"
        return "error"  # interrupted (collection errors), internal error, usage error, killed
    if counts is None:
        return "passed" if rc == 0 else "error"
    if counts.total == 0 and counts.subtests_passed == 0 and counts.subtests_failed == 0:
        return "no tests" if rc == 0 else "error"
    if not counts.ok:
        return "failed"
    return "passed" if rc == 0 else "error"


def _not_run(reason: str, command: Sequence[str], tool: str, work_parent: Path) -> SuiteRun:
    """A suite NOA could not run honestly: ``unknown``, with the reason in the log and the notes."""
    work_parent.mkdir(parents=True, exist_ok=True)
    log = work_parent / f"not-run-{os.getpid()}-{abs(hash(reason)) % 10**8}.log"
    log.write_text(f"not run: {reason}\n", encoding="utf-8")
    return SuiteRun(outcome="unknown", counts=None, returncode=-1, seconds=0.0, isolation="none", log_path=log,
                    work_dir=work_parent, command=tuple(command), tool=tool, notes=(reason,))


def run_test_suite(
    tree: Path,
    command: list[str],
    *,
    work_parent: Path,
    limits: ExecLimits,
    pythonpath: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    keep_work_copy: bool = True,
    hide_paths: Sequence[str | os.PathLike[str]] = (),
    readonly_paths: Sequence[str | os.PathLike[str]] = (),
    python_env: EnvChoice | None = None,
    deps_home: Path | None = None,
) -> SuiteRun:
    """Copy ``tree`` under ``work_parent``, run ``command`` there isolated, count results.

    ``python``/``pytest`` in ``command`` mean the project's own environment when
    ``python_env`` is given (:func:`noa_core.pyenv.provider.prepare_python_env`): its
    interpreter, its packages, the project itself installed beside it, and nothing of
    NOA's. When that environment could not be made, the suite is not run and the outcome
    is ``unknown`` with the reason. Without ``python_env`` (only callers that test NOA's
    own isolation do that) they mean NOA's interpreter. ``pythonpath`` entries are
    relative to the tree (``["src"]`` for a src layout). pytest gets ``-p
    no:cacheprovider``; when it exits 4 (usage error, typically ``addopts`` naming an
    uninstalled plugin such as ``--cov``) it is run once more with ``-o addopts=`` and
    the result says so.

    The log (stdout and stderr) is written next to the work copy, outside it.
    ``hide_paths`` / ``readonly_paths`` go to :func:`noa_core.isolation.run_isolated`
    (pass NOA's home in ``hide_paths`` when it is not in ``$NOA_HOME``).

    A cargo, go or npm/node command runs with its toolchain exposed read-only and the
    project's dependencies fetched outside the sandbox first (:mod:`noa_core.deps`, cached
    under ``deps_home``/deps, else ``$NOA_DEPS_CACHE`` or ``$NOA_HOME/deps``); when they
    cannot be had, the outcome is ``unknown`` with the tool's own message.
    """
    tree = Path(tree)
    work_parent = Path(work_parent)
    python = sys.executable
    run_env = dict(env or {})
    readonly = list(readonly_paths)
    notes: list[str] = []
    site_entries: list[str] = []
    if python_env is not None and is_python_command(command):
        if not python_env.ready:
            tool0, _ = _prepare(command)
            return _not_run(f"no environment for the project: {python_env.reason}", command, tool0, work_parent)
        assert python_env.env is not None
        python = str(python_env.env.python)
        readonly += list(python_env.readonly_paths)
        run_env["PATH"] = f"{python_env.env.bin_dir}:/usr/local/bin:/usr/bin:/bin"
        run_env["VIRTUAL_ENV"] = str(python_env.env.path)
        if python_env.site is not None:
            site_entries.append(str(python_env.site))
        notes.append(f"environment {python_env.env.key[:12]} ({len(python_env.env.packages)} packages"
                     f"{', reused' if python_env.env.reused else ''})")
    tool, argv = _prepare(command, python, _env_pytest_major(python_env))
    rel_path = _relative_pythonpath(pythonpath, tree)
    work = make_work_copy(tree, work_parent)
    log = work_parent / f"{work.name}.log"
    # --- native toolchains (noa_core.toolchains, noa_core.deps): a cargo/go/npm command gets its
    # toolchain exposed read-only and the project's dependencies fetched outside, else unknown
    native = prepare_native_run(argv, work, layout=DepsLayout.resolve(deps_home, fallback=work_parent),
                                log=work_parent / f"{work.name}.deps.log", timeout=float(limits.wall_seconds))
    if native.status == "unknown":
        shutil.rmtree(work, ignore_errors=True)
        return _not_run(native.reason, command, tool, work_parent)
    if native.ready:
        argv = list(native.argv)
        run_env = {**native.env, **run_env}
        readonly += list(native.readonly_paths)
        notes += list(native.notes)
    # --- end native toolchains
    extra_path = [str(work / p) for p in rel_path] + site_entries + [
        p for p in run_env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if extra_path:
        run_env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(extra_path))
    if argv[0] == sys.executable:
        notes.append(f"ran with NOA's interpreter {sys.executable}; the dropped code's own dependencies "
                     "were not installed")
    try:
        res = run_isolated(argv, work, limits, env=run_env, stdout_path=log, merge_stderr=True,
                           hide_paths=hide_paths, readonly_paths=readonly)
        seconds = res.seconds
        retried = False
        if tool == "pytest" and res.returncode == _PYTEST_USAGE and not res.timed_out:
            first = log.with_name(log.stem + ".usage-error.log")
            log.replace(first)
            argv = [*argv, "-o", "addopts="]
            res = run_isolated(argv, work, limits, env=run_env, stdout_path=log, merge_stderr=True,
                               hide_paths=hide_paths, readonly_paths=readonly)
            seconds += res.seconds
            retried = True
            notes.append(f"pytest exited 4 (usage error, see {first.name}); retried once with -o addopts=")
        counts = _parse(tool, log)
        if counts is None:
            notes.append("the tool printed no closing summary line; outcome taken from the exit code")
    finally:
        if not keep_work_copy:
            shutil.rmtree(work, ignore_errors=True)
    return SuiteRun(
        outcome=_outcome(tool, res, counts),
        counts=counts,
        returncode=res.returncode,
        seconds=round(seconds, 3),
        isolation=res.isolation,
        log_path=log,
        work_dir=work,
        command=tuple(argv),
        tool=tool,
        retried_without_addopts=retried,
        timed_out=res.timed_out,
        killed_by=res.killed_by,
        notes=tuple(notes),
    )
