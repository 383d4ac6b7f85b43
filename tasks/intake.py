"""Fetching a drop: a retryable network step, never retried on refused input."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from noa_core.config import IngestLimits
from noa_core.intake import FetchedSource, SourceSpec, fetch_source, parse_source
from tasks.retry import retry_on_network_error


@task(name="parse-source", cache_policy=NO_CACHE)
def parse_source_task(text: str) -> SourceSpec:
    return parse_source(text)


@task(name="fetch-source", retries=3, retry_delay_seconds=[2, 5, 15],
      retry_condition_fn=retry_on_network_error, cache_policy=NO_CACHE)
def fetch_source_task(spec: SourceSpec, dest: Path, limits: IngestLimits, cache_dir: Path) -> FetchedSource:
    return fetch_source(spec, dest, limits, cache_dir=cache_dir)
