"""The analyzers NOA runs, plugins, and running one analyzer safely.

Built-in analyzers come from :func:`default_analyzers`. Third-party analyzers are
found through the ``noa.analyzers`` entry-point group: each entry point names an
analyzer class (instantiated without arguments), a factory, or an instance, and must
satisfy the :class:`~noa_core.analysis.interface.Analyzer` protocol. A plugin may
not take the name of a built-in analyzer.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from importlib.metadata import entry_points
from pathlib import Path

from noa_core.analysis.build_system import BuildSystemAnalyzer
from noa_core.analysis.complexity import ComplexityAnalyzer
from noa_core.analysis.dependencies import DependenciesAnalyzer
from noa_core.analysis.interface import Analyzer, AnalyzerResult
from noa_core.analysis.languages import LanguagesAnalyzer
from noa_core.analysis.licence import LicenceAnalyzer
from noa_core.analysis.npm import NpmAnalyzer
from noa_core.analysis.sast import SastAnalyzer
from noa_core.analysis.secrets_scan import SecretsAnalyzer
from noa_core.analysis.suites import TestsAnalyzer
from noa_core.analysis.vulnerabilities import VulnerabilitiesAnalyzer

ENTRY_POINT_GROUP = "noa.analyzers"

log = logging.getLogger(__name__)


def default_analyzers() -> list[Analyzer]:
    """The built-in analyzers, in report order."""
    return [
        LanguagesAnalyzer(),
        BuildSystemAnalyzer(),
        DependenciesAnalyzer(),
        NpmAnalyzer(),
        TestsAnalyzer(),
        LicenceAnalyzer(),
        SecretsAnalyzer(),
        SastAnalyzer(),
        ComplexityAnalyzer(),
        VulnerabilitiesAnalyzer(),
    ]


def load_plugin_analyzers(group: str = ENTRY_POINT_GROUP) -> list[Analyzer]:
    """Analyzers registered by installed distributions under ``group``.

    A plugin that fails to load, is not an analyzer, or reuses a built-in or an already
    loaded name is left out with a warning in the log (it never replaces a built-in).
    """
    taken = {a.name for a in default_analyzers()}
    found: list[Analyzer] = []
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            obj = ep.load()
            if isinstance(obj, type) or (callable(obj) and not isinstance(obj, Analyzer)):
                obj = obj()  # a class or a factory
            analyzer = obj
        except Exception as exc:  # a broken plugin must not break the analysis
            log.warning("analyzer plugin %s could not be loaded: %s", ep.name, _one_line(exc))
            continue
        if not isinstance(analyzer, Analyzer) or not isinstance(getattr(analyzer, "name", None), str):
            log.warning("analyzer plugin %s is not an Analyzer (needs name, version, analyze)", ep.name)
            continue
        if analyzer.name in taken:
            log.warning("analyzer plugin %s reuses the analyzer name %r; ignored", ep.name, analyzer.name)
            continue
        taken.add(analyzer.name)
        found.append(analyzer)
    return found


def all_analyzers() -> list[Analyzer]:
    return default_analyzers() + load_plugin_analyzers()


def run_analyzer(analyzer: Analyzer, tree: Path) -> AnalyzerResult:
    """Run one analyzer, timed; a crash becomes an ``unknown`` result, never a clean one."""
    started = time.perf_counter()
    try:
        result = analyzer.analyze(Path(tree))
        if not isinstance(result, AnalyzerResult):
            raise TypeError(f"analyze() returned {type(result).__name__}, not AnalyzerResult")
    except Exception as exc:
        log.exception("analyzer %s crashed", getattr(analyzer, "name", analyzer))
        return AnalyzerResult(name=analyzer.name, status="unknown",
                              reason=f"analyzer crashed: {_one_line(exc)}",
                              seconds=time.perf_counter() - started)
    return dataclasses.replace(result, name=analyzer.name, seconds=time.perf_counter() - started)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line[:300]
