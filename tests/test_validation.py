"""noa_core.validation: parsers on the tools' own closing lines, and run_test_suite on small
projects written here (run for real, isolated)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from noa_core.config import ExecLimits
from noa_core.validation import (
    NoSummaryLine,
    TestCounts,
    parse_cargo_test,
    parse_go_test,
    parse_pytest_summary,
    parse_unittest,
    run_test_suite,
    suggest_pythonpath,
)
from validation_helpers import TINY_SRC_PROJECT, with_pyproject_addopts, write_tree

LIMITS = ExecLimits(cpu_seconds=120, wall_seconds=120)


def _nums(c: TestCounts) -> dict[str, int]:
    return {k: v for k, v in c.as_dict().items() if isinstance(v, int) and v}


# ------------------------------------------------------------------------------- pytest


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("============ 765 passed, 21194 subtests passed, 3 skipped in 28.10s ============",
         {"passed": 765, "subtests_passed": 21194, "skipped": 3}),
        ("1 failed, 2 passed, 1 error", {"failed": 1, "passed": 2, "errors": 1}),
        ("5 errors", {"errors": 5}),
        ("=================== 2 failed, 10 passed, 1 skipped, 2 xfailed, 1 xpassed, 4 deselected, "
         "7 warnings, 3 errors in 1.23s ===================",
         {"failed": 2, "passed": 10, "skipped": 1, "xfailed": 2, "xpassed": 1, "deselected": 4,
          "warnings": 7, "errors": 3}),
        ("476 passed, 24 subtests passed in 1.48s", {"passed": 476, "subtests_passed": 24}),
        ("== 3 failed, 40 passed, 2 subtests failed, 9 subtests passed, 1 subtests skipped, 1 warning in 75.30s (0:01:15) ==",
         {"failed": 3, "passed": 40, "subtests_failed": 2, "subtests_passed": 9, "subtests_skipped": 1,
          "warnings": 1}),
        ("2434 passed, 24 skipped, 31000 deselected, 1 xfailed in 11.77s",
         {"passed": 2434, "skipped": 24, "deselected": 31000, "xfailed": 1}),
        ("========================= 1 error in 0.08s =========================", {"errors": 1}),
    ],
)
def test_pytest_summary_lines(line: str, expected: dict[str, int]) -> None:
    counts = parse_pytest_summary(line)
    assert _nums(counts) == expected
    assert counts.tool == "pytest"
    assert counts.summary_line == line.strip("=").strip()


def test_pytest_no_tests_ran() -> None:
    for text in ("no tests ran", "============================ no tests ran in 0.01s ============================",
                 "no tests ran in 0.00s"):
        counts = parse_pytest_summary(text)
        assert counts.total == 0 and counts.summary_line.startswith("no tests ran")


def test_pytest_reads_the_last_summary_in_real_looking_output() -> None:
    output = """\
============================= test session starts ==============================
platform linux -- Python 3.11.7, pytest-9.2.0, pluggy-1.6.0
rootdir: /w/proj
collected 6 items

tests/test_a.py ..F.                                                     [ 66%]
tests/test_b.py .E                                                       [100%]

