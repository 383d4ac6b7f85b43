"""Observability: structured JSON-lines logs, Prometheus metrics, OpenTelemetry traces, dashboards."""

from noa_core.observability.logs import (
           JsonLinesHandler,
           current_run_id,
           json_logger,
           run_context,
)
from noa_core.observability.metrics import NoaMetrics
from noa_core.observability.tracing import Tracing, make_tracing

__all__ = ["JsonLinesHandler", "NoaMetrics", "Tracing", "current_run_id", "json_logger", "make_tracing",
           "run_context"]
