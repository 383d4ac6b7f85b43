"""Deploy pieces without processes: analysis verdicts, access-log counts, Caddy config,
release history, options from noa.yaml, and the "skipped" outcome."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deploy_helpers import make_app

from noa_core.deploy.accesslog import AccessCounter, LogTail
from noa_core.deploy.analysis import AnalysisConfig, StepAnalysis, parse_prometheus_errors
from noa_core.deploy.caddy_config import edge_config, router_config, weights_path
from noa_core.deploy.interface import LATENCY_BUCKETS_MS, Instance, Release, Upstream, UpstreamCounts
from noa_core.deploy.releases import ReleaseStore
from noa_core.deploy.run import NO_TARGET, deploy_options, deploy_project
from noa_core.errors import BadInput
from noa_core.manifest import parse_manifest


def counts(endpoint: str, ok_ms: list[float], failed: int = 0) -> UpstreamCounts:
    c = AccessCounter()
    for i, ms in enumerate(ok_ms):
        status = 500 if i < failed else 200
        c.feed(json.dumps({"status": status, "duration": ms / 1000, "upstream": endpoint, "noa_app": "a"}))
    return c.counts("a")[endpoint]


CFG = AnalysisConfig(interval_s=1, failure_limit=1)


def test_error_rate_fails_after_the_failure_limit_and_a_good_canary_passes() -> None:
    an = StepAnalysis(CFG, "c", "s", {})
    bad = {"c": counts("c", [2] * 4, failed=4), "s": counts("s", [2] * 50)}
    an.measure(0.1, bad)
    assert not an.failed  # one failed measurement is within failure_limit=1
    an.measure(0.2, bad)
    assert an.failed and an.verdict() == "failed"
    assert "error rate 100.0%" in an.last.reasons[0]

    good = StepAnalysis(CFG, "c", "s", {})
    for t in range(5):
        good.measure(t, {"c": counts("c", [2] * 30), "s": counts("s", [2] * 100)})
    assert good.verdict() == "passed"


def test_a_three_times_slower_canary_fails_the_latency_condition() -> None:
    an = StepAnalysis(CFG, "c", "s", {})
    reading = {"c": counts("c", [60] * 20), "s": counts("s", [20] * 100)}
    an.measure(0.1, reading)
    an.measure(0.2, reading)
    assert an.failed
    assert any("slower than stable" in r for r in an.last.reasons)
    # 1 ms against 2 ms is a ratio of 2 but noise: min_latency_delta_ms keeps it from failing
    quick = StepAnalysis(CFG, "c", "s", {})
    for t in range(3):
        quick.measure(t, {"c": counts("c", [2.5] * 20), "s": counts("s", [1] * 100)})
    assert not quick.failed


def test_a_dead_canary_fails_at_once_and_no_traffic_is_inconclusive() -> None:
    an = StepAnalysis(CFG, "c", "s", {})
    an.measure(0.1, {}, canary_alive=False, canary_reason="exited with code 3")
    assert an.failed and "canary down: exited with code 3" in an.last.reasons
    idle = StepAnalysis(CFG, "c", "s", {})
    idle.measure(0.1, {})
    assert idle.verdict() == "inconclusive"


def test_windows_subtract_the_step_start_and_survive_counter_resets() -> None:
    start = {"c": counts("c", [2] * 10, failed=10)}
    an = StepAnalysis(CFG, "c", None, start)
    m = an.measure(0.1, {"c": counts("c", [2] * 12, failed=10)})  # 2 new, both fine
    assert (m.canary.requests, m.canary.failures) == (2, 0)
    m = an.measure(0.2, {"c": counts("c", [2] * 3)})  # counters restarted: whole reading
    assert m.canary.requests == 3


def test_quantiles_come_from_the_bucket_bounds() -> None:
    c = counts("c", [1] * 98 + [100, 100])
    assert c.quantile_ms(0.5) == 1 and c.quantile_ms(0.99) == 100
    assert len(c.latency_buckets) == len(LATENCY_BUCKETS_MS) + 1
    assert UpstreamCounts("x").quantile_ms(0.99) is None


def test_prometheus_request_counters_give_requests_and_5xx() -> None:
    text = ('# TYPE http_requests_total counter\n'
            'http_requests_total{method="GET",code="200"} 90\n'
            'http_requests_total{method="GET",code="503"} 10\n'
            'process_cpu_seconds_total 3.2\n')
    assert parse_prometheus_errors(text) == (100.0, 10.0)
    assert parse_prometheus_errors("process_cpu_seconds_total 3.2\n") is None


def test_log_tail_reads_only_complete_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(json.dumps({"status": 200, "duration": 0.001, "upstream": "u", "noa_app": "a"}) + "\n")
    counter = AccessCounter()
    tail = LogTail(log, counter)
    tail.start_at_end()
    with log.open("a") as fh:
        fh.write(json.dumps({"status": 502, "duration": 0.002, "upstream": "u", "noa_app": "a"}) + "\n{\"sta")
    tail.poll()
    assert counter.counts("a")["u"].requests == 1 and counter.counts("a")["u"].failures == 1
    with log.open("a") as fh:
        fh.write('tus": 200, "duration": 0.001, "upstream": "u", "noa_app": "a"}\n')
    tail.poll()
    assert counter.counts("a")["u"].requests == 2


def test_caddy_configs_route_by_weight_and_the_edge_retries() -> None:
    r = router_config("127.0.0.1:1", "/x/access.log",
                      {"svc-production": ("127.0.0.1:9", [Upstream("127.0.0.1:7", 19), Upstream("127.0.0.1:8", 1)])})
    server = r["apps"]["http"]["servers"]["app-svc-production"]
    proxy = server["routes"][0]["handle"][2]
    assert proxy["load_balancing"]["selection_policy"] == {"policy": "weighted_round_robin", "weights": [19, 1]}
    assert weights_path("svc-production").endswith("/routes/0/handle/2/load_balancing/selection_policy/weights")
    e = edge_config("127.0.0.1:2", {"svc-production": ("127.0.0.1:80", "127.0.0.1:9")})
    lb = e["apps"]["http"]["servers"]["app-svc-production"]["routes"][0]["handle"][0]["load_balancing"]
    assert lb["try_duration"] and "POST" not in lb["retry_match"][0]["method"]


def rel(rid: str, tmp_path: Path) -> Release:
    src = tmp_path / rid
    src.mkdir(exist_ok=True)
    return Release(app="a", release_id=rid, version="1", source=str(src), content_hash="h", command=("x",))


def test_previous_good_skips_failed_and_rolled_back_releases(tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path, "production", "a")
    inst = Instance("a", "r", "local", "i", "127.0.0.1", 1)
    store.set_active(rel("r1", tmp_path), inst)
    store.set_active(rel("r2", tmp_path), inst)
    store.add_history(rel("r3", tmp_path), "failed")
    assert store.previous_good().release_id == "r1"
    store.set_active(rel("r1", tmp_path), inst, "rolled_back_to")
    store.add_history(rel("r2", tmp_path), "rolled_back")
    assert store.previous_good() is None  # r2 was rolled back from, r3 failed


def test_options_staging_is_blue_green_production_follows_noa_yaml(tmp_path: Path) -> None:
    m = parse_manifest("name: a\nrun: {command: [x]}\ndeploy: {interval_s: 7, canary_steps: [10, 100]}\n")
    assert deploy_options(m, "staging", None, {})[0] == "blue-green"
    strategy, opts = deploy_options(m, "production", None, {"tick_s": 0.1})
    assert strategy == "canary" and opts.steps == (10, 100) and opts.analysis.interval_s == 7
    assert opts.analysis.tick_s == 0.1
    with pytest.raises(BadInput):
        deploy_options(m, "qa", None, {})
    with pytest.raises(BadInput):
        deploy_options(m, "production", None, {"steps": [50, 20]})


def test_a_project_without_run_command_is_skipped(tmp_path: Path) -> None:
    d = tmp_path / "lib"
    d.mkdir()
    (d / "noa.yaml").write_text("name: lib\n")
    res = deploy_project(tmp_path / "home", d, "production")
    assert res["outcome"] == "skipped" and res["reason"] == NO_TARGET
    assert not (tmp_path / "home" / "deploy" / "supervisor.json").exists()  # nothing was started
    assert make_app(tmp_path, version="1").is_dir()


def test_old_release_trees_are_pruned_but_rollback_targets_kept(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = ReleaseStore(home, "production", "a")
    inst = Instance("a", "r", "local", "i", "127.0.0.1", 1)
    rels = []
    for n in range(4):
        src = home / "deploy" / "trees" / f"r{n}" / "tree"
        src.mkdir(parents=True)
        rels.append(Release(app="a", release_id=f"r{n}", version="1", source=str(src), content_hash="h",
                            command=("x",)))
    store.set_active(rels[0], inst)
    store.add_history(rels[1], "failed")
    store.set_active(rels[2], inst)
    store.set_active(rels[3], inst)
    assert store.prune_trees(home, keep=2) == ["r0", "r1"]
    assert sorted(p.name for p in (home / "deploy" / "trees").iterdir()) == ["r2", "r3"]
    assert store.previous_good().release_id == "r2"


def test_supervisor_whose_noa_home_is_deleted_exits_with_its_caddies(tmp_path: Path) -> None:
    """Nobody can reach a supervisor whose NOA_HOME is gone: it stops its Caddy processes and exits."""
    import shutil
    import time

    from noa_core.deploy.supervisor_client import ensure_supervisor

    home = tmp_path / "home"
    client = ensure_supervisor(home)
    caddies = [int(c["pid"]) for c in client.call("status")["caddy"].values()]
    assert len(caddies) == 2 and all(Path(f"/proc/{p}").exists() for p in caddies)
    shutil.rmtree(home)
    deadline = time.monotonic() + 15
    while Path(f"/proc/{client.pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = Path(f"/proc/{client.pid}").exists() and "zombie" not in Path(f"/proc/{client.pid}/status").read_text()
    assert not alive, "the supervisor outlived its NOA_HOME"
    deadline = time.monotonic() + 10
    while [p for p in caddies if Path(f"/proc/{p}").exists()] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in caddies if Path(f"/proc/{p}").exists()], "its Caddy processes outlived it"
