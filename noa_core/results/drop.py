"""``code_drop``'s result: :class:`DropReport` (what ``noa drop --json`` prints and
``NOA_HOME/reports/<drop>.json`` holds)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from noa_core.results.base import FlowResult

__all__ = ["AnalyzerStatus", "ConfidenceReport", "Contribution", "DropReport", "TestsSummary"]


class TestsSummary(BaseModel):
    """The dropped project's own test suite, run isolated in its sandbox."""

    __test__ = False  # not a pytest class

    command: list[str] | None = Field(None, description="the command that ran the suite (argv)")
    status: Literal["passed", "failed", "error", "no tests", "timeout", "skipped", "unknown"] = Field(
        "skipped", description="the suite's verdict")
    reason: str = Field("", description="why, when the status is not plain passed/failed")
    passed: int = Field(0, description="tests passed (the test tool's own count)")
    failed: int = Field(0, description="tests failed")
    errors: int = Field(0, description="tests in error")
    skipped: int = Field(0, description="tests skipped")
    subtests_passed: int = Field(0, description="subtests passed (pytest 9 subtests), apart from tests")
    subtests_failed: int = Field(0, description="subtests failed")
    summary_line: str = Field("", description="the test tool's own summary line")
    seconds: float = Field(0.0, description="wall time of the suite")
    isolation: str | None = Field(None, description="how it was isolated (bubblewrap, unshare)")
    log: str | None = Field(None, description="path of the full test log")
    environment: dict[str, Any] | None = Field(
        None, description="the project's own environment: hash, packages, sources, seconds (Python suites)")


class AnalyzerStatus(BaseModel):
    """How one analyzer ended."""

    status: Literal["ok", "unknown", "skipped"] = Field(description="ok, unknown (it ran and could not tell) "
                                                                     "or skipped")
    reason: str = Field("", description="why unknown or skipped")
    seconds: float = Field(0.0, description="time the analyzer took")
    cached: bool = Field(False, description="reused from an earlier drop of the same content")


class Contribution(BaseModel):
    """One signal's share of the confidence score."""

    signal: str = Field(description="signal name")
    value: float = Field(description="the signal's value, 0..1")
    weight: float = Field(description="its weight")
    contribution: float = Field(description="value x weight")
    why: str = Field(description="what the value is based on")


class ConfidenceReport(BaseModel):
    """The confidence score, how it was made and its calibration."""

    raw: float = Field(description="weighted sum of the signals, 0..1")
    calibrated: float = Field(description="raw mapped through past validation outcomes, 0..1")
    contributions: list[Contribution] = Field(description="one entry per signal")
    calibration: list[dict[str, Any]] = Field(default_factory=list,
                                              description="calibration table: bin, drops, passed, rate")


class DropReport(FlowResult):
    """A code drop: what arrived, what the analyzers found, where it landed and whether its tests passed."""

    drop_id: str = Field(description="id of this drop (also the report's file name)")
    source: str = Field(description="the SOURCE as given")
    source_kind: str = Field(description="dir, git, archive or pypi")
    project: str = Field(description="project name (its directory under projects/ in the workspace)")
    is_update: bool = Field(False, description="true when the project was known before")
    languages: dict[str, int] = Field(default_factory=dict, description="bytes per language")
    primary_language: str | None = Field(None, description="the language with most bytes")
    build_system: str | None = Field(None, description="detected build system")
    dependencies: dict[str, list[dict[str, Any]]] = Field(default_factory=dict,
                                                          description="declared dependencies per ecosystem")
    tests: TestsSummary = Field(default_factory=TestsSummary, description="the project's own test suite")
    licence: str | None = Field(None, description="SPDX id of the licence, when known")
    findings: list[dict[str, Any]] = Field(default_factory=list,
                                           description="analyzer findings: analyzer, rule, severity, path, "
                                                       "line, message")
    confidence: float = Field(description="calibrated confidence, 0..1 (confidence_detail.calibrated)")
    confidence_detail: ConfidenceReport = Field(description="how the confidence was made")
    sandbox: Literal["A", "B", "C"] = Field(description="the sandbox the drop landed in")
    sandbox_reason: str = Field(description="why that sandbox")
    analyzers: dict[str, AnalyzerStatus] = Field(description="outcome of each analyzer (and llm)")
    ai: dict[str, Any] = Field(default_factory=dict, description="the local LLM's opinion: status, reason, "
                                                                 "opinion, summary, prompt, raw_answer")
    manifest: dict[str, Any] = Field(default_factory=dict, description="the project's noa.yaml as used")
    manifest_origin: Literal["source", "generated"] = Field("generated",
                                                            description="noa.yaml came with the source or "
                                                                        "was generated")
    commit: str = Field(description="the sandbox commit holding the drop")
    branch: str = Field(description="the sandbox branch")
    files: int = Field(0, description="files received")
    bytes: int = Field(0, description="bytes received")
    tree_hash: str = Field("", description="content hash of the received tree")
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per step, and total")
    report_path: str | None = Field(None, description="path of this report as JSON under NOA_HOME/reports")
    flow_run_id: str | None = Field(None, description="the Prefect flow run")
