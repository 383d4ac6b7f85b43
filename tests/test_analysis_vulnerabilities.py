"""The vulnerabilities analyzer: only 'ok' when every dependency was really checked.

Most tests replace the pip-audit call (``_audit``) with canned per-dependency answers in
pip-audit's JSON shape; one ``network`` test runs pip-audit for real.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

try:
    from analysis_helpers import write_tree
except ImportError:  # tests/ turned into a package
    from tests.analysis_helpers import write_tree

from noa_core.analysis.vulnerabilities import VulnerabilitiesAnalyzer, read_locks

Answer = dict[str, Any]


class CannedAudit(VulnerabilitiesAnalyzer):
    """pip-audit replaced by fixed answers: {service: {name: answer-or-None}}."""

    def __init__(self, answers: dict[str, dict[str, Answer | None]], **kw: Any) -> None:
        super().__init__(services=tuple(answers), **kw)
        self.answers = answers
        self.asked: list[tuple[str, list[tuple[str, str]]]] = []

    def _audit(self, pins: list[tuple[str, str]], service: str, deadline: float
               ) -> tuple[str, dict[tuple[str, str], dict[str, Any]]]:
        self.asked.append((service, list(pins)))
        table = self.answers[service]
        if table is None:
            return "service unreachable (host name does not resolve)", {}
        out = {}
        for name, version in pins:
            answer = table.get(name, {"vulns": []})
            if answer is not None:
                out[(name, version)] = {"name": name, **({"version": version} if "vulns" in answer
                                                          else {}), **answer}
        return "answered", out


SKIP = {"skip_reason": "Dependency not found on PyPI and could not be audited"}


def _pinned_tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path, {"requirements.txt": "requests==2.32.3\nidna==3.7\n"})


def test_all_checked_and_clean_is_ok(tmp_path: Path) -> None:
    r = CannedAudit({"pypi": {}}).analyze(_pinned_tree(tmp_path))
    assert r.status == "ok"
    assert r.data["not_checked"] == []
    assert {(c["name"], c["version"]) for c in r.data["checked"]} == {("requests", "2.32.3"),
                                                                      ("idna", "3.7")}
    assert r.findings == ()


def test_skip_reason_makes_it_unknown_even_with_exit_zero(tmp_path: Path) -> None:
    # pip-audit prints "No known vulnerabilities found" and exits 0 in this case.
    r = CannedAudit({"pypi": {"idna": SKIP}}).analyze(_pinned_tree(tmp_path))
    assert r.status == "unknown"
    assert [d["name"] for d in r.data["not_checked"]] == ["idna"]
    assert "not found on PyPI" in r.data["not_checked"][0]["why"]
    assert "1 of 2 dependencies not checked" in r.reason


def test_second_service_checks_what_the_first_skipped(tmp_path: Path) -> None:
    audit = CannedAudit({"pypi": {"idna": SKIP}, "osv": {}})
    r = audit.analyze(_pinned_tree(tmp_path))
    assert r.status == "ok"
    assert audit.asked[1] == ("osv", [("idna", "3.7")])
    assert {c["name"]: c["service"] for c in r.data["checked"]} == {"requests": "pypi", "idna": "osv"}


def test_unreachable_services_are_unknown(tmp_path: Path) -> None:
    r = CannedAudit({"pypi": None, "osv": None}).analyze(_pinned_tree(tmp_path))  # type: ignore[dict-item]
    assert r.status == "unknown"
    assert len(r.data["not_checked"]) == 2
    assert "unreachable" in r.data["not_checked"][0]["why"]


def test_unpinned_dependencies_cannot_be_checked(tmp_path: Path) -> None:
    write_tree(tmp_path, {"pyproject.toml": '[project]\nname="x"\n'
                                            'dependencies=["flask>=3", "idna==3.7", '
                                            '"pkg @ https://example.com/pkg.whl"]\n'})
    r = CannedAudit({"pypi": {}}).analyze(tmp_path)
    assert r.status == "unknown"
    why = {d["name"]: d["why"] for d in r.data["not_checked"]}
    assert why == {"flask": "not pinned to one version", "pkg": "direct URL / path dependency"}
    assert [c["name"] for c in r.data["checked"]] == ["idna"]


def test_lock_file_pins_cover_unpinned_declarations(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "pyproject.toml": '[project]\nname="x"\ndependencies=["flask>=3"]\n',
        "uv.lock": 'version = 1\n[[package]]\nname = "x"\nversion = "0.1"\nsource = { editable = "." }\n'
                   '[[package]]\nname = "flask"\nversion = "3.0.3"\n'
                   '[[package]]\nname = "werkzeug"\nversion = "3.0.4"\n',
    })
    assert [p["name"] for p in read_locks(tmp_path)[0]] == ["flask", "werkzeug"]
    r = CannedAudit({"pypi": {}}).analyze(tmp_path)
    assert r.status == "ok", r.reason
    assert {c["name"] for c in r.data["checked"]} == {"flask", "werkzeug"}


def test_vulnerability_found_is_a_high_finding(tmp_path: Path) -> None:
    vuln = {"vulns": [{"id": "PYSEC-0000-1", "fix_versions": ["2.32.4"], "aliases": ["CVE-0000-1"]}]}
    r = CannedAudit({"pypi": {"requests": vuln}}).analyze(_pinned_tree(tmp_path))
    assert r.status == "ok"
    assert [(f.rule, f.severity) for f in r.findings] == [("PYSEC-0000-1", "high")]
    assert "2.32.4" in r.findings[0].message and "CVE-0000-1" in r.findings[0].message
    assert r.data["vulnerable"][0]["name"] == "requests"


def test_no_python_dependencies_is_skipped(tmp_path: Path) -> None:
    r = CannedAudit({"pypi": {}}).analyze(write_tree(tmp_path, {"go.mod": "module x\n"}))
    assert r.status == "skipped"
    assert r.reason == "no Python dependencies declared"


def test_hostile_requirements_options_never_reach_pip_audit(tmp_path: Path) -> None:
    write_tree(tmp_path, {"requirements.txt": "--index-url https://evil.example/simple\n"
                                              "-r /etc/passwd\nidna==3.7\n"})
    audit = CannedAudit({"pypi": {}})
    r = audit.analyze(tmp_path)
    assert audit.asked == [("pypi", [("idna", "3.7")])]
    assert r.status == "ok"


def test_real_pip_audit_times_out_as_unknown(tmp_path: Path) -> None:
    r = VulnerabilitiesAnalyzer(timeout=0.05).analyze(_pinned_tree(tmp_path))
    assert r.status == "unknown"
    assert len(r.data["not_checked"]) == 2


@pytest.mark.network
def test_real_pip_audit_never_claims_clean_for_what_it_skipped(tmp_path: Path) -> None:
    started = time.monotonic()
    r = VulnerabilitiesAnalyzer(timeout=60).analyze(
        write_tree(tmp_path, {"requirements.txt": "idna==3.7\n"}))
    assert time.monotonic() - started < 65
    if r.status == "ok":
        assert r.data["not_checked"] == [] and len(r.data["checked"]) == 1
    else:
        assert r.status == "unknown"
        assert [d["name"] for d in r.data["not_checked"]] == ["idna"]
        assert r.data["not_checked"][0]["why"]
