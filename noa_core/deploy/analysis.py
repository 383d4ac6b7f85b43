"""Canary analysis: compare the canary with the stable release, tick by tick.

Modelled on Argo Rollouts' AnalysisTemplate, with sub-second measurements:

* a *measurement* every ``tick_s`` (default 0.25 s) over the counts since the step
  began (proxy counts per upstream from the router; see
  :class:`~noa_core.deploy.interface.UpstreamCounts`), plus the canary's own Prometheus
  ``/metrics`` when it has request counters with a status/code label;
* *failure conditions*: error rate above ``max_error_rate`` (once ``min_requests``
  canary requests are in, or two failures); p99 above ``max_p99_ms`` (an absolute
  threshold, as Flagger's request-duration check); slower than stable: p50 above
  ``max_latency_ratio`` x stable p50 (10+ samples each; a median, because the p99 of a
  few dozen samples is just their maximum) or p99 above ``max_latency_ratio`` x stable
  p99 (``min_p99_samples`` each); both also need ``min_latency_delta_ms`` more; and the
  canary process dead or restarted (no waiting for a metric: the target knows at once);
* a *failure limit*: the analysis fails when more than ``failure_limit`` measurements in
  a row have failed (a dead canary fails at once);
* *success*: the step's interval passed without failing. Without canary traffic the
  verdict is ``inconclusive`` and ``require_traffic`` decides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from noa_core.deploy.interface import UpstreamCounts

__all__ = ["AnalysisConfig", "Measurement", "StepAnalysis", "parse_prometheus_errors"]


@dataclass(frozen=True)
class AnalysisConfig:
    interval_s: float = 30.0
    tick_s: float = 0.25
    max_error_rate: float = 0.01
    max_p99_ms: float = 500.0
    max_latency_ratio: float = 2.0
    min_latency_delta_ms: float = 20.0  # a ratio on 2 ms latencies is scheduler noise: also need this much more
    min_requests: int = 5
    min_latency_samples: int = 20
    min_p99_samples: int = 50
    failure_limit: int = 1
    require_traffic: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Measurement:
    at_s: float
    canary: UpstreamCounts
    stable: UpstreamCounts | None
    failed: bool
    reasons: tuple[str, ...] = ()
    app_metrics: Mapping[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        def pct(c: UpstreamCounts | None) -> dict[str, Any]:
            if c is None:
                return {}
            return {"requests": c.requests, "failures": c.failures,
                    "error_rate": None if c.error_rate is None else round(c.error_rate, 4),
                    "p50_ms": c.quantile_ms(0.5), "p99_ms": c.quantile_ms(0.99)}
        return {"canary": pct(self.canary), "stable": pct(self.stable), "app_metrics": dict(self.app_metrics)}


def _empty(endpoint: str) -> UpstreamCounts:
    return UpstreamCounts(endpoint)


class StepAnalysis:
    """Measurements of one canary step; feed readings with :meth:`measure`."""

    def __init__(self, cfg: AnalysisConfig, canary: str, stable: str | None,
                 start: Mapping[str, UpstreamCounts], start_app_errors: tuple[float, float] | None = None) -> None:
        self.cfg, self.canary, self.stable = cfg, canary, stable
        self.start = dict(start)
        self.consecutive = 0
        self.failed_measurements = 0
        self.last: Measurement | None = None
        self.start_app = start_app_errors

    def window(self, now: Mapping[str, UpstreamCounts], endpoint: str | None) -> UpstreamCounts | None:
        if endpoint is None:
            return None
        cur = now.get(endpoint) or _empty(endpoint)
        base = self.start.get(endpoint)
        if base is not None and cur.requests < base.requests:  # the router's counters restarted
            base = None
        return cur.minus(base)

    def measure(self, at_s: float, counts: Mapping[str, UpstreamCounts], *, canary_alive: bool = True,
                canary_reason: str = "", app_errors: tuple[float, float] | None = None) -> Measurement:
        cfg = self.cfg
        c = self.window(counts, self.canary) or _empty(self.canary)
        s = self.window(counts, self.stable)
        reasons: list[str] = []
        fatal = False
        if not canary_alive:
            reasons.append(f"canary down: {canary_reason}" if canary_reason else "canary down")
            fatal = True
        if c.error_rate is not None and c.error_rate > cfg.max_error_rate and \
                (c.requests >= cfg.min_requests or c.failures >= 2):
            reasons.append(f"error rate {c.error_rate:.1%} > {cfg.max_error_rate:.1%} "
                           f"({c.failures}/{c.requests} failed)")
        app: dict[str, float] = {}
        if app_errors is not None and self.start_app is not None:
            total = app_errors[0] - self.start_app[0]
            errors = app_errors[1] - self.start_app[1]
            app = {"requests": total, "errors": errors}
            if total > 0 and errors / total > cfg.max_error_rate and (total >= cfg.min_requests or errors >= 2):
                reasons.append(f"app metrics: error rate {errors / total:.1%} > {cfg.max_error_rate:.1%}")
        n = sum(c.latency_buckets)
        sn = sum(s.latency_buckets) if s is not None else 0
        if n >= cfg.min_latency_samples:
            p99 = c.quantile_ms(0.99) or 0.0
            if p99 > cfg.max_p99_ms:
                reasons.append(f"p99 {p99:g} ms > {cfg.max_p99_ms:g} ms")
            if s is not None and sn >= cfg.min_latency_samples:
                p50, sp50 = c.quantile_ms(0.5) or 0.0, s.quantile_ms(0.5) or 0.0
                if p50 > cfg.max_latency_ratio * sp50 and p50 - sp50 >= cfg.min_latency_delta_ms:
                    reasons.append(f"slower than stable: p50 {p50:g} ms > {cfg.max_latency_ratio:g} x {sp50:g} ms")
                sp99 = s.quantile_ms(0.99) or 0.0
                if n >= cfg.min_p99_samples and sn >= cfg.min_p99_samples and \
                        p99 > cfg.max_latency_ratio * sp99 and p99 - sp99 >= cfg.min_latency_delta_ms:
                    reasons.append(f"slower than stable: p99 {p99:g} ms > {cfg.max_latency_ratio:g} x {sp99:g} ms")
        failed = bool(reasons)
        if failed:
            self.consecutive += 1
            self.failed_measurements += 1
            if fatal:
                self.consecutive = cfg.failure_limit + 1
        else:
            self.consecutive = 0
        m = Measurement(at_s, c, s, failed, tuple(reasons), app)
        self.last = m
        return m

    @property
    def failed(self) -> bool:
        return self.consecutive > self.cfg.failure_limit

    def verdict(self) -> str:
        if self.failed:
            return "failed"
        if self.last is None or self.last.canary.requests == 0:
            return "inconclusive"
        return "passed"


_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9eE+.\-]+|NaN|\+Inf)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_prometheus_errors(text: str) -> tuple[float, float] | None:
    """(requests, 5xx) summed over ``*_requests_total`` counters with a ``code``/``status``
    label in Prometheus text format; None when the app exports no such counter."""
    total = errors = 0.0
    seen = False
    for line in text.splitlines():
        if line.startswith("# TYPE ") and line.split()[2:4][-1:] == ["counter"] and \
                line.split()[2].endswith("requests_total"):
            seen = True  # declared but nothing counted yet: zero, not "no metrics"
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m or not m.group(1).endswith("requests_total") or not m.group(2):
            continue
        labels = dict(_LABEL.findall(m.group(2)))
        code = labels.get("code") or labels.get("status") or labels.get("status_code")
        if code is None:
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        seen = True
        total += v
        if code.startswith("5"):
            errors += v
    return (total, errors) if seen else None
