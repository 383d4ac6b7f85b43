"""Confidence scoring and its calibration against past validation outcomes."""

from __future__ import annotations

import pytest

from noa_core.analysis.confidence import WEIGHTS, Calibration, score_confidence
from noa_core.analysis.interface import AnalyzerResult, Finding


def _results(**overrides: AnalyzerResult) -> dict[str, AnalyzerResult]:
    """A healthy drop: every analyzer ok and clean."""
    base = {
        "languages": AnalyzerResult("languages", "ok", data={"primary": "Python"}),
        "build_system": AnalyzerResult("build_system", "ok", data={
            "primary": "setuptools", "build_command": ["python", "-m", "build"]}),
        "dependencies": AnalyzerResult("dependencies", "ok", data={
            "counts": {"python": 3}, "manifests": ["pyproject.toml"]}),
        "tests": AnalyzerResult("tests", "ok", data={
            "suites": [{"framework": "pytest", "files": 12}], "command": ["python", "-m", "pytest"]}),
        "licence": AnalyzerResult("licence", "ok", data={
            "spdx": "MIT", "category": "permissive", "agree": True, "exact": True}),
        "secrets": AnalyzerResult("secrets", "ok", data={"files_scanned": 40}),
        "sast": AnalyzerResult("sast", "ok", data={"files": 10}),
        "complexity": AnalyzerResult("complexity", "ok", data={
            "functions": 100, "average_cc": 2.5, "rank_e_or_f": 0}),
        "vulnerabilities": AnalyzerResult("vulnerabilities", "ok", data={
            "total": 3, "checked": [{}, {}, {}], "not_checked": []}),
    }
    base.update(overrides)
    return base


def _secret() -> Finding:
    return Finding("secrets", "AWS Access Key", "high", "possible AWS Access Key", "a.py", 1)


def test_contributions_sum_to_raw_score() -> None:
    for results in (_results(), _results(secrets=AnalyzerResult("secrets", "ok", findings=(_secret(),))),
                    {}):
        c = score_confidence(results)
        assert sum(x.contribution for x in c.contributions) == pytest.approx(c.raw, abs=1e-12)
        assert 0.0 <= c.raw <= 1.0
        assert all(x.why for x in c.contributions)
        assert {x.signal for x in c.contributions} == set(WEIGHTS)


def test_healthy_drop_scores_high_and_calibrated_equals_raw_without_history() -> None:
    c = score_confidence(_results())
    assert c.raw == pytest.approx(1.0)
    assert c.calibrated == c.raw
    assert score_confidence(_results(), Calibration.empty()).calibrated == pytest.approx(c.raw)


def test_each_problem_lowers_the_score() -> None:
    healthy = score_confidence(_results()).raw
    worse = [
        _results(secrets=AnalyzerResult("secrets", "ok", findings=(_secret(),))),
        _results(tests=AnalyzerResult("tests", "ok", data={"suites": [], "command": None})),
        _results(licence=AnalyzerResult("licence", "unknown", reason="no licence file or metadata")),
        _results(sast=AnalyzerResult("sast", "ok", findings=(
            Finding("sast", "B602", "high", "shell=True", "a.py", 3),))),
    ]
    for results in worse:
        assert score_confidence(results).raw < healthy


def test_unknown_and_skipped_are_never_scored_as_clean() -> None:
    clean = score_confidence(_results())
    unknown_vulns = score_confidence(_results(vulnerabilities=AnalyzerResult(
        "vulnerabilities", "unknown", reason="3 of 3 not checked",
        data={"total": 3, "checked": [], "not_checked": [{}, {}, {}]})))
    found_vulns = score_confidence(_results(vulnerabilities=AnalyzerResult(
        "vulnerabilities", "ok", findings=(Finding("vulnerabilities", "PYSEC-1", "high", "x"),))))
    assert found_vulns.raw < unknown_vulns.raw < clean.raw
    by = {x.signal: x for x in unknown_vulns.contributions}
    assert by["vulnerabilities"].value < 1.0
    assert by["coverage"].value < 1.0 and "unknown: vulnerabilities" in by["coverage"].why

    crashed = score_confidence(_results(secrets=AnalyzerResult(
        "secrets", "unknown", reason="analyzer crashed: OSError")))
    assert {x.signal: x.value for x in crashed.contributions}["secrets"] == 0.5
    assert crashed.raw < clean.raw


def test_calibration_moves_score_toward_observed_pass_rate() -> None:
    gpl = _results(licence=AnalyzerResult("licence", "ok", data={
        "spdx": "GPL-3.0-only", "category": "copyleft", "agree": True, "exact": True}))
    raw = score_confidence(gpl).raw
    assert raw == pytest.approx(0.96)
    # History: drops scored in the same bin (0.8-1.0) mostly failed validation.
    calibration = Calibration.from_outcomes([(0.85, False)] * 8 + [(0.9, True)] * 2)
    c = score_confidence(gpl, calibration)
    assert c.calibrated < raw
    assert c.calibrated == pytest.approx((4 * raw + 2) / (4 + 10))
    assert c.calibration_bin is not None and c.calibration_bin.n == 10
    # ... and mostly passing history pulls a low score up.
    up = Calibration.from_outcomes([(0.3, True)] * 20)
    assert up.calibrate(0.3) == pytest.approx((4 * 0.3 + 20) / 24)
    assert up.calibrate(0.3) > 0.3
    # Other bins are untouched.
    assert up.calibrate(0.9) == pytest.approx(0.9)
    # A score computed as 0.7999999999999999 belongs to the 0.8 bin.
    assert up.bin_index(0.1 * 8) == up.bin_index(0.8) == 4


def test_calibration_table() -> None:
    cal = Calibration.from_outcomes([(0.1, True), (0.15, False), (1.0, True)])
    table = cal.table()
    assert [row["bin"] for row in table] == ["0.0-0.2", "0.2-0.4", "0.4-0.6", "0.6-0.8", "0.8-1.0"]
    assert (table[0]["n"], table[0]["passed"], table[0]["rate"]) == (2, 1, 0.5)
    assert table[4]["n"] == 1  # a raw score of exactly 1.0 falls in the last bin
    assert table[2]["rate"] is None


def test_as_dict_is_plain_data() -> None:
    d = score_confidence(_results(), Calibration.from_outcomes([(0.95, True)])).as_dict()
    assert set(d) == {"raw", "calibrated", "contributions", "calibration_bin"}
    assert d["contributions"][0]["signal"] == "tests"
