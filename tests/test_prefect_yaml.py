"""prefect.yaml is what `prefect deploy --all` reads: every deployment there must point at a
real flow and pass only parameters that flow accepts."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENTS = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=[d["name"] for d in DEPLOYMENTS])
def test_deployment_points_at_a_flow_that_takes_its_parameters(deployment: dict) -> None:
    from prefect import Flow

    path, name = deployment["entrypoint"].split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, name)
    assert isinstance(flow, Flow)
    signature = inspect.signature(flow.fn)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    given = dict(deployment.get("parameters") or {})
    for schedule in deployment.get("schedules") or []:
        given.update(schedule.get("parameters") or {})
    unknown = [k for k in given if k not in signature.parameters and not takes_any]
    assert not unknown, f"{deployment['name']}: {name}() takes no {unknown}"
    assert deployment["work_pool"]["name"]


def test_deployment_names_are_unique() -> None:
    names = [d["name"] for d in DEPLOYMENTS]
    assert len(names) == len(set(names))