==================================== ERRORS ====================================
_________________________ ERROR at setup of test_b2 __________________________
E   RuntimeError: 1 passed
=================================== FAILURES ===================================
___________________________________ test_a3 ____________________________________
E       assert '2 passed' == '3 passed'
----------------------------- Captured stdout call -----------------------------
=== 99 passed in 0.01s ===
=========================== short test summary info ============================
FAILED tests/test_a.py::test_a3 - AssertionError: assert '2 passed' == '3 passed'
ERROR tests/test_b.py::test_b2 - RuntimeError: 1 passed
\x1b[31m==================== \x1b[31m\x1b[1m1 failed\x1b[0m, \x1b[32m4 passed\x1b[0m, \x1b[31m\x1b[1m1 error\x1b[0m\x1b[31m in 0.12s\x1b[0m\x1b[31m ====================\x1b[0m
"""
    counts = parse_pytest_summary(output)
    assert (counts.passed, counts.failed, counts.errors) == (4, 1, 1)
    assert counts.summary_line == "1 failed, 4 passed, 1 error in 0.12s"


def test_pytest_collection_interrupted() -> None:
    output = """\
!!!!!!!!!!!!!!!!!!!! Interrupted: 2 errors during collection !!!!!!!!!!!!!!!!!!!!
============================== 2 errors in 0.31s ===============================
"""
    assert parse_pytest_summary(output).errors == 2


def test_pytest_plugin_categories_are_kept_apart() -> None:
    counts = parse_pytest_summary("==== 3 passed, 2 rerun in 1.00s ====")
    assert counts.passed == 3 and dict(counts.other) == {"rerun": 2}


def test_pytest_without_summary() -> None:
    with pytest.raises(NoSummaryLine):
        parse_pytest_summary("Traceback (most recent call last):\n  ...\nKilled\n")
    with pytest.raises(NoSummaryLine):
        parse_pytest_summary("")


def test_pytest_summary_of_a_real_run(tmp_path: Path) -> None:
    """Our parser against pytest's own output here, with and without -q."""
    write_tree(tmp_path, {
        "test_real.py": """
            import pytest
            def test_ok(): pass
            def test_sub(subtests):
                for i in range(4):
                    with subtests.test(i=i):
                        assert i != 3
            @pytest.mark.skip
            def test_skip(): pass
            @pytest.mark.xfail
            def test_xf(): assert 0
        """,
    })
    # pytest 9.2 counts a failed subtest as "failed" (and its test fails too), and shows
    # passed subtests only when subtests verbosity is not 0 (so with -q, not by default).
    for extra, subtests_passed in (([], 0), (["-q"], 3), (["-o", "verbosity_subtests=1"], 3)):
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *extra],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        counts = parse_pytest_summary(proc.stdout)
        assert (counts.passed, counts.failed, counts.skipped, counts.xfailed) == (1, 2, 1, 1), proc.stdout[-500:]
        assert counts.subtests_passed == subtests_passed
        assert counts.summary_line in proc.stdout


# ----------------------------------------------------------------------------- unittest


def test_unittest_lines() -> None:
    out = "..F.E.s\n======\nFAIL: test_x\n----------------------------------------------------------------------\n" \
          "Ran 7 tests in 0.004s\n\nFAILED (failures=1, errors=1, skipped=1)\n"
    c = parse_unittest(out)
    assert _nums(c) == {"passed": 4, "failed": 1, "errors": 1, "skipped": 1}
    assert c.summary_line == "Ran 7 tests in 0.004s FAILED (failures=1, errors=1, skipped=1)"
    c = parse_unittest("Ran 3 tests in 0.000s\n\nOK (skipped=1, expected failures=1)\n")
    assert _nums(c) == {"passed": 1, "skipped": 1, "xfailed": 1}
    assert parse_unittest("Ran 1 test in 0.000s\n\nOK\n").passed == 1
    c = parse_unittest("Ran 0 tests in 0.000s\n\nNO TESTS RAN\n")
    assert c.total == 0
    with pytest.raises(NoSummaryLine):
        parse_unittest("ImportError: no module named x\n")


def test_unittest_real_run(tmp_path: Path) -> None:
    write_tree(tmp_path, {"test_u.py": """
        import unittest
        class T(unittest.TestCase):
            def test_a(self): pass
            def test_b(self): self.assertEqual(1, 2)
            @unittest.skip("no")
            def test_c(self): pass
            def test_d(self): raise KeyError
    """})
    proc = subprocess.run([sys.executable, "-m", "unittest", "-q"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    c = parse_unittest(proc.stderr)
    assert _nums(c) == {"passed": 1, "failed": 1, "skipped": 1, "errors": 1}


# -------------------------------------------------------------------------------- cargo


def test_cargo_results_are_summed() -> None:
    out = """\
   Compiling itoa v1.0.9 (/w/itoa)
    Finished test [unoptimized + debuginfo] target(s) in 1.20s
     Running unittests src/lib.rs (target/debug/deps/itoa-1a2b)

running 2 tests
test tests::a ... ok
test tests::b ... ignored

test result: ok. 1 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s

     Running tests/test.rs (target/debug/deps/test-3c4d)

running 12 tests
test result: FAILED. 10 passed; 2 failed; 0 ignored; 0 measured; 3 filtered out; finished in 0.01s

   Doc-tests itoa

running 1 test
test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.15s
"""
    c = parse_cargo_test(out)
    assert _nums(c) == {"passed": 12, "failed": 2, "skipped": 1, "deselected": 3}
    assert c.tool == "cargo" and c.summary_line.startswith("test result: ok. 1 passed")
    with pytest.raises(NoSummaryLine):
        parse_cargo_test("error[E0425]: cannot find value `x`\nerror: could not compile `itoa`\n")


# ----------------------------------------------------------------------------------- go


def test_go_verbose_output() -> None:
    out = """\
=== RUN   TestParse
--- PASS: TestParse (0.00s)
=== RUN   TestTable
=== RUN   TestTable/empty
=== RUN   TestTable/long
    uuid_test.go:42: bad
--- FAIL: TestTable (0.00s)
    --- PASS: TestTable/empty (0.00s)
    --- FAIL: TestTable/long (0.00s)
=== RUN   TestSkip
--- SKIP: TestSkip (0.00s)
=== RUN   TestNew
--- PASS: TestNew (0.01s)
FAIL
FAIL\tgithub.com/google/uuid\t0.015s
ok  \tgithub.com/google/uuid/other\t0.003s
?   \tgithub.com/google/uuid/cmd\t[no test files]
FAIL\tgithub.com/google/uuid/broken [build failed]
FAIL
"""
    c = parse_go_test(out)
    assert _nums(c) == {"passed": 2, "failed": 1, "skipped": 1, "subtests_passed": 1, "subtests_failed": 1,
                        "errors": 1}
    assert dict(c.other) == {"packages ok": 1, "packages failed": 2}
    assert c.summary_line == "FAIL\tgithub.com/google/uuid/broken [build failed]"
    with pytest.raises(NoSummaryLine):
        parse_go_test("go: cannot find main module\n")


def test_go_quiet_output_counts_packages() -> None:
    c = parse_go_test("ok  \tgithub.com/google/uuid\t0.012s\n")
    assert c.total == 0 and dict(c.other) == {"packages ok": 1, "packages failed": 0}


# ------------------------------------------------------------------------ run_test_suite


def test_tiny_src_project_exact_counts(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "drop", TINY_SRC_PROJECT)
    assert suggest_pythonpath(tree) == ["src"]
    run = run_test_suite(tree, ["python", "-m", "pytest"], work_parent=tmp_path / "work", limits=LIMITS,
                         pythonpath=["src"])
    assert run.counts is not None, run.log_path.read_text()[-2000:]
    assert (run.counts.passed, run.counts.failed, run.counts.errors) == (3, 1, 1)
    assert run.counts.total == 5
    assert run.outcome == "failed" and run.returncode == 1
    assert run.tool == "pytest" and not run.retried_without_addopts
    assert run.isolation in ("bwrap", "unshare")
    assert run.command[:7] == (sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o",
                               "verbosity_subtests=1")
    log = run.log_path.read_text()
    assert run.counts.summary_line in log and "fixture blew up" in log
    assert not run.log_path.is_relative_to(run.work_dir)
    assert any("dependencies" in n for n in run.notes)
    # the original tree is untouched: no caches, no bytecode
    assert sorted(p.name for p in tree.rglob("*")) == sorted(
        ["pyproject.toml", "src", "tinycalc", "__init__.py", "tests", "test_calc.py"])


def test_src_layout_needs_its_pythonpath(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "drop", TINY_SRC_PROJECT)
    run = run_test_suite(tree, ["pytest"], work_parent=tmp_path / "work", limits=LIMITS)
    assert run.outcome == "error"  # collection error: tinycalc is not importable
    assert run.counts is not None and run.counts.errors == 1 and run.counts.passed == 0
    assert "ModuleNotFoundError" in run.log_path.read_text()


@pytest.mark.skipif(importlib.util.find_spec("pytest_cov") is not None,
                    reason="pytest-cov is installed here, so --cov is not a usage error")
def test_addopts_naming_a_missing_plugin_is_retried(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "drop", with_pyproject_addopts(TINY_SRC_PROJECT, "--cov=tinycalc --cov-report=term"))
    run = run_test_suite(tree, ["python", "-m", "pytest", "-q"], work_parent=tmp_path / "work", limits=LIMITS,
                         pythonpath=["src"])
    assert run.retried_without_addopts
    assert run.command[-2:] == ("-o", "addopts=")
    assert run.counts is not None
    assert (run.counts.passed, run.counts.failed, run.counts.errors) == (3, 1, 1)
    assert run.outcome == "failed"
    first = run.log_path.with_name(run.log_path.stem + ".usage-error.log")
    assert "--cov" in first.read_text()
    assert any("retried" in n for n in run.notes)


def test_subtests_are_reported_apart(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "drop", {"tests/test_sub.py": """
        def test_many(subtests):
            for i in range(10):
                with subtests.test(i=i):
                    assert i >= 0
        def test_plain():
            pass
    """})
    # no -q: NOA still has pytest count passed subtests, apart from tests
    run = run_test_suite(tree, ["python", "-m", "pytest"], work_parent=tmp_path / "w", limits=LIMITS)
    assert run.outcome == "passed"
    assert run.counts is not None
    assert (run.counts.passed, run.counts.subtests_passed) == (2, 10)


def test_no_tests(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "drop", {"README.md": "nothing here\n"})
    run = run_test_suite(tree, ["python", "-m", "pytest"], work_parent=tmp_path / "w", limits=LIMITS)
    assert run.outcome == "no tests" and run.returncode == 5
    assert run.counts is not None and run.counts.total == 0


def test_timeout(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "drop", {"test_slow.py": """
        import time
        def test_slow():
            time.sleep(60)
    """})
    run = run_test_suite(tree, ["python", "-m", "pytest"], work_parent=tmp_path / "w",
                         limits=ExecLimits(wall_seconds=3))
    assert run.outcome == "timeout" and run.timed_out and run.killed_by == "SIGKILL"
    assert run.counts is None
    assert run.seconds < 30


def test_suite_cannot_reach_outside(tmp_path: Path) -> None:
    """A hostile test that tries to write into the original tree and to reach the network."""
    tree = write_tree(tmp_path / "drop", {"test_evil.py": """
        import os, pathlib, socket
        def test_write_original():
            target = pathlib.Path(os.environ["ORIGINAL"]) / "pwned"
            try:
                target.write_text("x")
            except OSError:
                return
            raise AssertionError("wrote outside")
        def test_network():
            try:
                socket.create_connection(("127.0.0.1", 5432), timeout=2)
            except OSError:
                return
            raise AssertionError("reached a local service")
    """})
    run = run_test_suite(tree, ["python", "-m", "pytest"], work_parent=tmp_path / "w", limits=LIMITS,
                         env={"ORIGINAL": str(tree)})
    assert run.outcome == "passed", run.log_path.read_text()[-2000:]
    assert not (tree / "pwned").exists()


def test_unittest_suite(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "drop", {"tests/__init__.py": "", "tests/test_u.py": """
        import unittest
        class T(unittest.TestCase):
            def test_a(self): pass
            def test_b(self): pass
            def test_c(self): self.fail("no")
    """})
    run = run_test_suite(tree, ["python", "-m", "unittest", "discover", "-s", "tests", "-t", "."],
                         work_parent=tmp_path / "w", limits=LIMITS)
    assert run.tool == "unittest"
    assert run.counts is not None and (run.counts.passed, run.counts.failed) == (2, 1)
    assert run.outcome == "failed"


def test_work_copy_can_be_dropped(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "drop", {"test_one.py": "def test_one(): pass\n"})
    run = run_test_suite(tree, ["pytest"], work_parent=tmp_path / "w", limits=LIMITS, keep_work_copy=False)
    assert run.outcome == "passed" and not run.work_dir.exists() and run.log_path.exists()


def test_pythonpath_must_stay_in_the_tree(tmp_path: Path) -> None:
    from noa_core.errors import BadInput

    tree = write_tree(tmp_path / "drop", {"test_one.py": "def test_one(): pass\n"})
    with pytest.raises(BadInput):
        run_test_suite(tree, ["pytest"], work_parent=tmp_path / "w", limits=LIMITS, pythonpath=["../elsewhere"])
    with pytest.raises(BadInput):
        run_test_suite(tree, ["pytest"], work_parent=tmp_path / "w", limits=LIMITS, pythonpath=["/usr/lib"])


def test_hidden_paths_reach_the_suite(tmp_path: Path) -> None:
    import shutil
    import tempfile

    secret_home = Path(tempfile.mkdtemp(prefix="noa-test-home-", dir="/var/tmp"))
    try:
        (secret_home / "registry.db").write_text("private")
        tree = write_tree(tmp_path / "drop", {"test_peek.py": """
            import os
            def test_peek():
                assert os.listdir(os.environ["SECRET_HOME"]) == []
        """})
        run = run_test_suite(tree, ["pytest"], work_parent=tmp_path / "w", limits=LIMITS,
                             env={"SECRET_HOME": str(secret_home)}, hide_paths=[secret_home])
        assert run.outcome == "passed", run.log_path.read_text()[-2000:]
    finally:
        shutil.rmtree(secret_home, ignore_errors=True)
