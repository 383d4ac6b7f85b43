"""One isolated pytest run with NOA's pytest plugin (:mod:`noa_core.swarm.pytest_plugin`)
loaded, and the plugin's report (collected node ids, per-file seconds, failed node ids)
read back as untrusted data."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from noa_core.config import ExecLimits
from noa_core.pyenv.provider import EnvChoice
from noa_core.swarm.pytest_commands import Kind
from noa_core.validation.runner import SuiteRun, run_test_suite

__all__ = ["PLUGIN", "REPORT_ENV", "REPORT_NAME", "plugin_dir", "run_with_plugin", "with_plugin"]

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


def with_plugin(base: Sequence[str], clear_addopts: bool, kind: Kind = "pytest") -> list[str]:
    """``base`` with NOA's plugin loaded (and ``--rootdir=.`` pinned for a shardable command),
    the config's addopts cleared when ``clear_addopts``; an ``other`` command as it is."""
    if kind == "other":
        return list(base)
    argv = [*base, "-p", PLUGIN]
    if kind == "pytest":
        argv.append("--rootdir=.")
    if clear_addopts:
        argv += ["-o", "addopts="]
    return argv


def run_with_plugin(tree: Path, argv: list[str], *, work_parent: Path, limits: ExecLimits,
                    pythonpath: Sequence[str], hide_paths: Sequence[str], env: Mapping[str, str] | None = None,
                    python_env: EnvChoice | None = None) -> tuple[SuiteRun, dict[str, Any]]:
    """``argv`` run isolated on a copy of ``tree`` with NOA's plugin on the path, and the plugin's report."""
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

