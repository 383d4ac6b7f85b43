"""Per-token rate limiting: a token bucket per key (refilled continuously, ``burst`` deep)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    rate_per_s: float = 50.0
    burst: float = 100.0


class TokenBuckets:
    def __init__(self, default: RateLimit) -> None:
        self.default = default
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, key: str, rate_per_s: float | None = None) -> float:
        """0.0 if the request may go; otherwise the seconds until one token is back (Retry-After)."""
        rate = rate_per_s or self.default.rate_per_s
        burst = max(self.default.burst, rate) if rate_per_s else self.default.burst
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate
