"""The cache port of the read flow (cache-aside): in-process TTL by default, Redis at scale.

``make_cache(settings)`` gives a :class:`RedisCache` when ``NOA_REDIS_URL`` is set and a
:class:`MemoryCache` otherwise. Values are bytes (callers store serialised JSON, so a hit
is answered without re-encoding). Every cache counts its hits and misses
(:meth:`Cache.stats`); the server exports them as Prometheus counters.

A cache that cannot be reached is a miss, never an error: the read falls through to the
database. Invalidation errors are raised (a write must not report success while a stale
entry may survive), see :class:`CacheError`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from noa_core.errors import NoaError

if TYPE_CHECKING:
    from noa_core.config import NoaSettings


class CacheError(NoaError):
    """The cache could not do what was asked (e.g. an invalidation did not reach Redis)."""


@dataclass(frozen=True)
class CacheStats:
    backend: str
    hits: int
    misses: int
    errors: int
    entries: int | None  # None when the backend cannot say cheaply

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


@runtime_checkable
class Cache(Protocol):
    backend: str

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...
    def delete(self, *keys: str) -> None: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def stats(self) -> CacheStats: ...
    def close(self) -> None: ...


class _Counters:
    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.errors = 0


class MemoryCache:
    """A thread-safe in-process LRU with a per-entry TTL (the embedded default)."""

    backend = "memory"

    def __init__(self, default_ttl: float = 30.0, max_entries: int = 10_000) -> None:
        self.default_ttl = default_ttl
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._n = _Counters()

    def get(self, key: str) -> bytes | None:
        now = time.monotonic()
        with self._lock:
            item = self._data.get(key)
            if item is None or item[0] <= now:
                if item is not None:
                    del self._data[key]
                self._n.misses += 1
                return None
            self._data.move_to_end(key)
            self._n.hits += 1
            return item[1]

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        expires = time.monotonic() + (self.default_ttl if ttl is None else ttl)
        with self._lock:
            self._data[key] = (expires, bytes(value))
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def delete_prefix(self, prefix: str) -> None:
        with self._lock:
            for key in [k for k in self._data if k.startswith(prefix)]:
                del self._data[key]

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self.backend, self._n.hits, self._n.misses, self._n.errors, len(self._data))

    def close(self) -> None:
        with self._lock:
            self._data.clear()


class RedisCache:
    """Redis (``NOA_REDIS_URL``): shared by every server process; keys under ``namespace``."""

    backend = "redis"

    def __init__(self, url: str, *, namespace: str = "noa:", default_ttl: float = 30.0,
                 socket_timeout: float = 0.5) -> None:
        import redis  # the client ships with Prefect's dependencies

        self.default_ttl = default_ttl
        self.namespace = namespace
        self._redis = redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout)
        self._n = _Counters()
        self._lock = threading.Lock()

    def _k(self, key: str) -> str:
        return self.namespace + key

    def _count(self, field: str) -> None:
        with self._lock:
            setattr(self._n, field, getattr(self._n, field) + 1)

    def get(self, key: str) -> bytes | None:
        import redis

        try:
            value = self._redis.get(self._k(key))
        except redis.RedisError:
            self._count("errors")
            self._count("misses")
            return None
        self._count("hits" if value is not None else "misses")
        return value  # type: ignore[return-value]

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        import redis

        ms = max(1, int((self.default_ttl if ttl is None else ttl) * 1000))
        try:
            self._redis.set(self._k(key), bytes(value), px=ms)
        except redis.RedisError:  # a failed fill only costs a later miss
            self._count("errors")

    def delete(self, *keys: str) -> None:
        import redis

        if not keys:
            return
        try:
            self._redis.delete(*(self._k(k) for k in keys))
        except redis.RedisError as exc:
            self._count("errors")
            raise CacheError(f"cache invalidation failed: {exc}") from exc

    def delete_prefix(self, prefix: str) -> None:
        import redis

        try:
            batch: list[bytes] = []
            for key in self._redis.scan_iter(match=self._k(prefix) + "*", count=500):
                batch.append(key)
                if len(batch) >= 500:
                    self._redis.delete(*batch)
                    batch.clear()
            if batch:
                self._redis.delete(*batch)
        except redis.RedisError as exc:
            self._count("errors")
            raise CacheError(f"cache invalidation failed: {exc}") from exc

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self.backend, self._n.hits, self._n.misses, self._n.errors, None)

    def ping(self) -> bool:
        import redis

        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self._redis.close()


def make_cache(settings: NoaSettings, *, namespace: str | None = None, default_ttl: float = 30.0) -> Cache:
    """Redis when ``settings.redis_url`` (``NOA_REDIS_URL``) is set, else the in-process cache."""
    if settings.redis_url:
        return RedisCache(settings.redis_url, namespace=namespace or "noa:", default_ttl=default_ttl)
    return MemoryCache(default_ttl=default_ttl)


def invalidate(cache: Cache, keys: Iterable[str] = (), prefixes: Iterable[str] = ()) -> None:
    """Drop ``keys`` and every key under ``prefixes`` (raises :class:`CacheError` if it could not)."""
    keys = tuple(keys)
    if keys:
        cache.delete(*keys)
    for prefix in prefixes:
        cache.delete_prefix(prefix)


__all__ = ["Cache", "CacheError", "CacheStats", "MemoryCache", "RedisCache", "invalidate", "make_cache"]
