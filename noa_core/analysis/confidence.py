"""How confident NOA is that a drop will pass validation, from the analyzer results.

Each signal is a value in [0, 1] with a weight and a one-line reason. The raw score is
the weighted mean, so the contributions (``weight * value / total weight``) add up to
it exactly. Missing, ``unknown`` and ``skipped`` results never count as clean: a
signal without evidence sits in the middle, and the ``coverage`` signal lowers the
score for every analyzer that could not do its job.

:class:`Calibration` turns the raw score into an observed pass rate: past
(raw score, validation passed) outcomes are bucketed into equal-width bins, and the
calibrated score is the posterior mean of the bin's pass rate under a Beta prior
centred on the raw score (``prior_strength`` pseudo-observations, 4 by default). With
no history for a bin the calibrated score is the raw score; with much history it is
the bin's observed pass rate.

The local LLM's opinion (result ``llm``) is never weighted; when it is among the results
an ``ai`` line with weight 0 says so, and when the model gave no answer (``unknown``,
``skipped``) that the score was computed without the AI signal, and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Iterable, Mapping

from noa_core.analysis.interface import AnalyzerResult

Signal = Callable[[Mapping[str, AnalyzerResult]], tuple[float, str]]

WEIGHTS: dict[str, float] = {
    "tests": 0.20,
    "build": 0.10,
    "licence": 0.10,
    "secrets": 0.15,
    "sast": 0.10,
    "complexity": 0.05,
    "dependencies": 0.10,
    "vulnerabilities": 0.10,
    "coverage": 0.10,
}

EXPECTED_ANALYZERS = ("languages", "build_system", "dependencies", "tests", "licence", "secrets",
                      "sast", "complexity", "vulnerabilities")

NO_EVIDENCE = 0.5


@dataclass(frozen=True)
class Contribution:
    signal: str
    value: float
    weight: float
    contribution: float
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "value": round(self.value, 4), "weight": self.weight,
                "contribution": round(self.contribution, 4), "why": self.why}


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    n: int = 0
    passed: int = 0

    @property
    def rate(self) -> float | None:
        return self.passed / self.n if self.n else None

    def as_dict(self) -> dict[str, Any]:
        return {"bin": f"{self.low:.1f}-{self.high:.1f}", "low": self.low, "high": self.high,
                "n": self.n, "passed": self.passed,
                "rate": None if self.rate is None else round(self.rate, 4)}


@dataclass(frozen=True)
class Calibration:
    bins: tuple[CalibrationBin, ...]
    prior_strength: float = 4.0

    @classmethod
    def empty(cls, bins: int = 5, prior_strength: float = 4.0) -> Calibration:
        if bins < 1:
            raise ValueError("at least one bin")
        return cls(tuple(CalibrationBin(i / bins, (i + 1) / bins) for i in range(bins)),
                   prior_strength)

    @classmethod
    def from_outcomes(cls, outcomes: Iterable[tuple[float, bool]], bins: int = 5,
                      prior_strength: float = 4.0) -> Calibration:
        """From past (raw score, validation passed) pairs."""
        calibration = cls.empty(bins, prior_strength)
        counts = [[0, 0] for _ in calibration.bins]
        for raw, passed in outcomes:
            i = calibration.bin_index(raw)
            counts[i][0] += 1
            counts[i][1] += int(bool(passed))
        return cls(tuple(CalibrationBin(b.low, b.high, n, p)
                         for b, (n, p) in zip(calibration.bins, counts, strict=True)), prior_strength)

    def bin_index(self, raw: float) -> int:
        # Rounded first, so that 0.8 computed as 0.7999999999999999 lands in the 0.8 bin.
        return min(int(round(_clamp(raw) * len(self.bins), 9)), len(self.bins) - 1)

    def calibrate(self, raw: float) -> float:
        """Posterior mean pass rate of ``raw``'s bin, Beta prior centred on ``raw``."""
        raw = _clamp(raw)
        b = self.bins[self.bin_index(raw)]
        return (self.prior_strength * raw + b.passed) / (self.prior_strength + b.n)

    def table(self) -> list[dict[str, Any]]:
        return [b.as_dict() for b in self.bins]


@dataclass(frozen=True)
class Confidence:
    raw: float
    calibrated: float
    contributions: tuple[Contribution, ...]
    calibration_bin: CalibrationBin | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"raw": round(self.raw, 4), "calibrated": round(self.calibrated, 4),
                "contributions": [c.as_dict() for c in self.contributions],
                "calibration_bin": self.calibration_bin.as_dict() if self.calibration_bin else None}


