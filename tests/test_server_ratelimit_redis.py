"""Rate limits in Redis (``NOA_REDIS_URL``): several server processes share one budget per token; the
buckets refill, expire when idle, and an unreachable Redis degrades to per-process limits (never a 500)."""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from noa_core.server.app import create_app
from noa_core.server.ratelimit import (
    DEFAULT_NAMESPACE,
    RateLimit,
    RedisTokenBuckets,
    TokenBuckets,
)
from noa_core.storage.cache import MemoryCache
from tests.server_helpers import bearer, free_port, settings_for, tokens

REDIS_URL = "redis://127.0.0.1:6379/0"
SLOW = RateLimit(rate_per_s=0.01, burst=4)  # one token back every 100 s: nothing refills during a test


@pytest.fixture()
def raw_redis() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    yield client
    client.close()


@pytest.fixture()
def namespace(raw_redis: redis.Redis) -> Iterator[str]:
    ns = f"noa-test-{uuid.uuid4().hex[:10]}:ratelimit:"
    yield ns
    keys = list(raw_redis.scan_iter(match=ns + "*"))
    if keys:
        raw_redis.delete(*keys)


def pair(namespace: str, limit: RateLimit) -> tuple[RedisTokenBuckets, RedisTokenBuckets]:
    """Two limiters with their own connections, as two server processes would have."""
    return (RedisTokenBuckets(REDIS_URL, limit, namespace=namespace),
            RedisTokenBuckets(REDIS_URL, limit, namespace=namespace))


def test_two_limiters_share_one_budget_per_token(namespace: str) -> None:
    a, b = pair(namespace, SLOW)
    assert [a.take("tok"), b.take("tok"), a.take("tok"), b.take("tok")] == [0.0] * 4
    wait_a, wait_b = a.take("tok"), b.take("tok")
    assert wait_a > 0 and wait_b > 0
    assert 50 < wait_a <= 100 and 50 < wait_b <= 100  # about one token at 0.01/s
    # in-process buckets would each have had a full burst left: the budget really was shared
    local = TokenBuckets(SLOW)
    assert local.take("tok") == 0.0
    assert a.fallbacks == 0 and b.fallbacks == 0


def test_distinct_tokens_do_not_interfere(namespace: str) -> None:
    a, b = pair(namespace, SLOW)
    for i in range(4):
        assert (a if i % 2 else b).take("spent") == 0.0
    assert a.take("spent") > 0
    assert [b.take("fresh"), a.take("fresh"), b.take("fresh"), a.take("fresh")] == [0.0] * 4
    assert b.take("fresh") > 0 and a.take("spent") > 0


def test_a_token_with_its_own_rate_gets_that_rate_everywhere(namespace: str) -> None:
    a, b = pair(namespace, RateLimit(rate_per_s=1000.0, burst=2))
    # the token's own slow rate applies (burst stays the default's 2, deeper than the rate)
    assert a.take("slow", rate_per_s=0.01) == 0.0 and b.take("slow", rate_per_s=0.01) == 0.0
    assert a.take("slow", rate_per_s=0.01) > 50


def test_bucket_refills_after_the_announced_wait(namespace: str) -> None:
    a, b = pair(namespace, RateLimit(rate_per_s=4.0, burst=2))
    wait = 0.0
    for i in range(50):  # spend whatever is there, alternating; refills between calls are allowed for
        wait = (a if i % 2 else b).take("tok")
        if wait:
            break
    assert 0 < wait <= 0.25
    time.sleep(wait + 0.02)
    assert b.take("tok") == 0.0  # what Retry-After promised


def test_idle_buckets_expire(namespace: str, raw_redis: redis.Redis) -> None:
    limit = RateLimit(rate_per_s=0.5, burst=3)
    a, _ = pair(namespace, limit)
    a.take("tok")
    key = namespace + "tok"
    assert raw_redis.hgetall(key)  # the bucket lives under the namespace
    ttl_ms = raw_redis.pttl(key)
    # expires once it would be full again (1 token at 0.5/s = 2 s) plus a second: a missing bucket is full
    assert 0 < ttl_ms <= math.ceil(1 / 0.5 * 1000) + 1000


def test_unreachable_redis_limits_per_process_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    down = RedisTokenBuckets(f"redis://127.0.0.1:{free_port()}/0", RateLimit(rate_per_s=0.01, burst=2),
                             registry=registry, socket_timeout=0.2, retry_after_s=60)
    with caplog.at_level(logging.INFO, logger="noa_core.server.ratelimit"):
        waits = [down.take("tok") for _ in range(4)]
    assert waits[:2] == [0.0, 0.0] and waits[2] > 0 and waits[3] > 0  # still limited, in this process
    assert down.fallbacks == 4
    assert registry.get_sample_value("noa_rate_limit_fallbacks_total") == 4.0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Redis unreachable" in warnings[0].getMessage()


def _key_id(token: str) -> str:
    return token.split("_")[1]


def test_second_server_refuses_once_the_first_spent_the_budget(tmp_path, raw_redis: redis.Redis) -> None:
    settings = settings_for(tmp_path, redis_url=REDIS_URL)
    limit = RateLimit(rate_per_s=0.01, burst=3)
    first, second = (create_app(settings, cache=MemoryCache(), rate_limit=limit, record_change=None,
                                schedule_backup=None, prefect_events=False, plugins=False) for _ in range(2))
    toks = tokens(first)  # one database: both servers know the tokens
    try:
        with TestClient(first) as c1, TestClient(second) as c2:
            assert [c1.get("/v1/projects", headers=bearer(toks["read"])).status_code for _ in range(3)] == [200] * 3
            r = c2.get("/v1/projects", headers=bearer(toks["read"]))
            assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
            assert c1.get("/v1/projects", headers=bearer(toks["read"])).status_code == 429
            # another token's budget is untouched, on either server
            assert c2.get("/v1/projects", headers=bearer(toks["write"])).status_code == 200
            assert "noa_rate_limited_total 1.0" in c2.get("/metrics").text
            assert raw_redis.exists(DEFAULT_NAMESPACE + _key_id(toks["read"]))
    finally:
        raw_redis.delete(*(DEFAULT_NAMESPACE + _key_id(t) for t in toks.values()))


def test_server_with_unreachable_redis_still_answers_and_limits(tmp_path) -> None:
    settings = settings_for(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(settings, cache=MemoryCache(), rate_limit=RateLimit(rate_per_s=0.01, burst=2),
                     record_change=None, schedule_backup=None, prefect_events=False, plugins=False)
    toks = tokens(app)
    with TestClient(app) as client:
        codes = [client.get("/v1/projects", headers=bearer(toks["read"])).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert "noa_rate_limit_fallbacks_total 3.0" in client.get("/metrics").text
