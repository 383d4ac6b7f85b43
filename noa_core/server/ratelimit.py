"""Per-token rate limiting: a token bucket per key (refilled continuously, ``burst`` deep).

Two implementations of one contract, ``take(key, rate_per_s=None) -> float`` (0.0: go; otherwise the
seconds until a token is back, the Retry-After):

* :class:`TokenBuckets` keeps the buckets in this process (the embedded default);
* :class:`RedisTokenBuckets` keeps them in Redis (``NOA_REDIS_URL``), so every ``noa server``
  process sharing that Redis shares one budget per token. One Lua script reads, refills and takes
  atomically, with the clock of Redis (``TIME``), so the servers' clocks do not matter. A bucket is a
  hash ``<namespace><key>`` that expires once it would be full again (a missing bucket *is* a full one).

When Redis cannot be reached, :class:`RedisTokenBuckets` falls back to an in-process bucket (the limit
then holds per process, not across processes) instead of refusing or failing the request: it logs one
warning per outage (and one line when Redis is back), counts every fallback decision in
``noa_rate_limit_fallbacks_total`` and tries Redis again after ``retry_after_s`` rather than paying the
connection timeout on every request.

:func:`make_buckets` picks the implementation the way :func:`noa_core.storage.cache.make_cache` does.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from noa_core.config import NoaSettings

DEFAULT_NAMESPACE = "noa:ratelimit:"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateLimit:
    rate_per_s: float = 50.0
    burst: float = 100.0

    def for_token(self, rate_per_s: float | None) -> tuple[float, float]:
        """(rate, burst) for a token with its own rate (or none): a faster token gets a deeper bucket."""
        if rate_per_s and rate_per_s > 0:
            return rate_per_s, max(self.burst, rate_per_s)
        return self.rate_per_s, self.burst


@runtime_checkable
class RateLimiter(Protocol):
    default: RateLimit

    def take(self, key: str, rate_per_s: float | None = None) -> float: ...


class TokenBuckets:
    """The buckets of this process."""

    backend = "memory"

    def __init__(self, default: RateLimit) -> None:
        self.default = default
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, key: str, rate_per_s: float | None = None) -> float:
        """0.0 if the request may go; otherwise the seconds until one token is back (Retry-After)."""
        rate, burst = self.default.for_token(rate_per_s)
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate


# KEYS[1]: the bucket; ARGV: rate per second, burst. Returns the wait in seconds (a string: a Lua
# number would come back truncated to an integer). Fields are written with %.17g so nothing is rounded.
_TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return string.format('%.17g', wait)
"""


class RedisTokenBuckets:
    """The buckets in Redis, shared by every process using the same Redis and ``namespace``."""

    backend = "redis"

    def __init__(self, url: str, default: RateLimit, *, namespace: str = DEFAULT_NAMESPACE,
                 socket_timeout: float = 0.5, retry_after_s: float = 5.0,
                 registry: CollectorRegistry | None = None, logger: logging.Logger | None = None) -> None:
        import redis  # the client ships with Prefect's dependencies

        self.default = default
        self.namespace = namespace
        self.retry_after_s = retry_after_s
        self._redis = redis.Redis.from_url(url, socket_timeout=socket_timeout,
                                           socket_connect_timeout=socket_timeout)
        self._take = self._redis.register_script(_TAKE_LUA)  # EVALSHA, EVAL when the script is not loaded
        self._local = TokenBuckets(default)
        self._log = logger or _log
        self._lock = threading.Lock()
        self._down_until: float | None = None  # monotonic time before which Redis is not tried again
        self.fallbacks = 0
        self._counter: Any = None
        if registry is not None:
            from prometheus_client import Counter

            self._counter = Counter("noa_rate_limit_fallbacks",
                                    "rate-limit decisions taken in-process because Redis was unreachable",
                                    registry=registry)

    def key(self, key: str) -> str:
        return self.namespace + key

    def take(self, key: str, rate_per_s: float | None = None) -> float:
        """0.0 if the request may go; otherwise the seconds until one token is back (Retry-After)."""
        import redis

        rate, burst = self.default.for_token(rate_per_s)
        if not self._redis_due():
            return self._fallback(key, rate_per_s)
        try:
            wait = float(self._take(keys=[self.key(key)], args=[repr(float(rate)), repr(float(burst))]))
        except redis.RedisError as exc:
            self._went_down(exc)
            return self._fallback(key, rate_per_s)
        self._came_back()
        return wait

    def _redis_due(self) -> bool:
        with self._lock:
            return self._down_until is None or time.monotonic() >= self._down_until

    def _went_down(self, exc: Exception) -> None:
        with self._lock:
            first = self._down_until is None
            self._down_until = time.monotonic() + self.retry_after_s
        if first:
            self._log.warning("rate limits: Redis unreachable (%s); limiting per process until it is back",
                              type(exc).__name__)

    def _came_back(self) -> None:
        with self._lock:
            was_down = self._down_until is not None
            self._down_until = None
        if was_down:
            self._log.info("rate limits: Redis reachable again; limits are shared again")

    def _fallback(self, key: str, rate_per_s: float | None) -> float:
        with self._lock:
            self.fallbacks += 1
        if self._counter is not None:
            self._counter.inc()
        return self._local.take(key, rate_per_s)

    def close(self) -> None:
        self._redis.close()


def make_buckets(settings: NoaSettings, default: RateLimit, *,
                 registry: CollectorRegistry | None = None) -> RateLimiter:
    """Redis when ``settings.redis_url`` (``NOA_REDIS_URL``) is set, else the in-process buckets."""
    if settings.redis_url:
        return RedisTokenBuckets(settings.redis_url, default, registry=registry)
    return TokenBuckets(default)


__all__ = ["DEFAULT_NAMESPACE", "RateLimit", "RateLimiter", "RedisTokenBuckets", "TokenBuckets", "make_buckets"]