def score_confidence(results: Mapping[str, AnalyzerResult],
                     calibration: Calibration | None = None) -> Confidence:
    total = sum(WEIGHTS.values())
    contributions = []
    for name, signal in SIGNALS.items():
        value, why = signal(results)
        value = _clamp(value)
        weight = WEIGHTS[name]
        contributions.append(Contribution(name, value, weight, weight * value / total, why))
    raw = _clamp(sum(c.contribution for c in contributions))
    if "llm" in results:
        contributions.append(_ai_note(results["llm"]))
    if calibration is None:
        return Confidence(raw, raw, tuple(contributions))
    return Confidence(raw, calibration.calibrate(raw), tuple(contributions),
                      calibration.bins[calibration.bin_index(raw)])


# -- signals --------------------------------------------------------------------------

def _clamp(x: float) -> float:
    return 0.0 if x != x else max(0.0, min(1.0, float(x)))  # NaN -> 0


def _missing(name: str) -> tuple[float, str]:
    return NO_EVIDENCE, f"{name} was not analysed"


def _tests(results: Mapping[str, AnalyzerResult]) -> tuple[float, str]:
    r = results.get("tests")
    if r is None:
        return _missing("tests")
    suites = r.data.get("suites") or []
    files = sum(int(s.get("files", 0)) for s in suites)
    if suites and files:
        frameworks = ", ".join(sorted({str(s.get("framework")) for s in suites}))
        command = " ".join(r.data.get("command") or [])
        return min(1.0, 0.6 + 0.08 * files), f"{files} test files ({frameworks}), run by `{command}`"
    if suites:
        return 0.3, "test configuration found but no test files"
    if r.status != "ok":
        return 0.3, f"tests unclear: {r.reason}"
    return 0.0, "no test suite found"


def _build(results: Mapping[str, AnalyzerResult]) -> tuple[float, str]:
    r = results.get("build_system")
    if r is None:
        return _missing("build system")
    primary = r.data.get("primary")
    if primary:
        command = " ".join(r.data.get("build_command") or [])
        return (1.0 if r.status == "ok" else 0.7), f"built with {primary} (`{command}`)"
    if r.status != "ok":
        return 0.3, f"build system unclear: {r.reason}"
    return 0.0, "no build system detected"


_LICENCE_VALUE = {"permissive": 1.0, "weak-copyleft": 0.8, "copyleft": 0.6, "proprietary": 0.2}


def _licence(results: Mapping[str, AnalyzerResult]) -> tuple[float, str]:
    r = results.get("licence")
    if r is None:
        return _missing("licence")
    category = r.data.get("category", "unknown")
    name = r.data.get("spdx") or r.data.get("family")
    if not name or category not in _LICENCE_VALUE:
        return 0.0, f"licence unknown ({r.reason or 'not recognised'})"
    value = _LICENCE_VALUE[category]
    why = f"{name} ({category})"
    if r.data.get("agree") is False:
        value -= 0.3
        why += ", but licence sources disagree"
    if not r.data.get("exact", True):
        value -= 0.1
        why += ", exact licence not known"
    return value, why


def _secrets(results: Mapping[str, AnalyzerResult]) -> tuple[float, str]:
    r = results.get("secrets")
    if r is None:
        return _missing("secrets")
    high = sum(1 for f in r.findings if f.severity in ("high", "critical"))
    if high:
        types = ", ".join(sorted({f.rule for f in r.findings if f.severity in ("high", "critical")}))
        return 0.0, f"{high} possible committed secrets ({types})"
    if r.status == "ok":
        medium = sum(1 for f in r.findings if f.severity == "medium")
        weak = len(r.findings) - medium
        extra = (f"; {medium} at medium (allow-listed in source or token-like)" if medium else "") \
            + (f"; {weak} low/informational (entropy or allowed)" if weak else "")
        return (0.9 if medium else 1.0), \
            f"no secrets found in {r.data.get('files_scanned', '?')} files{extra}"
    return NO_EVIDENCE, f"secret scan {r.status}: {r.reason}"


def _sast(results: Mapping[str, AnalyzerResult]) -> tuple[float, str]:
    r = results.get("sast")
    if r is None:
        return _missing("SAST")
    if r.status == "skipped":
        return NO_EVIDENCE, f"no SAST evidence: {r.reason}"
    high = sum(1 for f in r.findings if f.severity in ("high", "critical"))
    medium = sum(1 for f in r.findings if f.severity == "medium")
    value = 1.0 - 0.25 * high - 0.05 * medium
    why = f"bandit: {high} high, {medium} medium findings in {r.data.get('files', '?')} files"
    if r.status != "ok":
        value = min(value, 0.7)
        why += f" (incomplete: {r.reason})"
    return value, why


