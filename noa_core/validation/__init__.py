"""Validation: run a dropped tree's test suite in isolation and count its results the way
the test tool itself reports them (subtests apart)."""

from noa_core.validation.counts import (
    NoSummaryLine,
    TestCounts,
    parse_cargo_test,
    parse_go_test,
    parse_pytest_summary,
    parse_unittest,
)
from noa_core.validation.runner import Outcome, SuiteRun, run_test_suite, suggest_pythonpath

__all__ = [
    "NoSummaryLine",
    "Outcome",
    "SuiteRun",
    "TestCounts",
    "parse_cargo_test",
    "parse_go_test",
    "parse_pytest_summary",
    "parse_unittest",
    "run_test_suite",
    "suggest_pythonpath",
]
