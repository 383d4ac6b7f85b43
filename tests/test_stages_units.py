"""Stage gates, baselines, semgrep with the shipped rules, and the build (wheel, sdist, go
binary, BLAKE3, CycloneDX SBOM) - noa_core only, no Prefect."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from test_swarm_support import write_tree

from noa_core.build import build_project
from noa_core.config import ExecLimits
from noa_core.errors import BadInput, ManifestError
from noa_core.intake.errors import NetworkError
from noa_core.manifest import GatesConfig, NoaManifest, load_manifest, parse_manifest
from noa_core.stages import gates as G
from noa_core.stages.errors import is_critical, is_recoverable
from noa_core.stages.performance import (
    Baselines,
    compare,
    go_benchmarks,
    has_pytest_benchmarks,
)
from noa_core.stages.result import StageResult, skipped_stage, verdict_of
from noa_core.stages.semgrep import rule_files, run_semgrep

HELLO = Path(__file__).resolve().parents[1] / "examples" / "hello-service"
#: Python build environments (wheels of the build requirements) kept between test runs
BUILDENV_CACHE = Path.home() / ".cache" / "noa-test-buildenv"


def test_gates_come_from_noa_yaml_with_defaults() -> None:
    default = parse_manifest("name: x\n").gates
    assert default == GatesConfig() and default.max_severity == "medium" and default.min_pass_rate == 1.0
    custom = parse_manifest("name: x\ngates:\n  max_severity: high\n  max_regression_pct: 25.0\n").gates
    assert custom.max_severity == "high" and custom.max_regression_pct == 25.0 and custom.fail_on_secrets
    with pytest.raises(ManifestError, match="gates.max_severity"):
        parse_manifest("name: x\ngates:\n  max_severity: dreadful\n")
    with pytest.raises(ManifestError, match="gates.min_confidence"):
        parse_manifest("name: x\ngates:\n  min_confidence: 2.0\n")


def test_each_gate_says_why() -> None:
    g = GatesConfig()
    assert G.analysis_gate(0.8, g).passed and not G.analysis_gate(0.1, g).passed
    assert "below" in G.analysis_gate(0.1, g).reason

    def summary(*results: dict) -> dict:
        return {"swarms": {"python": {"results": list(results)}}}

    ok = summary({"check": "tests", "status": "ok", "counts": {"passed": 9}},
                 {"check": "lint", "status": "failed", "findings": 3})
    assert G.testing_gate(ok, g).passed is True  # lint findings do not gate
    bad = summary({"check": "tests", "status": "failed", "counts": {"passed": 9, "failed": 1}})
    gate = G.testing_gate(bad, g)
    assert gate.passed is False and "1 failed" in gate.reason and gate.value == 0.9
    assert G.testing_gate(bad, GatesConfig(min_pass_rate=0.8)).passed is True
    none = summary({"check": "tests", "status": "skipped", "reason": "no tests"})
    assert G.testing_gate(none, g).passed is None
    assert G.testing_gate(none, GatesConfig(require_tests=True)).passed is False
    crashed = summary({"check": "swarm", "status": "failed", "reason": "no worker picked it up"})
    assert G.testing_gate(crashed, g).passed is False

    rows = compare({"go:BenchmarkA": 120.0, "go:BenchmarkNew": 5.0}, {"go:BenchmarkA": {"ns_per_op": 100.0}})
    assert [r["regression_pct"] for r in rows] == [20.0, None]
    assert G.performance_gate(rows, g).passed is False and "BenchmarkA +20.0%" in G.performance_gate(rows, g).reason
    assert G.performance_gate(rows, GatesConfig(max_regression_pct=25)).passed is True

    findings = [{"analyzer": "sast", "severity": "low"}, {"analyzer": "semgrep", "severity": "high"}]
    gate = G.security_gate(findings, g)
    assert gate.passed is False and gate.value == "high" and "1 findings above medium (semgrep 1)" in gate.reason
    assert G.security_gate(findings, GatesConfig(max_severity="high")).passed is True
    secret = [{"analyzer": "secrets", "severity": "medium"}]
    assert "committed secret" in G.security_gate(secret, g).reason
    assert G.security_gate(secret, GatesConfig(fail_on_secrets=False)).passed is True

    assert G.build_gate("failed", "boom", g).passed is False
    assert G.build_gate("failed", "boom", GatesConfig(build_required=False)).passed is True
    assert G.build_gate("skipped", "nothing to build", g).passed is None


def test_stage_results_and_verdict() -> None:
    s = skipped_stage("staging", "no deploy target")
    assert s.status == "skipped" and s.details == "skipped: no deploy target"
    with pytest.raises(ValueError):
        StageResult("staging", "skipped", "no deploy target", s.gate)  # a skip always says so
    with pytest.raises(ValueError):
        skipped_stage("linting", "unknown stage")
    assert verdict_of([s.as_dict()]) == "passed"
    assert verdict_of([s.as_dict(), {"status": "failed"}]) == "failed"


def test_error_policy_retries_only_transient_errors() -> None:
    assert is_recoverable(NetworkError("pypi unreachable")) and is_recoverable(TimeoutError())
    assert is_recoverable(ConnectionRefusedError())
    assert not is_recoverable(BadInput("no")) and not is_recoverable(ValueError("bug"))
    assert is_critical("production") and not is_critical("staging")


def test_baseline_recorded_once_then_compared(tmp_path: Path) -> None:
    base = Baselines(tmp_path / "baselines")
    assert base.load("p") == {}
    assert base.record_missing("p", {"go:BenchmarkA": 100.0}, "h1") == ["go:BenchmarkA"]
    assert base.record_missing("p", {"go:BenchmarkA": 500.0, "go:BenchmarkB": 7.0}) == ["go:BenchmarkB"]
    known = base.load("p")
    assert known["go:BenchmarkA"]["ns_per_op"] == 100.0  # the first measurement stays the baseline
    assert json.loads(base.path("p").read_text())["project"] == "p"
    summary = {"swarms": {"go": {"results": [{"check": "bench", "status": "ok", "data": {
        "benchmarks": {"BenchmarkA": {"ns_per_op": 1.5, "iterations": 10.0}}}}]}}}
    run = go_benchmarks(summary)
    assert run is not None and run.benchmarks == {"go:BenchmarkA": 1.5}
    assert go_benchmarks({"swarms": {"python": {"results": []}}}) is None


def test_pytest_benchmark_tests_are_detected(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "b", {"tests/test_speed.py": "def test_fast(benchmark):\n    benchmark(sum, [1])\n"})
    assert has_pytest_benchmarks(tree) and not has_pytest_benchmarks(HELLO)


def test_semgrep_with_shipped_rules_finds_dangerous_code_offline(tmp_path: Path) -> None:
    assert {p.name for p in rule_files()} >= {"python.yaml", "generic.yaml"}
    tree = write_tree(tmp_path / "bad", {"app.py": """
        import subprocess
        import yaml


        def run(cmd, text):
            subprocess.run(cmd, shell=True)
            return yaml.load(text), eval(cmd)
    """, "safe.py": "import yaml\n\n\ndef f(t):\n    return yaml.load(t, Loader=yaml.SafeLoader)\n"})
    run = run_semgrep(tree, ExecLimits())
    assert run.status == "ok", run.reason
    rules = {(f.rule, f.path, f.severity) for f in run.findings}
    assert ("noa.python.subprocess-shell-true", "app.py", "high") in rules
    assert ("noa.python.eval-exec", "app.py", "high") in rules
    assert ("noa.python.yaml-unsafe-load", "app.py", "high") in rules
    assert not [f for f in run.findings if f.path == "safe.py"]
    assert run.rules >= 10 and run.files_scanned == 2
    missing = run_semgrep(tree, ExecLimits(), semgrep="")
    assert (missing.status, missing.reason) == ("skipped", "semgrep not installed")


def test_build_wheel_and_sdist_hashed_with_blake3_and_a_valid_cyclonedx_sbom(tmp_path: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    before = sorted(p.relative_to(HELLO).as_posix() for p in HELLO.rglob("*"))
    result = build_project(HELLO, load_manifest(HELLO / "noa.yaml"), tmp_path / "out", ExecLimits(),
                           cache_dir=BUILDENV_CACHE)
    assert result.status == "ok", result.reason
    assert sorted(p.relative_to(HELLO).as_posix() for p in HELLO.rglob("*")) == before  # built in a copy
    kinds = {a.kind: a for a in result.artifacts}
    assert kinds["wheel"].name == "hello_service-1.0.0-py3-none-any.whl"
    assert kinds["sdist"].name == "hello_service-1.0.0.tar.gz"
    for a in result.artifacts:
        path = Path(a.path)
        assert path.is_file() and path.parent.name == a.blake3[:16]  # stored by content
        if shutil.which("b3sum"):
            assert subprocess.run(["b3sum", "--no-names", str(path)], capture_output=True, text=True,
                                  check=True).stdout.strip() == a.blake3
    assert result.steps[0].isolation in ("bwrap", "unshare")
    text = Path(result.sbom or "").read_text()
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert errors is None, errors
    sbom = json.loads(text)
    assert sbom["metadata"]["component"]["name"] == "hello-service"
    wheel = next(c for c in sbom["components"] if c["name"] == kinds["wheel"].name)
    assert {h["alg"]: h["content"] for h in wheel["hashes"]}["BLAKE3"] == kinds["wheel"].blake3
    assert any(c.get("purl") == "pkg:pypi/pytest" for c in sbom["components"])


def test_build_of_a_go_library_compiles_it_and_has_no_executable(tmp_path: Path) -> None:
    from noa_core.toolchains import find_go

    if find_go() is None:
        pytest.skip("go is not installed here")
    tree = write_tree(tmp_path / "golib", {"go.mod": "module example.com/lib\n\ngo 1.19\n",
                                           "lib.go": "package lib\n\nfunc One() int { return 1 }\n"})
    result = build_project(tree, NoaManifest(name="golib"), tmp_path / "out", ExecLimits())
    assert result.status == "ok", result.reason
    (step,) = result.steps
    assert step.reason == "compiled; no main package, so no executable" and not result.artifacts
    broken = write_tree(tmp_path / "golib2", {"go.mod": "module example.com/lib\n\ngo 1.19\n",
                                              "lib.go": "package lib\n\nfunc One() int { return \"1\" }\n"})
    failed = build_project(broken, NoaManifest(name="golib2"), tmp_path / "out2", ExecLimits())
    assert failed.status == "failed" and "go build exited" in failed.reason


@pytest.mark.slow
def test_build_go_binary_and_a_failing_build_says_why(tmp_path: Path) -> None:
    from noa_core.swarm.go import find_go

    tree = write_tree(tmp_path / "gomain", {"go.mod": "module example.com/hello\n\ngo 1.19\n",
                                            "main.go": "package main\n\nfunc main() { println(\"hi\") }\n"})
    result = build_project(tree, NoaManifest(name="gomain"), tmp_path / "out", ExecLimits())
    if not find_go():
        assert result.status == "skipped" and "go not installed" in result.reason
    else:
        assert result.status == "ok", result.reason
        (binary,) = result.artifacts
        assert binary.kind == "go-binary" and binary.name == "hello" and binary.size > 0
    broken = write_tree(tmp_path / "broken", {"pyproject.toml": "[build-system]\nrequires = ['setuptools']\n"
                                                                "build-backend = 'no_such_backend'\n"
                                                                "[project]\nname = 'broken'\nversion = 'x y'\n"})
    failed = build_project(broken, NoaManifest(name="broken"), tmp_path / "out2", ExecLimits())
    assert failed.status == "failed" and failed.reason.startswith("pep517:") and not failed.artifacts
    nothing = build_project(write_tree(tmp_path / "empty", {"README": "hi\n"}), NoaManifest(name="empty"),
                            tmp_path / "out3", ExecLimits())
    assert nothing.status == "skipped" and "nothing to build" in nothing.reason
