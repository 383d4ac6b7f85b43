"""Alerts through a Prefect notification block (webhook, against a receiver on 127.0.0.1): critical
events alert, the rest are logged as JSON lines; and every event goes to Prefect with emit_event."""

from __future__ import annotations

import json
import time
import uuid

import httpx
from fastapi.testclient import TestClient

from noa_core.events import (
    AlertManager,
    Event,
    EventBus,
    PrefectBlockNotifier,
    PrefectEventSubscriber,
)
from noa_core.observability.logs import json_logger, read_log_lines
from noa_core.server.app import create_app
from tests.server_helpers import (
    bearer,
    free_port,
    settings_for,
    tokens,
    webhook_receiver,
)


def test_critical_events_alert_through_the_webhook_block_the_rest_are_logged(tmp_path):
    log = json_logger(tmp_path / "logs", "alerts")
    with webhook_receiver() as receiver:
        manager = AlertManager(PrefectBlockNotifier.webhook(receiver.url), log)
        bus = EventBus([manager])
        assert bus.emit("stage.finished", "hello", "info")[0].status == "ok: logged"
        assert bus.emit("deploy.failed", "hello", "critical", payload={"env": "production"},
                        run_id="r-1")[0].status == "ok: alerted"
        got = receiver.wait(1)
    assert len(got) == 1 and got[0]["subject"] == "NOA critical: deploy.failed hello"
    body = json.loads(got[0]["body"])
    assert body["payload"] == {"env": "production"} and body["run_id"] == "r-1"
    lines = read_log_lines(tmp_path / "logs", "alerts")
    assert [(line["event"], line["level"]) for line in lines] == [("stage.finished", "info"),
                                                                  ("deploy.failed", "critical")]
    assert lines[1]["run_id"] == "r-1"


def test_an_unreachable_receiver_is_reported_not_raised(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/hook"
    manager = AlertManager(PrefectBlockNotifier.webhook(dead, timeout=2), json_logger(tmp_path, "a"))
    status = EventBus([manager]).emit("monitor.alarm", "web", "critical")[0].status
    assert status.startswith("error: ConnectError") and manager.failed == 1


def test_critical_event_posted_to_the_api_alerts(tmp_path):
    with webhook_receiver() as receiver:
        app = create_app(settings_for(tmp_path), notifier=PrefectBlockNotifier.webhook(receiver.url),
                         schedule_backup=None, prefect_events=False)
        toks = tokens(app)
        with TestClient(app) as client:
            r = client.post("/v1/events", headers=bearer(toks["write"]),
                            json={"kind": "canary.failed", "subject": "hello", "severity": "critical",
                                  "payload": {"error_rate": 0.4}})
            assert r.status_code == 202
            statuses = {d["subscriber"]: d["status"] for d in r.json()["deliveries"]}
            assert statuses["alerts"] == "ok: alerted" and statuses["changelog"] == "skipped: not a change"
            assert 'noa_alerts_total{outcome="sent"} 1.0' in client.get("/metrics").text
        assert receiver.wait(1)[0]["subject"] == "NOA critical: canary.failed hello"


def test_saved_notification_block_is_loaded_by_slug(tmp_path, prefect_api_url):
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    name = f"noa-alerts-{uuid.uuid4().hex[:6]}"
    with webhook_receiver() as receiver:
        CustomWebhookNotificationBlock(name="noa", url=receiver.url, allow_private_urls=True,
                                       json_data={"subject": "{{subject}}", "body": "{{body}}"}).save(name)
        notifier = PrefectBlockNotifier.load(f"custom-webhook/{name}")
        status = EventBus([AlertManager(notifier, json_logger(tmp_path, "b"))]).emit(
            "deploy.failed", "hello", "critical")[0].status
        assert status == "ok: alerted"
        assert receiver.wait(1)[0]["subject"] == "NOA critical: deploy.failed hello"


def test_every_event_goes_to_prefect(prefect_api_url):
    from prefect.events.worker import EventsWorker

    subject = f"hello-{uuid.uuid4().hex[:6]}"
    sub = PrefectEventSubscriber(enabled=True)
    assert sub.handle(Event("deploy.failed", subject, "critical", payload={"env": "staging"},
                            run_id=str(uuid.uuid4()))) == "ok"
    EventsWorker.drain_all()
    found = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not found:
        r = httpx.post(f"{prefect_api_url}/events/filter",
                       json={"filter": {"event": {"name": ["noa.deploy.failed"]}}, "limit": 50})
        r.raise_for_status()
        found = [e for e in r.json()["events"] if e["resource"]["prefect.resource.name"] == subject]
        time.sleep(0.3)
    assert found, "the event did not reach the Prefect server"
    assert found[0]["payload"]["env"] == "staging"
    assert found[0]["related"][0]["prefect.resource.role"] == "flow-run"
    assert PrefectEventSubscriber(enabled=False).handle(Event("x.y", "s")) == "skipped: no Prefect API configured"
