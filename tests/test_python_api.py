"""The public Python surface: ``import noa`` and the README's "Use from Python" example."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import noa
from noa_core.results import FlowResult

ROOT = Path(__file__).resolve().parent.parent


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Use from Python\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "the README's Use from Python section has no python block"
    return found.group(1)


def test_every_exported_flow_says_what_it_returns_and_is_documented() -> None:
    for name in noa.__all__:
        value = getattr(noa, name)
        if isinstance(value, type):
            assert issubclass(value, FlowResult) or value.__module__.startswith("noa_core.results"), name
            continue
        doc = inspect.getdoc(value.fn if hasattr(value, "fn") else value)
        assert doc and len(doc) > 20, f"noa.{name} has no docstring"
        if hasattr(value, "fn"):  # a Prefect flow
            returned = inspect.signature(value.fn).return_annotation
            assert returned not in ("dict[str, Any]", "dict"), f"noa.{name} still returns a dict"
    assert "What they need running" in (noa.__doc__ or "") and "Errors" in (noa.__doc__ or "")
    with pytest.raises(AttributeError):
        noa.not_a_flow  # noqa: B018


def test_import_noa_loads_no_flow_until_one_is_used() -> None:
    code = ("import sys, noa; before = 'prefect' in sys.modules or 'flows.code_drop' in sys.modules; "
            "noa.code_drop; print(before, 'flows.code_drop' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "True"]


def test_readme_example_runs_and_prints_the_models_fields(prefect_api_url: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(readme_example(), encoding="utf-8")
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url, "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("NOA_HOME", None)
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    assert lines["result"] == "DropReport"
    assert lines["project"] == "hello-service"
    assert lines["sandbox"] in ("A", "B", "C")
    status, passed = lines["tests"].split()
    assert status == "passed" and int(passed) > 0
    assert int(lines["keys"]) == len(noa.DropReport.model_fields)
