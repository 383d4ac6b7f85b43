"""The flow result models and their published JSON schemas (schemas/results/) agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from pydantic import Field, create_model

from noa_core.results import DeployReport, DropReport, FlowResult, SwitchReport
from noa_core.results.schemas import SCHEMA_DIR, check_schemas, main, result_models, schema_text

ROOT = Path(__file__).resolve().parent.parent


def test_committed_schemas_match_the_models() -> None:
    problems = check_schemas()
    assert not problems, "regenerate with: python scripts/export_schemas.py\n" + "\n".join(problems)


def test_a_changed_model_fails_the_check_until_regenerated(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for path in SCHEMA_DIR.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert check_schemas(tmp_path) == []
    changed = create_model("DropReport", __base__=DropReport,
                           new_key=(int, Field(0, description="a key added without regenerating")))
    monkeypatch.setattr("noa_core.results.DropReport", changed)
    assert check_schemas(tmp_path) == [f"{tmp_path / 'DropReport.json'}: stale (DropReport changed)"]
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    assert main(["--write", "--dir", str(tmp_path)]) == 0
    assert check_schemas(tmp_path) == []
    assert "new_key" in json.loads((tmp_path / "DropReport.json").read_text(encoding="utf-8"))["properties"]


def test_export_script_checks_the_repository_schemas() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "export_schemas.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", sorted(result_models()))
def test_every_field_is_documented_and_the_schema_is_valid(name: str) -> None:
    model = result_models()[name]
    assert model.__doc__ and model.__doc__.strip()
    undocumented = [f for f, info in model.model_fields.items() if not info.description]
    assert not undocumented, f"{name}: fields without a description: {undocumented}"
    jsonschema.Draft202012Validator.check_schema(json.loads(schema_text(model)))


def test_dict_style_reads_of_a_result_return_its_json_form() -> None:
    report = SwitchReport.model_validate({"from": "old", "to": "new", "outcome": "switched", "reason": "ok",
                                          "duration_s": 1.5, "steps": [{"name": "route", "verdict": "passed"}]})
    assert report.from_app == "old" and report["from"] == "old" and "from" in report
    assert report["steps"] == [{"name": "route", "verdict": "passed", "duration_s": 0.0, "reason": ""}]
    assert report.get("nope", 7) == 7 and "nope" not in report
    with pytest.raises(KeyError):
        report["nope"]
    assert json.loads(report.model_dump_json())["from"] == "old"
    assert dict(report) == report.to_json()


def test_deploy_target_keys_outside_the_model_are_kept() -> None:
    report = DeployReport.model_validate({"app": "a", "env": "staging", "strategy": "blue-green",
                                          "outcome": "promoted", "image": "noa/a:1"})
    assert report["image"] == "noa/a:1" and report.to_json()["image"] == "noa/a:1"
    assert isinstance(report, FlowResult)
