"""The analyzer registry: defaults, plugins, crash containment, and the full set on a tree."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

try:
    from analysis_helpers import FAKE_AWS_KEY, python_project
except ImportError:  # tests/ turned into a package
    from tests.analysis_helpers import FAKE_AWS_KEY, python_project

from noa_core.analysis.confidence import score_confidence
from noa_core.analysis.interface import Analyzer, AnalyzerResult
from noa_core.analysis.registry import default_analyzers, load_plugin_analyzers, run_analyzer
from noa_core.analysis.vulnerabilities import VulnerabilitiesAnalyzer

NAMES = ["languages", "build_system", "dependencies", "npm", "tests", "licence", "secrets", "sast",
         "complexity", "vulnerabilities"]


def test_default_analyzers_in_order() -> None:
    analyzers = default_analyzers()
    assert [a.name for a in analyzers] == NAMES
    for a in analyzers:
        assert isinstance(a, Analyzer)
        assert a.version


class Exploding:
    name = "exploding"
    version = "1"

    def analyze(self, tree: Path) -> AnalyzerResult:
        raise ZeroDivisionError("boom\nsecond line")


def test_run_analyzer_turns_a_crash_into_unknown(tmp_path: Path) -> None:
    r = run_analyzer(Exploding(), tmp_path)
    assert r.status == "unknown"
    assert r.reason == "analyzer crashed: ZeroDivisionError: boom second line"
    assert r.seconds >= 0


def test_run_analyzer_times_the_run(tmp_path: Path) -> None:
    r = run_analyzer(default_analyzers()[0], tmp_path)
    assert r.name == "languages" and r.seconds > 0


def test_plugins_from_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "noa_fake_plugin.py").write_text(
        "from noa_core.analysis.interface import AnalyzerResult\n"
        "class FakeAnalyzer:\n    name = 'fake'\n    version = '1'\n"
        "    def analyze(self, tree):\n        return AnalyzerResult('fake', 'ok')\n"
        "class Impostor(FakeAnalyzer):\n    name = 'secrets'\n"
        "NOT_AN_ANALYZER = 42\n")
    dist = tmp_path / "noa_fake_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: noa-fake-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[noa.analyzers]\nfake = noa_fake_plugin:FakeAnalyzer\n"
        "impostor = noa_fake_plugin:Impostor\nmissing = noa_no_such_module:X\n"
        "number = noa_fake_plugin:NOT_AN_ANALYZER\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.WARNING):
        plugins = load_plugin_analyzers()
    assert [p.name for p in plugins] == ["fake"]
    assert run_analyzer(plugins[0], tmp_path).status == "ok"
    text = caplog.text
    assert "impostor" in text and "missing" in text and "number" in text
    sys.modules.pop("noa_fake_plugin", None)


def test_full_analyzer_set_on_the_fixture(tmp_path: Path) -> None:
    tree = python_project(tmp_path / "drop")
    # No vulnerability service: hermetic and fast (the network test runs pip-audit for real).
    analyzers = [VulnerabilitiesAnalyzer(services=()) if a.name == "vulnerabilities" else a
                 for a in default_analyzers()]
    results = {a.name: run_analyzer(a, tree) for a in analyzers}
    assert list(results) == NAMES
    assert all(r.status in ("ok", "unknown", "skipped") for r in results.values())
    assert results["languages"].data["primary"] == "Python"
    assert results["licence"].data["spdx"] == "MIT"
    assert results["tests"].data["pythonpath"] == "src"
    assert any(f.rule == "AWS Access Key" for f in results["secrets"].findings)
    assert any(f.rule == "B602" for f in results["sast"].findings)
    # Nothing could be checked (requests>=2.31 is not even pinned): never "ok".
    vulns = results["vulnerabilities"]
    assert vulns.status == "unknown"
    assert {d["name"] for d in vulns.data["not_checked"]} == {"requests", "click", "tomli", "pytest"}
    report = json.dumps({n: r.as_dict() for n, r in results.items()})
    assert FAKE_AWS_KEY not in report
    confidence = score_confidence(results)
    by = {c.signal: c for c in confidence.contributions}
    assert by["secrets"].value == 0.0
    assert sum(c.contribution for c in confidence.contributions) == pytest.approx(confidence.raw)
