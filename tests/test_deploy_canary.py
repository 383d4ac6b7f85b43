"""Canary with analysis on the local target behind NOA's real Caddy, under load from
another process: a good canary is promoted with no failed request; a canary that fails
every request, one three times slower, and one that crashes are each rolled back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_helpers import body_of, cleanup_home, deploy, failed_share, load, make_app

STEPS = [5, 25, 50, 100]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    h = tmp_path / "home"
    yield h
    cleanup_home(h)


def stable(home: Path, tmp_path: Path, **kw: object) -> str:
    first = deploy(home, make_app(tmp_path, version="1.0", **kw), "production")
    assert first["outcome"] == "promoted"
    return f"http://{first['endpoint']}/hello"


def test_good_canary_is_promoted_through_every_step_with_no_failed_request(home: Path, tmp_path: Path) -> None:
    url = stable(home, tmp_path)
    with load(url, tmp_path / "load.txt") as hits:
        res = deploy(home, make_app(tmp_path, version="2.0"), "production", interval_s=1.0)
    failed, total, share = failed_share(hits)
    print(f"\ngood canary: {failed}/{total} failed")
    assert res["outcome"] == "promoted" and res["strategy"] == "canary"
    canary_steps = [s for s in res["steps"] if s["name"].startswith("canary")]
    assert [s["weight"] for s in canary_steps] == STEPS
    assert all(s["verdict"] in ("passed", "inconclusive") for s in canary_steps)
    assert canary_steps[-1]["verdict"] == "passed" and canary_steps[-1]["metrics"]["canary"]["requests"] > 0
    assert failed == 0 and total > 100
    assert body_of(url) == "hello from 2.0\n"


def test_canary_failing_every_request_is_rolled_back_within_seconds(home: Path, tmp_path: Path) -> None:
    url = stable(home, tmp_path)
    t0 = time.time()
    with load(url, tmp_path / "load.txt", rps=100) as hits:
        res = deploy(home, make_app(tmp_path, version="2.0", mode="error"), "production", interval_s=2.0)
        time.sleep(0.5)
    failed, total, share = failed_share(hits)
    bad = [h for h in hits if h.failed]
    assert res["outcome"] == "rolled_back" and "error rate" in res["reason"]
    assert res["steps"][-1]["verdict"] == "failed"
    assert res["steps"][-1]["metrics"]["app_metrics"]["errors"] > 0  # the canary's own /metrics agree
    weight = res["steps"][-1]["weight"]
    detection = res["weight_zero_at"] - bad[0].t
    duration = hits[-1].t - t0
    print(f"\nbad canary: {failed}/{total} requests failed ({share:.2%}) over {duration:.1f} s; "
          f"failed at {weight}%, first failed request -> weight 0 in {detection:.2f} s; "
          f"weight x detection / duration = {weight / 100 * detection / duration:.2%}")
    # no failed request once the canary's weight is 0 (allowing for requests already in flight)
    assert all(h.t <= res["weight_zero_at"] + 0.3 for h in bad)
    assert detection < 10
    assert body_of(url) == "hello from 1.0\n"


@pytest.mark.slow
def test_three_times_slower_canary_is_caught_by_the_latency_condition(home: Path, tmp_path: Path) -> None:
    url = stable(home, tmp_path, delay_ms=20)
    with load(url, tmp_path / "load.txt", rps=60) as hits:
        res = deploy(home, make_app(tmp_path, version="2.0", delay_ms=60), "production", interval_s=1.5)
    print(f"\nslow canary: {res['reason']}")
    assert res["outcome"] == "rolled_back" and "slower than stable" in res["reason"]
    assert failed_share(hits)[0] == 0
    assert body_of(url) == "hello from 1.0\n"


@pytest.mark.slow
def test_crashing_canary_is_detected_and_rolled_back(home: Path, tmp_path: Path) -> None:
    url = stable(home, tmp_path)
    with load(url, tmp_path / "load.txt") as hits:
        res = deploy(home, make_app(tmp_path, version="2.0", mode="crash", crash_after=5), "production",
                     interval_s=1.5)
    failed, total, _ = failed_share(hits)
    print(f"\ncrashing canary: {res['reason']}; {failed}/{total} failed")
    assert res["outcome"] == "rolled_back" and "canary down" in res["reason"]
    assert body_of(url) == "hello from 1.0\n"
