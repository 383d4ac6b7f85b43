"""A real code_drop flow whose model process is killed (SIGSEGV) mid-request: the flow
finishes, the AI signal is ``unknown`` with the reason, and the confidence says it was
computed without it."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from flows.code_drop import code_drop
from flows.runtime import run_in_process
from tests.llm_helpers import InFlightKiller, needs_ai, pid_alive

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hello-service"


async def _flow_state(flow_run_id: str) -> str:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
    assert run.state is not None
    return run.state.type.value


@needs_ai
def test_model_process_killed_mid_request_costs_the_ai_signal_only(
        prefect_api_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    killer = InFlightKiller(monkeypatch, tmp_path, signal.SIGSEGV)
    report = run_in_process(code_drop, source=str(EXAMPLE), home=str(tmp_path / "home"), use_ai=True)
    killed = killer.join()
    assert not pid_alive(killed)

    assert report["ai"]["status"] == "unknown"
    assert report["ai"]["reason"] == "model process died: signal 11"
    assert report["analyzers"]["llm"]["status"] == "unknown"
    assert report["analyzers"]["llm"]["reason"] == "model process died: signal 11"
    ai_line = {c["signal"]: c for c in report["confidence_detail"]["contributions"]}["ai"]
    assert ai_line["why"] == "computed without the AI signal: model process died: signal 11"
    assert ai_line["weight"] == 0.0 and ai_line["contribution"] == 0.0
    # the rest of the drop went on: confidence, sandbox, validation, report
    assert 0.0 <= report["confidence"] <= 1.0
    assert report["sandbox"] in ("A", "B", "C")
    assert report["tests"]["passed"] > 0
    assert Path(report["report_path"]).is_file()
    assert "computed without the AI signal: model process died: signal 11" in \
        Path(report["report_path"]).with_suffix(".md").read_text()
    assert asyncio.run(_flow_state(report["flow_run_id"])) == "COMPLETED"
