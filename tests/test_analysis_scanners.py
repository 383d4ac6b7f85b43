"""Analyzers that run tools: secrets (detect-secrets), sast (bandit), complexity (radon)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

try:
    from analysis_helpers import FAKE_AWS_KEY, branching_function, python_project, write_tree
except ImportError:  # tests/ turned into a package
    from tests.analysis_helpers import FAKE_AWS_KEY, branching_function, python_project, write_tree

from noa_core.analysis.complexity import ComplexityAnalyzer
from noa_core.analysis.interface import AnalyzerResult
from noa_core.analysis.sast import SastAnalyzer
from noa_core.analysis.secrets_scan import SecretsAnalyzer


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return python_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def snapshot_before(project: Path) -> dict[str, float]:
    return {str(p): p.lstat().st_mtime for p in project.rglob("*")}


@pytest.fixture(scope="module")
def secrets(project: Path, snapshot_before: dict[str, float]) -> AnalyzerResult:
    return SecretsAnalyzer().analyze(project)


@pytest.fixture(scope="module")
def sast(project: Path, snapshot_before: dict[str, float]) -> AnalyzerResult:
    return SastAnalyzer().analyze(project)


# -- secrets -------------------------------------------------------------------------

def test_secret_found_with_type_path_and_line(secrets: AnalyzerResult) -> None:
    assert secrets.status == "ok", secrets.reason
    aws = [f for f in secrets.findings if f.rule == "AWS Access Key"]
    assert len(aws) == 1
    assert aws[0].path == "src/demo/settings.py" and aws[0].line == 2
    assert aws[0].severity == "high"
    assert secrets.data["by_type"]["AWS Access Key"] == 1


def test_secret_value_never_in_output(secrets: AnalyzerResult) -> None:
    text = json.dumps(secrets.as_dict())
    assert FAKE_AWS_KEY not in text
    assert FAKE_AWS_KEY[4:] not in text


def test_secrets_scan_every_file_but_never_follow_symlinks(secrets: AnalyzerResult) -> None:
    # vendored files are scanned too; the two symlinks are not
    assert secrets.data["symlinks_skipped"] == 2
    assert secrets.data["files_scanned"] == secrets.data["files_total"]
    assert not any((f.path or "").startswith("etc-link") for f in secrets.findings)


def test_allowlist_pragma_does_not_hide_a_secret(tmp_path: Path) -> None:
    write_tree(tmp_path, {"conf.py": f'KEY = "{FAKE_AWS_KEY}"  # pragma: allowlist secret\n'})
    r = SecretsAnalyzer().analyze(tmp_path)
    assert [(f.rule, f.severity) for f in r.findings] == [("AWS Access Key", "medium")]
    assert "allowlist" in r.findings[0].reason


def test_secrets_time_limit_is_unknown_not_clean(tmp_path: Path) -> None:
    write_tree(tmp_path, {f"f{i}.txt": "nothing here\n" * 50 for i in range(5)})
    r = SecretsAnalyzer(timeout=0.01).analyze(tmp_path)
    assert r.status == "unknown"
    assert "not scanned" in r.reason


# -- sast ----------------------------------------------------------------------------

def test_shell_true_flagged_and_asserts_in_tests_suppressed(sast: AnalyzerResult) -> None:
    assert sast.status == "ok", sast.reason
    shell = [f for f in sast.findings if f.rule == "B602"]
    assert [(f.path, f.line, f.severity) for f in shell] == [("src/demo/core.py", 5, "high")]
    assert not any(f.rule == "B101" for f in sast.findings)
    assert sast.data["suppressed"] == 2
    assert sast.data["high"] == 1


def test_sast_leaves_vendored_code_out(sast: AnalyzerResult) -> None:
    assert sast.data["vendored_skipped"] == 1
    assert not any((f.path or "").startswith("vendor/") for f in sast.findings)


def test_nosec_cannot_silence_and_assert_outside_tests_counts(tmp_path: Path) -> None:
    write_tree(tmp_path, {"app.py": "import subprocess\n\ndef go(cmd):\n"
                                    "    assert cmd\n"
                                    "    subprocess.Popen(cmd, shell=True)  # nosec\n"})
    r = SastAnalyzer().analyze(tmp_path)
    assert {f.rule for f in r.findings} >= {"B602", "B101"}
    assert r.data["suppressed"] == 0


def test_sast_skipped_without_python(tmp_path: Path) -> None:
    r = SastAnalyzer().analyze(write_tree(tmp_path, {"main.go": "package main\n"}))
    assert r.status == "skipped" and r.reason == "no Python files"


def test_sast_unparseable_file_is_unknown(tmp_path: Path) -> None:
    write_tree(tmp_path, {"ok.py": "x = 1\n", "py2.py": "print 'hello'\n"})
    r = SastAnalyzer().analyze(tmp_path)
    assert r.status == "unknown"
    assert r.data["files_failed"] == ["py2.py"]


def test_scanners_do_not_write_into_the_tree(project: Path, secrets: AnalyzerResult,
                                             sast: AnalyzerResult,
                                             snapshot_before: dict[str, float]) -> None:
    ComplexityAnalyzer().analyze(project)
    assert {str(p): p.lstat().st_mtime for p in project.rglob("*")} == snapshot_before


# -- complexity ----------------------------------------------------------------------

def test_complexity_flags_the_branching_function(project: Path) -> None:
    r = ComplexityAnalyzer().analyze(project)
    assert r.status == "ok"
    assert r.data["max_cc"]["name"] == "dispatch"
    assert r.data["max_cc"]["cc"] == 46 and r.data["max_cc"]["path"] == "src/demo/core.py"
    assert r.data["rank_counts"]["F"] == 1
    assert [(f.rule, f.severity) for f in r.findings] == [("cc-rank-F", "medium")]
    # vendored helpers.py and the generated _pb2 module are not measured
    assert r.data["files"] == 5


def test_complexity_counts_methods_closures_and_failures(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "a.py": "class C:\n    def m(self):\n        def inner():\n            return 1\n"
                "        return inner\n    class D:\n        def n(self):\n            pass\n\n"
                + branching_function("mid", 32),
        "broken.py": "def f(:\n",
    })
    r = ComplexityAnalyzer().analyze(tmp_path)
    assert r.data["functions"] == 4  # m, inner, D.n, mid
    assert r.data["files_failed_to_parse"] == 1
    assert [(f.rule, f.severity) for f in r.findings] == [("cc-rank-E", "low")]
    assert r.data["average_cc"] == pytest.approx((1 + 1 + 1 + 33) / 4)
