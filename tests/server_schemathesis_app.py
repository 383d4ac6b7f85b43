"""A NOA API for schemathesis: a tmp NOA_HOME with data, an admin token, a fake orchestrator.

``python tests/server_schemathesis_app.py HOME PORT`` prints the admin token on stdout, then serves.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn

from noa_core.config import NoaSettings
from noa_core.results import ConfidenceReport, DropReport
from noa_core.server.app import create_app
from noa_core.server.inference import Inference
from noa_core.server.ratelimit import RateLimit
from noa_core.storage.registry import Registry
from tests.server_helpers import FakeOrchestrator


def sample_drop_report(drop_id: str) -> DropReport:
    """A code drop's report as code_drop writes it to NOA_HOME/reports (the fields a drop always has)."""
    return DropReport(drop_id=drop_id, source="/tmp/hello", source_kind="dir", project="hello", confidence=0.5,
                      confidence_detail=ConfidenceReport(raw=0.5, calibrated=0.5, contributions=[]), sandbox="A",
                      sandbox_reason="forced", analyzers={}, commit="a" * 40, branch="sandbox/A-feature",
                      timings={"fetch": 0.1})


def build(home: Path):  # type: ignore[no-untyped-def]
    settings = NoaSettings(home=home)
    app = create_app(settings, orchestrator=FakeOrchestrator(), rate_limit=RateLimit(100_000, 100_000),
                     inference=Inference(home / "no-model.gguf"), schedule_backup=None, prefect_events=False)
    reg: Registry = app.state.noa.registry
    project = reg.upsert_project("hello", ["a" * 40])
    drop = reg.new_drop("/tmp/hello", "dir", name="hello", project_id=project.id, drop_id="20261125-000000-hello-abcdef")
    reports = settings.layout().reports
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"{drop.id}.json").write_text(sample_drop_report(drop.id).model_dump_json())
    src = settings.layout().drops / drop.id / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "hello.py").write_text("def greet(name):\n    return 'hello ' + name\n")
    releases = settings.layout().root / "deploy" / "releases" / "staging"
    releases.mkdir(parents=True, exist_ok=True)
    (releases / "hello.json").write_text(json.dumps({
        "active": {"release": {"release_id": "r1", "app": "hello"}, "outcome": "promoted", "at": "2026-11-25T00:00:00Z",
                   "instance": None},
        "history": [{"release": {"release_id": "r1", "app": "hello"}, "outcome": "promoted", "at": "2026-11-25T00:00:00Z",
                     "instance": None}]}))
    return app


if __name__ == "__main__":
    home, port = Path(sys.argv[1]), int(sys.argv[2])
    app = build(home)
    token, _ = app.state.noa.tokens.create("schemathesis", "admin")
    print(token, flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
