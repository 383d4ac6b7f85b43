"""The monitor stage's probes: where a release answers, and one health check of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx


def endpoint_of(result: Mapping[str, Any]) -> str | None:
    """The release's address from the deploy result: its public route (``url`` / ``route``)
    when the deploy names one, else the promoted instance's own ``host:port``."""
    release = result.get("release")
    instance = result.get("instance")
    for where in (result, release if isinstance(release, Mapping) else {},
                  instance if isinstance(instance, Mapping) else {}):
        for key in ("url", "public_url", "route", "endpoint"):
            value = where.get(key)
            if isinstance(value, str) and value:
                return value if "://" in value else f"http://{value}"
    return None


async def health_once(client: httpx.AsyncClient, url: str) -> tuple[bool, str]:
    """One GET of ``url``: (healthy, what it answered)."""
    try:
        resp = await client.get(url)
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}"
    return resp.status_code < 400, f"HTTP {resp.status_code}"


async def watch_health(url: str, *, timeout: float, window_s: float, interval_s: float,
                       failures_allowed: int) -> tuple[int, int, int, str]:
    """Probe ``url`` every ``interval_s`` for ``window_s`` seconds, stopping early after
    ``failures_allowed`` failures in a row: (probes, failures, failures in a row at the end, last answer)."""
    probes = fails = streak = 0
    last = ""
    async with httpx.AsyncClient(timeout=timeout) as client:
        deadline = time.monotonic() + window_s
        while time.monotonic() < deadline:
            ok, last = await health_once(client, url)
            probes += 1
            if ok:
                streak = 0
            else:
                fails += 1
                streak += 1
                if streak >= failures_allowed:
                    break
            await asyncio.sleep(interval_s)
    return probes, fails, streak, last


__all__ = ["endpoint_of", "health_once", "watch_health"]