def _complexity(results: Mapping[str, AnalyzerResult]) -> tuple[float, str]:
    r = results.get("complexity")
    if r is None:
        return _missing("complexity")
    functions = int(r.data.get("functions") or 0)
    if r.status == "skipped" or not functions:
        return NO_EVIDENCE, f"no complexity evidence: {r.reason or 'no functions'}"
    average = float(r.data.get("average_cc") or 0.0)
    hot = int(r.data.get("rank_e_or_f") or 0)
    value = 1.0 - max(0.0, average - 4.0) / 12.0
    value *= 1.0 - min(0.5, 10.0 * hot / functions)
    return value, f"average cyclomatic complexity {average:.1f} over {functions} functions, {hot} of rank E/F"


def _dependencies(results: Mapping[str, AnalyzerResult]) -> tuple[float, str]:
    r = results.get("dependencies")
    if r is None:
        return _missing("dependencies")
    counts = r.data.get("counts") or {}
    total = sum(int(v) for v in counts.values())
    if r.status == "ok":
        return 1.0, f"{total} declared dependencies parsed from {len(r.data.get('manifests', []))} manifests"
    if r.status == "skipped":
        return NO_EVIDENCE, "no dependency manifest found"
    return 0.3, f"dependency declarations not fully read: {r.reason}"


def _vulnerabilities(results: Mapping[str, AnalyzerResult]) -> tuple[float, str]:
    r = results.get("vulnerabilities")
    if r is None:
        return _missing("vulnerabilities")
    found = len(r.findings)
    if found:
        return 0.0, f"{found} known vulnerabilities in dependencies"
    if r.status == "ok":
        return 1.0, f"all {r.data.get('total', '?')} Python dependencies checked: no known vulnerabilities"
    if r.status == "skipped":
        deps = results.get("dependencies")
        others = sum(int(v) for k, v in ((deps.data.get("counts") or {}) if deps else {}).items()
                     if k != "python")
        if deps is not None and deps.status == "ok" and not others:
            return 1.0, "no dependencies to audit"
        return NO_EVIDENCE, f"not audited: {r.reason}"
    total = int(r.data.get("total") or 0)
    checked = len(r.data.get("checked") or [])
    share = checked / total if total else 0.0
    return 0.3 + 0.4 * share, f"vulnerabilities unknown: {checked} of {total} dependencies checked"


def _coverage(results: Mapping[str, AnalyzerResult]) -> tuple[float, str]:
    points = {"ok": 1.0, "skipped": 0.5, "unknown": 0.0}
    ok = [n for n in EXPECTED_ANALYZERS if n in results and results[n].status == "ok"]
    skipped = [n for n in EXPECTED_ANALYZERS if n in results and results[n].status == "skipped"]
    unknown = [n for n in EXPECTED_ANALYZERS if n in results and results[n].status == "unknown"]
    missing = [n for n in EXPECTED_ANALYZERS if n not in results]
    value = sum(points[results[n].status] for n in EXPECTED_ANALYZERS if n in results)
    parts = [f"{len(ok)} of {len(EXPECTED_ANALYZERS)} analyzers ok"]
    for label, names in (("skipped", skipped), ("unknown", unknown), ("not run", missing)):
        if names:
            parts.append(f"{label}: {', '.join(names)}")
    return value / len(EXPECTED_ANALYZERS), "; ".join(parts)


def _ai_note(r: AnalyzerResult) -> Contribution:
    """The local LLM is no weighted signal (weight 0): the line says how the score stands
    towards it, in particular that it was computed without it when the model gave no answer."""
    if r.status == "ok":
        opinion = r.data.get("opinion")
        why = f"the AI opinion ({opinion}) is not part of the score; it only informs the sandbox choice"
    else:
        why = f"computed without the AI signal: {r.reason or r.status}"
    return Contribution("ai", NO_EVIDENCE, 0.0, 0.0, why)


SIGNALS: dict[str, Signal] = {
    "tests": _tests,
    "build": _build,
    "licence": _licence,
    "secrets": _secrets,
    "sast": _sast,
    "complexity": _complexity,
    "dependencies": _dependencies,
    "vulnerabilities": _vulnerabilities,
    "coverage": _coverage,
}
