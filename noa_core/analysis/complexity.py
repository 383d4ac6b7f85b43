"""Cyclomatic complexity and maintainability index with radon's Python API.

radon works on the parsed source (``ast``); nothing is imported or run. Each file is
parsed once and the tree shared by the complexity and Halstead visitors. Vendored and
generated files are left out. Functions of rank E (CC 31-40) and F (41+) become
findings of low and medium severity. The maintainability index needs radon's
token-based line counts, which cost several times the rest, so it is computed for files
up to ``MI_MAX_BYTES`` only (larger modules score near 0 anyway); the others are
counted in ``maintainability.skipped_large``. Files that do not parse are counted in
``files_failed_to_parse`` (the metric covers what parsed). A time budget stops the walk
on a huge tree: the files not reached are counted and the result is then ``unknown``.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Iterator

from noa_core.analysis import _classify
from noa_core.sourcetree import safe_fs
from noa_core.analysis.interface import AnalyzerResult, Finding

MAX_FILE_BYTES = 2 * 1024 * 1024
MI_MAX_BYTES = 64 * 1024
MAX_FINDINGS = 200
RANKS = "ABCDEF"


def _radon_available() -> bool:
    return importlib.util.find_spec("radon") is not None


def _flatten(blocks: Iterable[Any]) -> Iterator[Any]:
    """Functions and methods of radon's results, closures and inner classes included.

    ``cc_visit`` lists top-level functions, classes, and the methods of top-level classes;
    closures and the methods of nested classes hang below them.
    """
    from radon.visitors import Class, Function

    def function_and_closures(fn: Any) -> Iterator[Any]:
        yield fn
        for inner in getattr(fn, "closures", ()):
            yield from function_and_closures(inner)

    def inner_classes(cls: Any) -> Iterator[Any]:
        for inner in getattr(cls, "inner_classes", ()):
            for method in inner.methods:
                yield from function_and_closures(method)
            yield from inner_classes(inner)

    for block in blocks:
        if isinstance(block, Function):
            yield from function_and_closures(block)
        elif isinstance(block, Class):
            yield from inner_classes(block)


def _measure(source: str, *, with_mi: bool) -> tuple[list[Any], float | None]:
    """radon blocks of one module and, if asked, its maintainability index (one parse)."""
    import ast

    from radon.metrics import h_visit_ast, mi_compute
    from radon.raw import analyze
    from radon.visitors import ComplexityVisitor

    node = ast.parse(source)
    visitor = ComplexityVisitor.from_ast(node)
    blocks = list(visitor.blocks)
    if not with_mi:
        return blocks, None
    raw = analyze(source)
    comment_lines = raw.comments + raw.multi
    comments = comment_lines / float(raw.sloc) * 100 if raw.sloc else 0
    volume = h_visit_ast(node).total.volume
    return blocks, float(mi_compute(volume, visitor.total_complexity, raw.lloc, comments))


class ComplexityAnalyzer:
    name = "complexity"
    version = "1"

    def __init__(self, *, time_budget: float = 60.0) -> None:
        self.time_budget = time_budget

    def analyze(self, tree: Path) -> AnalyzerResult:
        if not _radon_available():
            return AnalyzerResult(self.name, "skipped", reason="radon is not installed")
        from radon.complexity import cc_rank
        from radon.metrics import mi_rank

        listing = safe_fs.walk(tree)
        files = [f for f in listing.source_files() if f.suffix == ".py"]
        files = [f for f in files if not _classify.generated_reason(f.name, None)]
        if not files:
            return AnalyzerResult(self.name, "skipped", reason="no Python files")
        deadline = time.monotonic() + self.time_budget
        ranks = dict.fromkeys(RANKS, 0)
        mi_ranks = dict.fromkeys("ABC", 0)
        total_cc = functions = failed = analysed = 0
        too_large: list[str] = []
        not_reached = 0
        worst: dict[str, Any] | None = None
        mi_values: list[tuple[float, str]] = []
        mi_skipped = 0
        findings: list[Finding] = []
        hot = 0
        for f in files:
            if time.monotonic() > deadline:
                not_reached += 1
                continue
            if f.size > MAX_FILE_BYTES:
                too_large.append(f.rel)
                continue
            try:
                source = safe_fs.read_text(tree, f.rel, MAX_FILE_BYTES)
                blocks, mi = _measure(source, with_mi=f.size <= MI_MAX_BYTES)
            except (SyntaxError, ValueError, RecursionError, MemoryError, OSError, TypeError):
                failed += 1
                continue
            analysed += 1
            if mi is None:
                mi_skipped += 1
            else:
                mi_values.append((mi, f.rel))
                mi_ranks[mi_rank(mi)] += 1
            for fn in _flatten(blocks):
                cc = int(fn.complexity)
                rank = cc_rank(cc)
                functions += 1
                total_cc += cc
                ranks[rank] += 1
                name = fn.fullname if hasattr(fn, "fullname") else fn.name
                if worst is None or cc > worst["cc"]:
                    worst = {"name": name, "path": f.rel, "line": fn.lineno, "cc": cc, "rank": rank}
                if rank in ("E", "F"):
                    hot += 1
                    if len(findings) < MAX_FINDINGS:
                        findings.append(Finding(
                            analyzer=self.name, rule=f"cc-rank-{rank}",
                            severity="medium" if rank == "F" else "low",
                            message=f"{name} has cyclomatic complexity {cc} (rank {rank})",
                            path=f.rel, line=fn.lineno))
        findings.sort(key=lambda x: (x.severity != "medium", x.path or "", x.line or 0))
        data: dict[str, Any] = {
            "files": analysed,
            "functions": functions,
            "average_cc": round(total_cc / functions, 2) if functions else 0.0,
            "max_cc": worst,
            "rank_counts": ranks,
            "rank_e_or_f": hot,
            "files_failed_to_parse": failed,
            "maintainability": {
                "average": round(sum(v for v, _ in mi_values) / len(mi_values), 2) if mi_values else None,
                "min": ({"path": min(mi_values)[1], "mi": round(min(mi_values)[0], 2)}
                        if mi_values else None),
                "rank_counts": mi_ranks,
                "skipped_large": mi_skipped,
            },
        }
        if not_reached or too_large:
            data["not_analysed"] = not_reached + len(too_large)
            return AnalyzerResult(
                self.name, "unknown",
                reason=f"{not_reached + len(too_large)} Python files not analysed "
                       f"({not_reached} past the {self.time_budget:.0f} s budget, "
                       f"{len(too_large)} too large)", data=data, findings=tuple(findings))
        reason = f"{failed} files could not be parsed" if failed else ""
        return AnalyzerResult(self.name, "ok", reason=reason, data=data, findings=tuple(findings))
