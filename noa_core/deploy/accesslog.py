"""Per-upstream counts from Caddy's JSON access log.

Caddy 2.11's ``/metrics`` has no per-upstream request or error counters (only upstream
health), so NOA counts at its own measuring layer: every access-log line carries the
server (app), the upstream chosen (added by ``log_append``), the status and the
duration. :class:`AccessCounter` folds lines into cumulative
:class:`~noa_core.deploy.interface.UpstreamCounts`; :class:`LogTail` reads a growing file.
"""

from __future__ import annotations

import bisect
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from noa_core.deploy.interface import LATENCY_BUCKETS_MS, UpstreamCounts

_NB = len(LATENCY_BUCKETS_MS) + 1


@dataclass
class _Acc:
    requests: int = 0
    failures: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * _NB)
    sum_ms: float = 0.0


class AccessCounter:
    """Cumulative counts keyed by (app, upstream)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._acc: dict[tuple[str, str], _Acc] = {}

    def feed(self, line: str | bytes) -> None:
        try:
            rec = json.loads(line)
        except (ValueError, TypeError):
            return
        if not isinstance(rec, dict) or "status" not in rec:
            return
        app = str(rec.get("noa_app") or "")
        upstream = str(rec.get("upstream") or "")
        status = int(rec.get("status") or 0)
        ms = float(rec.get("duration") or 0.0) * 1000.0
        # status 0 is a request whose client went away before any response
        failed = status >= 500 or status == 0
        with self._lock:
            acc = self._acc.setdefault((app, upstream), _Acc())
            acc.requests += 1
            acc.failures += int(failed)
            acc.buckets[bisect.bisect_left(LATENCY_BUCKETS_MS, ms)] += 1
            acc.sum_ms += ms

    def counts(self, app: str) -> dict[str, UpstreamCounts]:
        with self._lock:
            return {up: UpstreamCounts(up, a.requests, a.failures, tuple(a.buckets), a.sum_ms)
                    for (p, up), a in self._acc.items() if p == app}


class LogTail:
    """Feeds new complete lines of ``path`` to ``counter`` each :meth:`poll`."""

    def __init__(self, path: Path, counter: AccessCounter) -> None:
        self.path = Path(path)
        self.counter = counter
        self._pos = 0
        self._rest = b""
        self._ino: int | None = None

    def start_at_end(self) -> None:
        try:
            st = os.stat(self.path)
            self._pos, self._ino = st.st_size, st.st_ino
        except FileNotFoundError:
            self._pos = 0

    def poll(self) -> int:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return 0
        if self._ino is not None and st.st_ino != self._ino or st.st_size < self._pos:
            self._pos, self._rest = 0, b""
        self._ino = st.st_ino
        if st.st_size == self._pos:
            return 0
        with open(self.path, "rb") as fh:
            fh.seek(self._pos)
            data = fh.read(st.st_size - self._pos)
        self._pos += len(data)
        data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            if line.strip():
                self.counter.feed(line)
        return len(lines)
