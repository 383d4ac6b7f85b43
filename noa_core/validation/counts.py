"""Test counts read from a test tool's own closing lines.

Each parser reads what the tool itself prints at the end of a run (pytest's summary
line, unittest's "Ran N tests" + "OK"/"FAILED (...)", cargo's "test result:" lines,
go test's "--- PASS/FAIL" lines and "ok"/"FAIL" package lines). We deliberately do not
use JUnit XML or pytest-json-report: with pytest 9's built-in subtests they count
subtests as tests (more-itertools: JUnit says tests=21959 where pytest says
"765 passed, 21194 subtests passed"). Subtests are reported apart.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import ClassVar

from noa_core.errors import NoaError

__all__ = [
    "NoSummaryLine",
    "TestCounts",
    "parse_cargo_test",
    "parse_go_test",
    "parse_pytest_summary",
    "parse_unittest",
]


class NoSummaryLine(NoaError, ValueError):
    """The output holds no closing line of the tool (it crashed, was killed, or is not that tool)."""


@dataclass(frozen=True)
class TestCounts:
    """Counts as the tool reported them, plus the line they were read from."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    xfailed: int = 0
    xpassed: int = 0
    deselected: int = 0
    subtests_passed: int = 0
    subtests_failed: int = 0
    subtests_skipped: int = 0
    warnings: int = 0
    summary_line: str = ""
    tool: str = ""
    other: tuple[tuple[str, int], ...] = field(default=())  # categories we do not know (plugins' own)

    @property
    def total(self) -> int:
        """Tests (not subtests) that got an outcome, the way the tool counts them."""
        return self.passed + self.failed + self.errors + self.skipped + self.xfailed + self.xpassed

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.errors == 0 and self.subtests_failed == 0

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["other"] = dict(self.other)
        return d

    def __add__(self, other: "TestCounts") -> "TestCounts":
        if not isinstance(other, TestCounts):
            return NotImplemented
        nums = {k: getattr(self, k) + getattr(other, k) for k in _NUMERIC}
        merged: dict[str, int] = dict(self.other)
        for k, v in other.other:
            merged[k] = merged.get(k, 0) + v
        return TestCounts(**nums, summary_line=other.summary_line or self.summary_line,
                          tool=self.tool or other.tool, other=tuple(merged.items()))


_NUMERIC = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed", "deselected",
            "subtests_passed", "subtests_failed", "subtests_skipped", "warnings")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _clean(line: str) -> str:
    return _ANSI.sub("", line).replace("\r", "").strip()


# ----------------------------------------------------------------------------- pytest

_PYTEST_WORDS = {
    "passed": "passed",
    "failed": "failed",
    "error": "errors",
    "errors": "errors",
    "skipped": "skipped",
    "xfailed": "xfailed",
    "xpassed": "xpassed",
    "deselected": "deselected",
    "warning": "warnings",
    "warnings": "warnings",
    "subtests passed": "subtests_passed",
    "subtests failed": "subtests_failed",
    "subtests skipped": "subtests_skipped",
}
_PYTEST_DURATION = re.compile(r"\s+in\s+\d+(?:\.\d+)?s(?:\s+\((?:\d+ days?, )?\d+:\d\d:\d\d\))?$")
_PYTEST_PART = re.compile(r"^(\d+) ([a-z][a-z_ -]*[a-z])$")
_PYTEST_COLLECTED = re.compile(r"^(?:(\d+)/)?(\d+) tests? collected(?: \((\d+) deselected\))?$")
_PYTEST_NONE_COLLECTED = re.compile(r"^no tests collected(?: \((\d+) deselected\))?$")


def _pytest_line(raw: str) -> TestCounts | None:
    line = _clean(raw)
    decorated = line.startswith("=") and line.endswith("=")
    line = line.strip("=").strip()
    body, n = _PYTEST_DURATION.subn("", line)
    has_duration = n > 0
    if not body:
        return None
    values: dict[str, int] = {}
    other: dict[str, int] = {}
    for part in body.split(", "):
        part = part.strip()
        if part == "no tests ran":
            continue
        m = _PYTEST_COLLECTED.match(part)
        if m:  # --collect-only
            if m.group(3):
                values["deselected"] = values.get("deselected", 0) + int(m.group(3))
            other["collected"] = int(m.group(2)) - int(m.group(3) or 0)
            continue
        m = _PYTEST_NONE_COLLECTED.match(part)
        if m:
            if m.group(1):
                values["deselected"] = int(m.group(1))
            other["collected"] = 0
            continue
        m = _PYTEST_PART.match(part)
        if not m:
            return None
        count, word = int(m.group(1)), m.group(2)
        key = _PYTEST_WORDS.get(word)
        if key is None:
            # A plugin's own category ("3 rerun"): only trust it on a real summary line.
            if not (decorated or has_duration):
                return None
            other[word] = other.get(word, 0) + count
        else:
            values[key] = values.get(key, 0) + count
    if not values and not other and "no tests ran" not in body:
        return None
    return TestCounts(**values, summary_line=line, tool="pytest", other=tuple(other.items()))


def parse_pytest_summary(output: str) -> TestCounts:
    """Counts from pytest's final summary line, e.g. ``== 765 passed, 21194 subtests passed,
    3 skipped in 28.10s ==``, ``1 failed, 2 passed, 1 error in 0.12s``, ``no tests ran``.

    Reads the last line of the output that has that shape (with ``-q`` pytest prints it
    without the ``=`` rule; with ``-qq`` it prints none). Raises :class:`NoSummaryLine`.
    """
    for raw in reversed(output.splitlines()):
        if not raw.strip():
            continue
        counts = _pytest_line(raw)
        if counts is not None:
            return counts
    raise NoSummaryLine("no pytest summary line in the output")


# --------------------------------------------------------------------------- unittest

_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in [\d.]+s$")
_UNITTEST_STATUS = re.compile(r"^(OK|FAILED|NO TESTS RAN)(?: \((.*)\))?$")
_UNITTEST_KEYS = {
    "failures": "failed",
    "errors": "errors",
    "skipped": "skipped",
    "expected failures": "xfailed",
    "unexpected successes": "xpassed",
}


def parse_unittest(output: str) -> TestCounts:
    """Counts from ``python -m unittest``: ``Ran 12 tests in 0.003s`` then ``OK``,
    ``OK (skipped=1)`` or ``FAILED (failures=1, errors=2)``. Passed is what is left of
    "Ran" after failures, errors, skips, expected failures and unexpected successes.
    """
    lines = [_clean(x) for x in output.splitlines()]
    for i in range(len(lines) - 1, -1, -1):
        m = _UNITTEST_RAN.match(lines[i])
        if not m:
            continue
        ran = int(m.group(1))
        status = next((ln for ln in lines[i + 1:] if ln), "")
        sm = _UNITTEST_STATUS.match(status)
        if not sm:
            continue
        values = {v: 0 for v in _UNITTEST_KEYS.values()}
        for item in filter(None, (sm.group(2) or "").split(", ")):
            key, _, num = item.partition("=")
            if key.strip() in _UNITTEST_KEYS and num.strip().isdigit():
                values[_UNITTEST_KEYS[key.strip()]] = int(num)
        # unittest counts a failing test once per failing subTest; keep "passed" >= 0.
        passed = max(0, ran - sum(values.values()))
        return TestCounts(passed=passed, **values, summary_line=f"{lines[i]} {status}", tool="unittest")
    raise NoSummaryLine("no unittest 'Ran N tests' + status lines in the output")


# ------------------------------------------------------------------------------ cargo

_CARGO_RESULT = re.compile(
    r"^test result: (ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored; (\d+) measured; "
    r"(\d+) filtered out(?:; finished in [\d.]+s)?$"
)


def parse_cargo_test(output: str) -> TestCounts:
    """Counts from ``cargo test``: the sum over every ``test result: ok. 12 passed; 0 failed;
    1 ignored; 0 measured; 0 filtered out; finished in 0.00s`` line (one per test binary
    and one for doctests). Ignored -> skipped, filtered out -> deselected.
    """
    total = None
    for raw in output.splitlines():
        m = _CARGO_RESULT.match(_clean(raw))
        if not m:
            continue
        one = TestCounts(passed=int(m.group(2)), failed=int(m.group(3)), skipped=int(m.group(4)),
                         deselected=int(m.group(6)), summary_line=_clean(raw), tool="cargo",
                         other=(("measured", int(m.group(5))),) if int(m.group(5)) else ())
        total = one if total is None else total + one
    if total is None:
        raise NoSummaryLine("no cargo 'test result:' line in the output")
    return total


# --------------------------------------------------------------------------------- go

_GO_CASE = re.compile(r"^(\s*)--- (PASS|FAIL|SKIP): (\S+)(?: \([\d.]+s\))?")
_GO_OK = re.compile(r"^ok\s+\S+(?:\s+.*)?$")
_GO_FAIL = re.compile(r"^FAIL\s+\S+(?:\s+.*)?$")
_GO_NOFILES = re.compile(r"^\?\s+\S+\s+\[no test files\]$")


def parse_go_test(output: str) -> TestCounts:
    """Counts from ``go test -v``: top-level ``--- PASS/FAIL/SKIP: TestX`` lines are tests,
    indented ones (``TestX/case``) are subtests; package lines ``ok  pkg 0.01s`` /
    ``FAIL pkg 0.01s`` close the run. A package that failed to build (``[build failed]``,
    ``[setup failed]``) counts as one error. Without ``-v`` only package lines exist:
    they are counted in ``other`` (packages ok / failed).
    """
    values = dict.fromkeys(("passed", "failed", "skipped", "subtests_passed", "subtests_failed",
                            "subtests_skipped", "errors"), 0)
    pkgs_ok = pkgs_failed = 0
    last = ""
    seen_any = False
    for raw in output.splitlines():
        line = _ANSI.sub("", raw).rstrip()
        m = _GO_CASE.match(line)
        if m:
            seen_any = True
            sub = bool(m.group(1)) or "/" in m.group(3)
            key = {"PASS": "passed", "FAIL": "failed", "SKIP": "skipped"}[m.group(2)]
            values[("subtests_" + key) if sub else key] += 1
            continue
        stripped = line.strip()
        if _GO_OK.match(stripped):
            pkgs_ok += 1
            last, seen_any = stripped, True
        elif _GO_FAIL.match(stripped):
            pkgs_failed += 1
            if "[build failed]" in stripped or "[setup failed]" in stripped:
                values["errors"] += 1
            last, seen_any = stripped, True
        elif _GO_NOFILES.match(stripped):
            last, seen_any = stripped, True
    if not seen_any:
        raise NoSummaryLine("no go test result lines in the output")
    other = (("packages ok", pkgs_ok), ("packages failed", pkgs_failed))
    return TestCounts(**values, summary_line=last, tool="go", other=other)
