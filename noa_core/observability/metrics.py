"""Prometheus metrics of NOA on a private :class:`CollectorRegistry` (one per app, no globals).

Names (all prefixed ``noa_``) are the ones the Grafana dashboard in
``noa_core/data/grafana/noa.json`` charts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from noa_core.storage.cache import CacheStats

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class _CacheCollector(Collector):
    def __init__(self, stats: Callable[[], CacheStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        s = self._stats()
        hits = CounterMetricFamily("noa_cache_hits", "cache-aside reads answered by the cache", labels=["backend"])
        hits.add_metric([s.backend], s.hits)
        misses = CounterMetricFamily("noa_cache_misses", "cache-aside reads that went to the database",
                                     labels=["backend"])
        misses.add_metric([s.backend], s.misses)
        errors = CounterMetricFamily("noa_cache_errors", "cache operations that failed", labels=["backend"])
        errors.add_metric([s.backend], s.errors)
        ratio = GaugeMetricFamily("noa_cache_hit_ratio", "hits / (hits + misses) since start", labels=["backend"])
        ratio.add_metric([s.backend], s.hit_ratio)
        return [hits, misses, errors, ratio]


class NoaMetrics:
    """Every NOA metric, registered on ``self.registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter("noa_http_requests", "API requests", ["method", "route", "status"], registry=r)
        self.http_latency = Histogram("noa_http_request_seconds", "API request latency", ["method", "route"],
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.http_in_flight = Gauge("noa_http_requests_in_flight", "API requests being answered", registry=r)
        self.flow_runs = Counter("noa_flow_runs", "flow runs by outcome", ["flow", "outcome"], registry=r)
        self.flow_seconds = Histogram("noa_flow_seconds", "flow durations", ["flow"], buckets=DURATION_BUCKETS,
                                      registry=r)
        self.stage_runs = Counter("noa_stage_runs", "pipeline stages by status", ["stage", "status"], registry=r)
        self.stage_seconds = Histogram("noa_stage_seconds", "pipeline stage durations", ["stage"],
                                       buckets=DURATION_BUCKETS, registry=r)
        self.swarm_queue_depth = Gauge("noa_swarm_queue_depth", "shards waiting per swarm", ["language"], registry=r)
        self.canary_error_rate = Gauge("noa_canary_error_rate", "error rate of the canary under analysis", ["app"],
                                       registry=r)
        self.backup_bytes = Gauge("noa_backup_bytes", "size of the latest backup", ["backend"], registry=r)
        self.deploys = Counter("noa_deploys", "deploys by outcome", ["env", "outcome"], registry=r)
        self.rollbacks = Counter("noa_rollbacks", "rollbacks", ["app"], registry=r)
        self.events = Counter("noa_events", "events published on the bus", ["kind", "severity"], registry=r)
        self.alerts = Counter("noa_alerts", "alerts sent (or failed)", ["outcome"], registry=r)
        self.rate_limited = Counter("noa_rate_limited", "requests refused by the per-token rate limit", registry=r)
        self.body_refused = Counter("noa_body_too_large", "requests refused for their body size", registry=r)
        self.runs_submitted = Counter("noa_runs_submitted", "flow runs created through the API", ["kind"], registry=r)
        self.inference_seconds = Histogram("noa_inference_seconds", "LLM completion time", ["kind"],
                                           buckets=DURATION_BUCKETS, registry=r)

    def watch_cache(self, stats: Callable[[], CacheStats]) -> None:
        self.registry.register(_CacheCollector(stats))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
