"""Observability: structured JSON-lines logs, Prometheus metrics, OpenTelemetry traces, dashboards.

The names below are loaded on first use, so that importing :mod:`noa_core.observability.logs`
(every flow module does) does not import OpenTelemetry and prometheus-client as well.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"JsonLinesHandler": "logs", "current_run_id": "logs", "json_logger": "logs", "run_context": "logs",
          "NoaMetrics": "metrics", "Tracing": "tracing", "make_tracing": "tracing"}

__all__ = ["JsonLinesHandler", "NoaMetrics", "Tracing", "current_run_id", "json_logger", "make_tracing", "run_context"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"noa_core.observability.{_WHERE[name]}"), name)
