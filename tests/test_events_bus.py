"""The event bus and the seed's subscribers: change-log logger (real CL tree), metrics collector,
trace recorder, and the rollback feedback to the orchestrator."""

from __future__ import annotations

import logging

from noa_core.events import (
    CallbackSubscriber,
    ChangeLogSubscriber,
    Event,
    EventBus,
    MetricsSubscriber,
    RollbackFeedback,
    TraceSubscriber,
)
from noa_core.observability.metrics import NoaMetrics
from noa_core.observability.tracing import make_tracing, read_spans
from tests.server_helpers import settings_for


def test_a_failing_subscriber_does_not_stop_the_others():
    seen = []

    def boom(event):
        raise ValueError("subscriber broke")

    bus = EventBus([CallbackSubscriber("first", boom), CallbackSubscriber("second", lambda e: seen.append(e.kind)),
                    CallbackSubscriber("deploys-only", lambda e: "ok: saw it", kinds=["deploy"])])
    out = bus.emit("stage.finished", "hello", payload={"stage": "build"})
    assert [d.status for d in out] == ["error: ValueError: subscriber broke", "ok",
                                       "skipped: not subscribed to this kind"]
    assert seen == ["stage.finished"]
    assert bus.emit("deploy.promoted", "hello")[2].status == "ok: saw it"


def test_change_log_subscriber_records_final_facts_in_the_cl_tree(tmp_path):
    from noa_core.cltree import change_entries

    settings = settings_for(tmp_path)
    sub = ChangeLogSubscriber(settings)
    bus = EventBus([sub])
    assert bus.emit("deploy.failed", "hello", "critical", payload={"env": "staging", "api_key": "s3cret"},
                    run_id="run-1")[0].status == "ok"
    assert bus.emit("drop.submitted", "x")[0].status == "skipped: not a change"
    assert bus.emit("http.request", "x")[0].status == "skipped: not a change"
    entries = change_entries(settings)
    assert [(e.kind, e.subject) for e in entries] == [("release", "hello")]
    assert entries[0].payload["event"] == "deploy.failed" and entries[0].payload["run_id"] == "run-1"
    assert "s3cret" not in str(entries[0].payload)  # the CL tree scrubs secret-looking keys
    assert ChangeLogSubscriber(settings, record=None)._record is not None  # the real one is importable
    no_tree = ChangeLogSubscriber(settings)
    no_tree._record = None
    assert no_tree.handle(Event("merge.finished", "D")) == "skipped: CL tree not available"


def test_metrics_subscriber_feeds_the_dashboard_series():
    m = NoaMetrics()
    bus = EventBus([MetricsSubscriber(m)])
    bus.emit("stage.finished", "hello", payload={"stage": "build", "status": "passed"}, duration_s=2.5)
    bus.emit("stage.finished", "hello", payload={"stage": "build", "status": "failed"}, duration_s=1.0)
    bus.emit("flow.finished", "hello", payload={"flow": "noa_pipeline", "outcome": "completed"}, duration_s=40)
    bus.emit("deploy.rolled_back", "hello", "critical", payload={"env": "production", "outcome": "rolled_back"})
    bus.emit("rollback.finished", "hello", payload={"app": "hello"})
    bus.emit("swarm.queue", "python", payload={"language": "python", "depth": 7})
    bus.emit("canary.analysis", "hello", payload={"app": "hello", "error_rate": 0.25})
    bus.emit("backup.finished", "home", payload={"backend": "local", "bytes": 12345})
    text = m.exposition().decode()
    for line in ('noa_stage_runs_total{stage="build",status="passed"} 1.0',
                 'noa_stage_seconds_count{stage="build"} 2.0',
                 'noa_flow_runs_total{flow="noa_pipeline",outcome="completed"} 1.0',
                 'noa_deploys_total{env="production",outcome="rolled_back"} 1.0',
                 'noa_rollbacks_total{app="hello"} 1.0', 'noa_swarm_queue_depth{language="python"} 7.0',
                 'noa_canary_error_rate{app="hello"} 0.25', 'noa_backup_bytes{backend="local"} 12345.0',
                 'noa_events_total{kind="deploy.rolled_back",severity="critical"} 1.0'):
        assert line in text, line


def test_trace_subscriber_links_events_to_run_ids(tmp_path):
    tracing = make_tracing(tmp_path / "traces", batch=False)
    EventBus([TraceSubscriber(tracing)]).emit("stage.finished", "hello", payload={"stage": "security"},
                                              run_id="0b7e-run", duration_s=3.0)
    tracing.flush()
    spans = read_spans(tracing.file)
    assert spans[0]["name"] == "event stage.finished"
    assert spans[0]["attributes"]["noa.run_id"] == "0b7e-run"
    assert spans[0]["events"][0]["attributes"] == {"stage": "security"}


def test_deploy_failure_feeds_back_a_rollback():
    started = []
    bus = EventBus([RollbackFeedback(lambda app, env: started.append((app, env)) or "run-42")],
                   logger=logging.getLogger("t"))
    assert bus.emit("deploy.failed", "hello", "critical", payload={"env": "staging"})[0].status == "ok: rollback run-42"
    assert bus.emit("monitor.alarm", "web", "critical", payload={"app": "web"})[0].status.startswith("ok")
    assert bus.emit("deploy.failed", "x", payload={"outcome": "rolled_back"})[0].status.startswith("skipped")
    assert bus.emit("deploy.promoted", "x")[0].status.startswith("skipped")
    assert started == [("hello", "staging"), ("web", "production")]
