"""Choosing the sandbox a drop lands in.

Decision table, first match wins:

1. confidence below ``threshold`` (default 0.5)            -> C, always (names the score);
2. the analysis opinion says experimental                   -> C;
3. ``noa.yaml`` asks for a sandbox (A, B or C)               -> that sandbox;
4. a known project and the opinion says bug fix             -> B;
5. a known project with a small diff, opinion not "feature" -> B;
6. a known project whose opinion says feature, or whose diff is large -> A;
7. a new project                                            -> A (whatever the opinion).

The opinion is free text from a small local LLM. :func:`classify_opinion` takes the
category whose keyword appears first in it ("bug fix", "feature", "experimental", and
their usual synonyms); text with none of them gives no opinion. Negations are not
understood, on purpose: a 135M-parameter model's prose is a weak signal and the
measured ones (known project, diff size, confidence) carry most of the decision.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from noa_core.sandbox.sandboxes import Sandbox

Opinion = Literal["bugfix", "feature", "experimental"]

_OPINION_PATTERNS: tuple[tuple[Opinion, re.Pattern[str]], ...] = (
    ("bugfix", re.compile(r"\b(bug[\s_-]?fix(es)?|bugs?|fix(es|ed)?|hotfix|patch(es)?|regressions?|security fix)\b")),
    ("feature", re.compile(r"\b(features?|enhancements?|new functionality|new module|improvements?)\b")),
    ("experimental", re.compile(r"\b(experimental|experiments?|prototypes?|proof[\s-]of[\s-]concept|poc|"
                                r"unstable|risky|wip|work in progress|alpha)\b")),
)


_LABELS: dict[Opinion, str] = {"bugfix": "bug fix", "feature": "feature", "experimental": "experimental"}


@dataclass(frozen=True)
class AssignmentSignals:
    """What is known about a drop besides its confidence and opinion."""

    project: str | None = None
    known_project: bool = False       # D (the workspace) already has this project
    changed_files: int | None = None  # vs D's version of the project, when known
    changed_lines: int | None = None  # insertions + deletions vs D's version
    manifest_hint: Literal["A", "B", "C"] | None = None  # noa.yaml's "sandbox"


@dataclass(frozen=True)
class Assignment:
    sandbox: Sandbox
    reason: str  # one human sentence naming the deciding signals
    opinion: Opinion | None = None


def classify_opinion(opinion: str | None) -> Opinion | None:
    """The category named first in the opinion text, or None."""
    if not opinion:
        return None
    text = opinion.lower()
    best: tuple[int, Opinion] | None = None
    for category, pattern in _OPINION_PATTERNS:
        match = pattern.search(text)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), category)
    return best[1] if best else None


def _diff_words(signals: AssignmentSignals) -> str:
    parts = []
    if signals.changed_files is not None:
        parts.append(f"{signals.changed_files} file{'s' if signals.changed_files != 1 else ''}")
    if signals.changed_lines is not None:
        parts.append(f"{signals.changed_lines} line{'s' if signals.changed_lines != 1 else ''}")
    return ", ".join(parts) or "unknown size"


def _is_small(signals: AssignmentSignals, small_files: int, small_lines: int) -> bool | None:
    if signals.changed_files is None and signals.changed_lines is None:
        return None
    return ((signals.changed_files is None or signals.changed_files <= small_files)
            and (signals.changed_lines is None or signals.changed_lines <= small_lines))


def assign_sandbox(confidence: float, opinion: str | None, signals: AssignmentSignals, *,
                   threshold: float = 0.5, small_files: int = 10, small_lines: int = 200) -> Assignment:
    """Pick A, B or C for a drop (never D: D changes only through the sandbox merge)."""
    if not (isinstance(confidence, (int, float)) and math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
        raise ValueError(f"confidence must be a number within [0, 1], got {confidence!r}")
    category = classify_opinion(opinion)
    new = f"Project {signals.project}" if signals.project else "The project"
    known = f"known project {signals.project}" if signals.project else "a known project"

    if confidence < threshold:
        return Assignment(Sandbox.C, f"Confidence {confidence:.2f} is below the {threshold:.2f} threshold, "
                                     f"so the drop goes to the experimental sandbox C.", category)
    if category == "experimental":
        return Assignment(Sandbox.C, f"Confidence {confidence:.2f} is high enough, but the analysis opinion "
                                     f"calls the drop experimental, so it goes to sandbox C.", category)
    if signals.manifest_hint is not None:
        sandbox = Sandbox(signals.manifest_hint)
        return Assignment(sandbox, f"Confidence {confidence:.2f} is high enough and noa.yaml asks for "
                                   f"sandbox {sandbox.value}.", category)
    if not signals.known_project:
        opinion_note = f" (the opinion says {_LABELS[category]})" if category else ""
        return Assignment(Sandbox.A, f"{new} is new to the workspace{opinion_note}, "
                                     f"so it goes to the feature sandbox A.", category)
    small = _is_small(signals, small_files, small_lines)
    size = f"a {'small' if small else 'large'} diff ({_diff_words(signals)})" if small is not None \
        else "a diff of unknown size"
    if category == "bugfix":
        return Assignment(Sandbox.B, f"An update of {known} with {size} that the analysis opinion calls "
                                     f"a bug fix goes to the bug-fix sandbox B.", category)
    if small and category != "feature":
        return Assignment(Sandbox.B, f"An update of {known} with {size} goes to the bug-fix sandbox B.",
                          category)
    if category == "feature":
        why = "the analysis opinion calls it a feature"
    else:
        why = f"it has {size}" if small is not None else "the size of its diff is unknown"
    return Assignment(Sandbox.A, f"An update of {known} goes to the feature sandbox A because {why}.",
                      category)
