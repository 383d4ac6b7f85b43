"""The toolchain port: Python (pytest + ruff), Rust (cargo), Go, each isolated; a missing
tool is "skipped: <tool> not installed", never passed."""

from __future__ import annotations

from pathlib import Path

import pytest

from noa_core.config import ExecLimits
from noa_core.swarm.go import GoToolchain, find_go, parse_benchmarks
from noa_core.swarm.interface import CheckResult, SwarmContext, SwarmReport, overall_status
from noa_core.swarm.python import PythonToolchain
from noa_core.swarm.python_lint import find_ruff
from noa_core.swarm.rust import RustToolchain, find_cargo
from noa_core.validation.counts import TestCounts
from test_swarm_support import TINY_CRATE, TINY_GO, TINY_PY, write_tree


def ctx(tmp_path: Path, **kw: object) -> SwarmContext:
    return SwarmContext(work_parent=tmp_path / "work", limits=ExecLimits(wall_seconds=300), **kw)  # type: ignore[arg-type]


def test_check_result_round_trip_and_statuses() -> None:
    counts = TestCounts(passed=3, subtests_passed=2, summary_line="3 passed", tool="pytest", other=(("rerun", 1),))
    r = CheckResult(toolchain="python", check="tests", status="ok", counts=counts, command=("python", "-m", "pytest"),
                    data={"plan": {"basis": "durations"}})
    assert CheckResult.from_dict(r.as_dict()) == r
    with pytest.raises(ValueError):
        CheckResult(toolchain="python", check="tests", status="passed")  # type: ignore[arg-type]
    assert overall_status(["ok", "skipped"]) == "ok"
    assert overall_status(["skipped", "skipped"]) == "skipped"
    assert overall_status(["ok", "failed"]) == "failed"
    assert overall_status([]) == "skipped"
    rep = SwarmReport.of("python", [r])
    assert SwarmReport.from_dict(rep.as_dict()).results == (r,)


def test_python_tests_and_lint(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tiny", TINY_PY)
    report = PythonToolchain().run(tree, ctx(tmp_path))
    tests, lint = report.results
    assert tests.check == "tests" and tests.status == "ok", tests.one_line
    assert tests.counts is not None and tests.counts.passed == 3 and tests.counts.failed == 0
    assert tests.isolation in ("bwrap", "unshare")
    if find_ruff() is None:
        assert lint.status == "skipped" and lint.reason == "ruff not installed"
    else:
        assert lint.tool == "ruff" and lint.tool_version.startswith("ruff ")
        assert lint.status == "ok", lint.one_line
        assert lint.findings == 0 and lint.data["by_rule"] == {}
    assert report.status == "ok"


def test_python_lint_findings_counted_by_rule(tmp_path: Path) -> None:
    if find_ruff() is None:
        pytest.skip("ruff is not installed here")
    tree = write_tree(tmp_path / "dirty", {"mod.py": "import os\n\nx = undefined_name\n"})
    lint = PythonToolchain().lint(tree, ctx(tmp_path))
    assert lint.status == "failed"
    assert lint.data["by_rule"].get("F401") == 1 and lint.data["by_rule"].get("F821") == 1
    assert lint.findings >= 2
    assert {s["path"] for s in lint.data["sample"]} == {"mod.py"}


def test_python_without_ruff_is_skipped_not_passed(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tiny", TINY_PY)
    lint = PythonToolchain(ruff=None).lint(tree, ctx(tmp_path))
    assert lint.status == "skipped"
    assert lint.one_line == "python/lint: skipped: ruff not installed"


def test_rust_crate_check_clippy_and_tests(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "crate", TINY_CRATE)
    rust = RustToolchain()
    report = rust.run(tree, ctx(tmp_path))
    by_check = {r.check: r for r in report.results}
    if find_cargo() is None:
        assert report.status == "skipped"
        assert all(r.reason == "cargo not installed" for r in report.results)
        return
    assert by_check["check"].status == "ok", by_check["check"].one_line
    test = by_check["test"]
    assert test.status == "ok", test.one_line
    assert test.counts is not None
    assert (test.counts.passed, test.counts.failed, test.counts.skipped) == (2, 0, 1)  # ignored -> skipped
    assert test.command[:3] == ("cargo", "test", "--offline") or "--offline" in test.command
    if rust.tool_versions()["clippy"]:
        assert by_check["clippy"].status == "ok", by_check["clippy"].one_line
    else:
        assert by_check["clippy"].reason == "clippy not installed"
    assert report.status == "ok"


def test_rust_dependency_not_available_offline_is_reported(tmp_path: Path) -> None:
    if find_cargo() is None:
        pytest.skip("cargo is not installed here")
    files = dict(TINY_CRATE)
    files["Cargo.toml"] = files["Cargo.toml"] + '        noa-no-such-crate-zz = "1"\n'
    tree = write_tree(tmp_path / "crate", files)
    report = RustToolchain().run(tree, ctx(tmp_path))
    check = next(r for r in report.results if r.check == "check")
    assert check.status == "failed"
    assert "offline" in check.reason
    assert report.status == "failed"


def test_missing_toolchains_are_skipped(tmp_path: Path) -> None:
    crate = write_tree(tmp_path / "crate", TINY_CRATE)
    gomod = write_tree(tmp_path / "gomod", TINY_GO)
    rust = RustToolchain(cargo=None).run(crate, ctx(tmp_path))
    go = GoToolchain(go=None).run(gomod, ctx(tmp_path))
    assert rust.status == "skipped" and go.status == "skipped"
    assert [r.one_line for r in rust.results] == [f"rust/{c}: skipped: cargo not installed"
                                                  for c in ("check", "clippy", "test")]
    assert [r.one_line for r in go.results] == [f"go/{c}: skipped: go not installed" for c in ("vet", "test", "bench")]
    # a project without the language is skipped for that reason, not for the tool
    assert RustToolchain().run(gomod, ctx(tmp_path)).reason == "no Cargo.toml in the project"


def test_go_module_vet_tests_and_benchmarks(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "gomod", TINY_GO)
    report = GoToolchain().run(tree, ctx(tmp_path))
    by_check = {r.check: r for r in report.results}
    if find_go() is None:
        assert report.status == "skipped"
        assert by_check["test"].one_line == "go/test: skipped: go not installed"
        return
    assert by_check["vet"].status == "ok", by_check["vet"].one_line
    test = by_check["test"]
    assert test.status == "ok" and test.counts is not None, test.one_line
    assert (test.counts.passed, test.counts.subtests_passed, test.counts.failed) == (1, 1, 0)
    bench = by_check["bench"]
    assert bench.status == "ok", bench.one_line
    assert bench.data["benchmarks"]["BenchmarkAdd"]["ns_per_op"] > 0


def test_parse_benchmarks() -> None:
    out = ("goos: linux\nBenchmarkAdd-2   \t331531386\t         0.5531 ns/op\n"
           "BenchmarkAlloc-2 \t 1000\t 1200 ns/op\t  64 B/op\t   2 allocs/op\nPASS\n")
    got = parse_benchmarks(out)
    assert got["BenchmarkAdd"] == {"iterations": 331531386.0, "ns_per_op": 0.5531}
    assert got["BenchmarkAlloc"]["B_per_op"] == 64.0 and got["BenchmarkAlloc"]["allocs_per_op"] == 2.0

