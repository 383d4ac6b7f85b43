"""A pytest plugin NOA loads into isolated swarm runs (``-p noa_core.swarm.pytest_plugin``).

It changes nothing in the run; it only writes, at the end of the session, a small JSON
file (path from ``$NOA_SWARM_REPORT``, relative to the run's directory) with:

* ``collected`` - the node ids pytest collected (used with ``--collect-only``);
* ``skipped_files`` - files whose module was skipped as a whole at collection
  (``pytest.skip(allow_module_level=True)``): they count in the summary, so shards keep them;
* ``durations`` - seconds per test file: module collection (import) plus each test's
  setup, call and teardown, measured with pytest's own report durations;
* ``failed`` - node ids that failed or errored in any phase.

Counts are never taken from here: they come from pytest's own summary line. The file is
written inside the sandbox by code that shares the process with the dropped tests, so
NOA reads it as untrusted (sizes and types checked); it only steers shard balancing and
re-runs.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

REPORT_ENV = "NOA_SWARM_REPORT"

_durations: dict[str, float] = {}
_failed: dict[str, None] = {}
_collected: list[str] = []
_skipped_files: dict[str, None] = {}


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _is_subtest(report: Any) -> bool:
    return type(report).__name__ == "SubtestReport"


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    if not isinstance(collector, pytest.File):
        return (yield)
    start = time.perf_counter()
    try:
        return (yield)
    finally:
        key = _file_of(collector.nodeid)
        _durations[key] = _durations.get(key, 0.0) + (time.perf_counter() - start)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped and report.nodeid and "::" not in report.nodeid:
        _skipped_files[report.nodeid] = None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _is_subtest(report):
        if report.failed:
            _failed[report.nodeid] = None
        return  # its time is inside the test's own call phase
    key = _file_of(report.nodeid)
    _durations[key] = _durations.get(key, 0.0) + float(report.duration or 0.0)
    if report.failed:
        _failed[report.nodeid] = None


def pytest_collection_finish(session: pytest.Session) -> None:
    _collected[:] = [item.nodeid for item in session.items]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get(REPORT_ENV)
    if not target or hasattr(session.config, "workerinput"):  # xdist workers: the controller writes
        return
    doc = {
        "collected": _collected,
        "skipped_files": list(_skipped_files),
        "durations": {k: round(v, 6) for k, v in _durations.items()},
        "failed": list(_failed),
    }
    try:
        with open(os.path.join(str(session.config.invocation_params.dir), target), "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
    except OSError:
        pass
