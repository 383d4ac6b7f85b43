"""Releases and rollbacks recorded by the deploy controller are Prefect events ``noa.<kind>.recorded``
(the shape of the flows' change-log step), read back from the session's real Prefect server."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_code_drop_flow import noa_events as events_named

from noa_core.deploy.releases import emit_recorded_event, record_in_cltree

RELEASE = {"app": "hello", "env": "staging", "strategy": "canary", "outcome": "promoted", "release": "r-0001",
           "reason": "", "content_hash": "b3-abc", "version": "1.2.0", "steps": [
               {"name": "canary 10%", "weight": 10, "verdict": "pass", "duration_s": 1.5}]}


def by_entry(events: list[dict]) -> dict[str, dict]:
    return {e["payload"].get("cl_entry"): e for e in events}


def test_release_and_rollback_reach_prefect(prefect_api_url: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", prefect_api_url)
    home = tmp_path / "home"
    release_id = record_in_cltree(home, "release", "hello", RELEASE)
    rollback_id = record_in_cltree(home, "rollback", "hello", {**RELEASE, "outcome": "rolled_back",
                                                               "reason": "canary error rate 12%"})
    assert not release_id.startswith("skipped") and not rollback_id.startswith("skipped")

    releases = by_entry(events_named(prefect_api_url, "noa.release.recorded",
                                     until=lambda found: release_id in by_entry(found)))
    rollbacks = by_entry(events_named(prefect_api_url, "noa.rollback.recorded",
                                      until=lambda found: rollback_id in by_entry(found)))
    assert release_id in releases and rollback_id in rollbacks

    release = releases[release_id]
    assert release["resource"]["prefect.resource.id"] == "noa.release.hello"
    assert release["resource"]["prefect.resource.name"] == "hello"
    assert release["resource"]["noa.severity"] == "info"
    payload = release["payload"]
    assert {k: payload[k] for k in ("app", "env", "strategy", "outcome", "release", "version")} == \
        {"app": "hello", "env": "staging", "strategy": "canary", "outcome": "promoted", "release": "r-0001",
         "version": "1.2.0"}
    assert "steps" not in payload  # scalars only; the CL tree entry has the rest

    rollback = rollbacks[rollback_id]
    assert rollback["resource"]["prefect.resource.id"] == "noa.rollback.hello"
    assert rollback["resource"]["noa.severity"] == "error"
    assert rollback["payload"]["reason"] == "canary error rate 12%"

    # the CL tree entry the event points at is the one recorded
    from noa_core.cltree import change_entries
    from noa_core.config import NoaSettings

    entries = {e.id: e for e in change_entries(NoaSettings(home=home), kind="release")}
    assert entries[release_id].payload["release"] == "r-0001"


def test_same_event_shape_as_the_flows_change_log_step(prefect_api_url: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from noa_core.config import NoaSettings
    from tasks.changelog import record_step

    monkeypatch.setenv("PREFECT_API_URL", prefect_api_url)
    from_deploy = record_in_cltree(tmp_path / "a", "release", "shape", RELEASE)
    from_flow = record_step(NoaSettings(home=tmp_path / "b"), "release", "shape", RELEASE)
    assert from_flow["status"] == "recorded" and from_flow["event"] == "ok"
    ours = {from_deploy, from_flow["id"]}
    events = by_entry(events_named(prefect_api_url, "noa.release.recorded",
                                   until=lambda found: ours <= set(by_entry(found))))
    deploy_event, flow_event = events[from_deploy], events[from_flow["id"]]
    assert deploy_event["resource"] == flow_event["resource"]
    assert deploy_event["related"] == flow_event["related"]
    strip = {"cl_entry", "noa_event_id"}
    assert {k: v for k, v in deploy_event["payload"].items() if k not in strip} == \
        {k: v for k, v in flow_event["payload"].items() if k not in strip}


def test_without_a_prefect_api_the_release_is_recorded_and_no_event_sent(
        prefect_api_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert emit_recorded_event("release", "quiet", RELEASE, "no-entry").startswith("skipped: ")
    silent = record_in_cltree(home, "release", "quiet", RELEASE)
    assert not silent.startswith("skipped")
    # one sent afterwards arrives; the one before it (same queue, same server) never did
    monkeypatch.setenv("PREFECT_API_URL", prefect_api_url)
    loud = record_in_cltree(home, "release", "quiet", {**RELEASE, "release": "r-0002"})
    events = by_entry(events_named(prefect_api_url, "noa.release.recorded",
                                   until=lambda found: loud in by_entry(found)))
    assert loud in events and silent not in events
