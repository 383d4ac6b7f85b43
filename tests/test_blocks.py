"""The noa-workspace block: a flow run configured by a saved block keeps its secret out of reports."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from blocks.workspace import NoaWorkspace
from flows.code_drop import code_drop
from flows.runtime import run_in_process

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hello-service"


def test_code_drop_uses_a_saved_workspace_block(prefect_api_url: str, tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "registry.db"
    db.parent.mkdir()
    password_url = f"sqlite:///{db}?password=hunter2-not-a-real-secret"
    NoaWorkspace(home=str(tmp_path / "ws-home"), database_url=SecretStr(password_url)).save("test-ws", overwrite=True)

    loaded = NoaWorkspace.load("test-ws")
    assert "hunter2" not in repr(loaded) and "hunter2" not in str(loaded.model_dump())

    report = run_in_process(code_drop, source=str(EXAMPLE), workspace="test-ws", use_ai=False)
    assert Path(report["report_path"]).is_relative_to(tmp_path / "ws-home")
    assert db.exists()  # the registry went to the block's database, not NOA_HOME/registry.db
    assert not (tmp_path / "ws-home" / "registry.db").exists()
    text = Path(report["report_path"]).read_text() + report.model_dump_json()
    assert "hunter2" not in text
