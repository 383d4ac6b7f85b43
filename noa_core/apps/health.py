"""Health checks of registered apps: one HTTP GET of the app's health path, or a wait
until it answers 2xx (used for external apps; owned ones go through their deploy target)."""

from __future__ import annotations

import time

from noa_core.deploy.interface import HealthResult
from noa_core.deploy.local_target import http_health

__all__ = ["probe", "wait_ready"]


def probe(hostport: str, path: str, *, timeout_s: float = 2.0) -> HealthResult:
    host, _, port = hostport.rpartition(":")
    return http_health(host, int(port), path, timeout_s)


def wait_ready(hostport: str, path: str, *, timeout_s: float = 30.0, interval_s: float = 0.1) -> HealthResult:
    """Probe until 2xx; ``ok=False`` with the last reason once ``timeout_s`` has passed."""
    t0 = time.monotonic()
    while True:
        h = probe(hostport, path, timeout_s=min(2.0, max(0.2, timeout_s)))
        if h.ok:
            return HealthResult(True, h.status_code, "", time.monotonic() - t0)
        if time.monotonic() - t0 >= timeout_s:
            return HealthResult(False, h.status_code, f"not healthy after {timeout_s:g}s: {h.reason}",
                                time.monotonic() - t0)
        time.sleep(interval_s)
