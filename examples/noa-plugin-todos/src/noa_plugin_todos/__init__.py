"""Example NOA ARK OS plugin: an analyzer (``noa.analyzers``); an API route and a deploy target
(``noa.plugins``).

The deploy target ``static`` serves a project's ``public/`` directory (or ``STATIC_DIR`` from
the noa.yaml ``run.env``) as a static site on NOA's local supervisor, so a documentation site
goes through the same blue-green and canary deploys as a service: ``noa deploy SITE --target static``.
"""

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


STATIC_SERVER = """
import functools, http.server, os
directory = os.environ.get("STATIC_DIR", "public")
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ[os.environ.get("NOA_PORT_ENV", "PORT")])),
                                handler).serve_forever()
"""


def static_target(home: Path, **options: Any) -> Any:
    """The ``static`` deploy target: NOA's local target, running a static file server instead of
    the project's own command (the release's files, port and health check are NOA's as usual)."""
    from dataclasses import replace

    from noa_core.deploy.local_target import LocalTarget

    class StaticSiteTarget(LocalTarget):
        name = "static"

        def start(self, release: Any) -> Any:
            env = {**dict(release.env), "NOA_PORT_ENV": release.port_env}
            return super().start(replace(release, command=("python", "-c", STATIC_SERVER), env=env))

    return StaticSiteTarget(home, max_restarts=int(options.get("max_restarts", 3)))


deploy_targets = {"static": static_target}
