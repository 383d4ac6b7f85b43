"""Example NOA ARK OS plugin: an analyzer (``noa.analyzers``) and an API route (``noa.plugins``)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

MARKERS = ("TODO", "FIXME", "XXX")
_PATTERN = re.compile(r"\b(" + "|".join(MARKERS) + r")\b")
_TEXT_SUFFIXES = {".py", ".rs", ".go", ".js", ".ts", ".md", ".rst", ".txt", ".toml", ".cfg", ".yaml", ".yml"}
_MAX_FILE_BYTES = 2 * 1024 * 1024


class TodoAnalyzer:
    """Counts TODO / FIXME / XXX markers per kind and names the files with the most."""

    name = "todos"
    version = "0.1.0"

    def analyze(self, tree: Path) -> Any:
        from noa_core.analysis.interface import AnalyzerResult

        t0 = time.perf_counter()
        counts = dict.fromkeys(MARKERS, 0)
        per_file: dict[str, int] = {}
        for path in sorted(tree.rglob("*")):
            if path.is_symlink() or not path.is_file() or path.suffix not in _TEXT_SUFFIXES:
                continue
            if path.stat().st_size > _MAX_FILE_BYTES:
                continue
            found = _PATTERN.findall(path.read_text(encoding="utf-8", errors="replace"))
            for marker in found:
                counts[marker] += 1
            if found:
                per_file[path.relative_to(tree).as_posix()] = len(found)
        top = sorted(per_file.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        return AnalyzerResult(self.name, "ok", data={"counts": counts, "total": sum(counts.values()),
                                                     "top_files": [{"path": p, "markers": n} for p, n in top]},
                              seconds=time.perf_counter() - t0)


def api_router(settings: Any) -> Any:
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/markers")
    async def markers() -> dict[str, Any]:
        """The markers the `todos` analyzer counts."""
        return {"markers": list(MARKERS), "analyzer": TodoAnalyzer.name, "version": TodoAnalyzer.version}

    return router
