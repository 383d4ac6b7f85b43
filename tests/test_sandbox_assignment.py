"""Choosing a sandbox from confidence, the LLM opinion and measured signals."""

from __future__ import annotations

import math

import pytest

from noa_core.sandbox import AssignmentSignals, Sandbox, assign_sandbox, classify_opinion

KNOWN_SMALL = AssignmentSignals(project="toolz", known_project=True, changed_files=3, changed_lines=40)
KNOWN_LARGE = AssignmentSignals(project="toolz", known_project=True, changed_files=60, changed_lines=4000)
NEW = AssignmentSignals(project="cachetools", known_project=False)


@pytest.mark.parametrize("signals", [NEW, KNOWN_SMALL, KNOWN_LARGE,
                                     AssignmentSignals(project="x", known_project=True, manifest_hint="A")])
@pytest.mark.parametrize("opinion", [None, "bug fix", "new feature", "experimental"])
def test_low_confidence_always_goes_to_c_naming_the_score(signals: AssignmentSignals, opinion: str | None) -> None:
    result = assign_sandbox(0.42, opinion, signals)
    assert result.sandbox is Sandbox.C
    assert "0.42" in result.reason and "0.50" in result.reason


def test_threshold_is_a_parameter() -> None:
    assert assign_sandbox(0.6, None, NEW, threshold=0.7).sandbox is Sandbox.C
    assert assign_sandbox(0.6, None, NEW, threshold=0.5).sandbox is Sandbox.A
    assert assign_sandbox(0.5, None, NEW).sandbox is Sandbox.A  # "below" is strict


@pytest.mark.parametrize(("opinion", "signals", "sandbox", "words"), [
    (None, NEW, Sandbox.A, ["cachetools", "new"]),
    ("This adds a new feature.", NEW, Sandbox.A, ["new"]),
    ("Looks like a bug fix.", NEW, Sandbox.A, ["new", "bug fix"]),
    (None, KNOWN_SMALL, Sandbox.B, ["toolz", "small diff", "3 files", "40 lines"]),
    ("Fixes a crash in parsing.", KNOWN_LARGE, Sandbox.B, ["toolz", "bug fix", "large diff"]),
    ("A new feature for users.", KNOWN_SMALL, Sandbox.A, ["toolz", "feature"]),
    (None, KNOWN_LARGE, Sandbox.A, ["large diff", "60 files"]),
    ("An experimental prototype.", KNOWN_SMALL, Sandbox.C, ["experimental"]),
    ("Experimental rewrite.", NEW, Sandbox.C, ["experimental"]),
    (None, AssignmentSignals(project="x", known_project=True), Sandbox.A, ["unknown"]),
    (None, AssignmentSignals(project="x", manifest_hint="B"), Sandbox.B, ["noa.yaml", "B"]),
])
def test_decision_table(opinion: str | None, signals: AssignmentSignals, sandbox: Sandbox,
                        words: list[str]) -> None:
    result = assign_sandbox(0.8, opinion, signals)
    assert result.sandbox is sandbox, result.reason
    for word in words:
        assert word in result.reason, (word, result.reason)
    assert result.reason.endswith(".") and result.reason.count(". ") == 0 and "\n" not in result.reason
    assert result.sandbox is not Sandbox.D


def test_small_diff_thresholds_are_parameters() -> None:
    assert assign_sandbox(0.8, None, KNOWN_SMALL, small_files=2).sandbox is Sandbox.A
    assert assign_sandbox(0.8, None, KNOWN_LARGE, small_files=100, small_lines=5000).sandbox is Sandbox.B


@pytest.mark.parametrize(("text", "category"), [
    (None, None), ("", None), ("Nothing to say.", None), ("prefix suffix", None),
    ("Category: bugfix", "bugfix"), ("This patch fixes bug #12", "bugfix"), ("hotfix for a regression", "bugfix"),
    ("Adds a feature; no bug fixes", "feature"), ("enhancement", "feature"),
    ("alpha quality, a feature prototype", "experimental"), ("WIP", "experimental"),
])
def test_classify_opinion_takes_the_first_category_named(text: str | None, category: str | None) -> None:
    assert classify_opinion(text) == category


@pytest.mark.parametrize("confidence", [-0.1, 1.5, math.nan, math.inf])
def test_confidence_out_of_range_is_an_error(confidence: float) -> None:
    with pytest.raises(ValueError):
        assign_sandbox(confidence, None, NEW)
