"""Blue-green on the local target behind NOA's real Caddy, under load from another process."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from deploy_helpers import body_of, cleanup_home, deploy, failed_share, load, make_app

from noa_core.deploy.run import rollback_app
from noa_core.deploy.supervisor_client import ensure_supervisor


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    h = tmp_path / "home"
    yield h
    cleanup_home(h)


def test_blue_green_switch_and_rollback_under_load_fail_no_request(home: Path, tmp_path: Path) -> None:
    first = deploy(home, make_app(tmp_path, version="1.0"), "staging")
    assert first["outcome"] == "promoted" and first["reason"] == "first release"
    url = f"http://{first['endpoint']}/hello"
    assert body_of(url) == "hello from 1.0\n"
    with load(url, tmp_path / "load.txt") as hits:
        res = deploy(home, make_app(tmp_path, version="2.0"), "staging")
        time.sleep(0.5)
    failed, total, share = failed_share(hits)
    print(f"\nblue-green under load: {failed}/{total} failed ({share:.2%})")
    assert res["outcome"] == "promoted" and res["strategy"] == "blue-green"
    assert [s["name"] for s in res["steps"]] == ["health", "switch"]
    assert res["steps"][1]["metrics"]["drained"] is True
    assert failed == 0 and total > 50
    assert body_of(url) == "hello from 2.0\n"
    late = [h for h in hits if h.t > res["switched_at"] + 0.2]
    assert late, "no traffic after the switch"
    # the old (blue) instance is stopped
    st = ensure_supervisor(home).call("status")["instances"]
    assert sorted(i["state"] for i in st.values()) == ["running", "stopped"]

    # noa rollback: back to the previous good release, blue-green, under load
    with load(url, tmp_path / "load2.txt") as hits2:
        back = rollback_app(home, "svc", "staging")
    assert back["outcome"] == "rolled_back" and back["release"].startswith("svc-1.0-")
    assert failed_share(hits2)[0] == 0
    assert body_of(url) == "hello from 1.0\n"
    again = rollback_app(home, "svc", "staging")  # 2.0 was rolled back from: nothing good left
    assert again["outcome"] == "failed" and "no previous good release" in again["reason"]


def test_unhealthy_green_leaves_blue_serving_and_green_stopped(home: Path, tmp_path: Path) -> None:
    first = deploy(home, make_app(tmp_path, version="1.0"), "staging")
    url = f"http://{first['endpoint']}/hello"
    with load(url, tmp_path / "load.txt") as hits:
        res = deploy(home, make_app(tmp_path, version="2.0", mode="unhealthy"), "staging", health_timeout_s=3)
    assert res["outcome"] == "failed" and "health check failed" in res["reason"]
    assert failed_share(hits)[0] == 0
    assert body_of(url) == "hello from 1.0\n"
    states = {i["release_id"].split("-")[1]: i["state"]
              for i in ensure_supervisor(home).call("status")["instances"].values()}
    assert states["1.0"] == "running" and states["2.0"] in ("stopped", "crashed")


def test_supervisor_restarts_dead_caddy_and_crashed_app_with_routing_restored(home: Path, tmp_path: Path) -> None:
    first = deploy(home, make_app(tmp_path, version="1.0"), "staging")
    url = f"http://{first['endpoint']}/hello"
    client = ensure_supervisor(home)
    st = client.call("status")
    for name in ("router", "edge"):
        os.kill(st["caddy"][name]["pid"], signal.SIGKILL)
    app_pid = next(iter(st["instances"].values()))["pid"]
    os.killpg(app_pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    text = ""
    while time.monotonic() < deadline:
        try:
            text = body_of(url)
            if text == "hello from 1.0\n":
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    assert text == "hello from 1.0\n"
    st2 = client.call("status")
    assert st2["caddy"]["router"]["restarts"] == 1 and st2["caddy"]["edge"]["restarts"] == 1
    inst = next(iter(st2["instances"].values()))
    assert inst["restarts"] == 1 and inst["state"] == "running"
    assert Path(inst["logs"]).read_text().count("--- noa: start") == 2


@pytest.mark.slow
def test_blue_green_monitor_failure_switches_back_to_blue(home: Path, tmp_path: Path) -> None:
    first = deploy(home, make_app(tmp_path, version="1.0"), "staging")
    url = f"http://{first['endpoint']}/hello"
    with load(url, tmp_path / "load.txt"):
        res = deploy(home, make_app(tmp_path, version="2.0", mode="error"), "staging", monitor_s=5)
    assert res["outcome"] == "rolled_back" and res["steps"][-1]["name"] == "monitor"
    assert "error rate" in res["reason"]
    assert body_of(url) == "hello from 1.0\n"


@pytest.mark.slow
def test_a_new_supervisor_takes_over_after_the_old_one_was_killed(home: Path, tmp_path: Path) -> None:
    first = deploy(home, make_app(tmp_path, version="1.0"), "staging")
    url = f"http://{first['endpoint']}/hello"
    old = ensure_supervisor(home)
    os.kill(old.pid, signal.SIGKILL)
    new = ensure_supervisor(home)
    assert new.pid != old.pid
    st = new.call("status")
    assert [i["state"] for i in st["instances"].values()] == ["running"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if body_of(url) == "hello from 1.0\n":
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    assert body_of(url) == "hello from 1.0\n"  # same public port, same routing
    second = deploy(home, make_app(tmp_path, version="2.0"), "staging")
    assert second["outcome"] == "promoted" and body_of(url) == "hello from 2.0\n"
