"""OpenTelemetry traces: a span per API request and per flow stage.

Spans go to ``NOA_HOME/traces/spans.jsonl`` (one JSON object per span) by default. When
``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/traces`` appended) or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
(used as is, and preferred) is set they also go over OTLP/HTTP (protobuf), batched, with the
exporter package ``opentelemetry-exporter-otlp-proto-http``; :attr:`Tracing.otlp_status` says
``ok: <traces URL>``, or ``skipped: ...``. A collector that refuses or is down costs only those
spans (the exporter logs it); the JSON file still gets every span. Each :class:`Tracing` owns its own
``TracerProvider`` (nothing global is set), so two apps in one process do not mix.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from noa_core.observability.logs import current_run_id

if TYPE_CHECKING:
    from noa_core.config import NoaSettings


def span_dict(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": f"{ctx.trace_id:032x}" if ctx else None,
        "span_id": f"{ctx.span_id:016x}" if ctx else None,
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "duration_ms": round(((span.end_time or 0) - (span.start_time or 0)) / 1e6, 3),
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
        "service": (span.resource.attributes.get("service.name") if span.resource else None),
    }


class JsonFileSpanExporter(SpanExporter):
    """Appends one JSON line per finished span to a file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            lines = "".join(json.dumps(span_dict(s), default=str) + "\n" for s in spans)
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(lines)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def otlp_traces_endpoint(environ: Mapping[str, str] | None = None) -> str | None:
    """Where OTLP/HTTP spans go, read as the exporter reads it: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
    as is, else ``OTEL_EXPORTER_OTLP_ENDPOINT`` with ``/v1/traces`` appended; ``None`` if neither is set."""
    env = os.environ if environ is None else environ
    traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if base:
        return base.removesuffix("/") + "/v1/traces"
    return None


def _otlp_exporter() -> tuple[SpanExporter | None, str]:
    endpoint = otlp_traces_endpoint()
    if not endpoint:
        return None, "skipped: OTEL_EXPORTER_OTLP_ENDPOINT is not set"
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )
    except ImportError:
        return None, ("skipped: an OTLP endpoint is set but opentelemetry-exporter-otlp-proto-http "
                      "is not installed")
    # the endpoint is passed explicitly so that what otlp_status reports is where spans go
    return OTLPSpanExporter(endpoint=endpoint), f"ok: {endpoint}"


@dataclass
class Tracing:
    provider: TracerProvider
    tracer: Tracer
    file: Path | None
    otlp_status: str

    @contextlib.contextmanager
    def span(self, name: str, attributes: Mapping[str, Any] | None = None,
             run_id: str | None = None) -> Iterator[Span]:
        """A span with ``noa.run_id`` set (given, or the current :func:`run_context`); errors mark it."""
        attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
        rid = run_id or current_run_id()
        if rid:
            attrs["noa.run_id"] = rid
        with self.tracer.start_as_current_span(name, attributes=attrs, record_exception=True,
                                               set_status_on_exception=True) as span:
            yield span

    def stage(self, stage: str, run_id: str | None = None, **attributes: Any) -> contextlib.AbstractContextManager[Span]:
        """For flows: ``with tracing.stage("build", run_id=flow_run_id): ...``."""
        return self.span(f"stage {stage}", {"noa.stage": stage, **attributes}, run_id=run_id)

    def record(self, name: str, start_ns: int, end_ns: int, attributes: Mapping[str, Any] | None = None, *,
               run_id: str | None = None, trace_run_id: str | None = None, error: str | None = None) -> None:
        """A span for work that already finished (a flow stage timed by its own clock).

        ``trace_run_id`` (a Prefect flow run id, e.g. the pipeline's root run) becomes the trace id,
        so every stage of one run is one trace in any OTLP backend, found by that run id.
        """
        attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
        if run_id:
            attrs["noa.run_id"] = run_id
        parent = None
        if trace_run_id:
            attrs["noa.trace_run_id"] = trace_run_id
            parent = run_trace_context(trace_run_id)
        span = self.tracer.start_span(name, context=parent, attributes=attrs, start_time=start_ns)
        if error:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=end_ns)

    def flush(self) -> None:
        self.provider.force_flush()

    def shutdown(self) -> None:
        self.provider.shutdown()


def make_tracing(traces_dir: Path | None, *, service: str = "noa", batch: bool = True) -> Tracing:
    """A private tracer provider exporting to ``traces_dir/spans.jsonl`` (and OTLP when configured)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    file = None
    if traces_dir is not None:
        file = Path(traces_dir) / "spans.jsonl"
        exporter = JsonFileSpanExporter(file)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000) if batch
                                    else SimpleSpanProcessor(exporter))
    otlp, status = _otlp_exporter()
    if otlp is not None:
        provider.add_span_processor(BatchSpanProcessor(otlp))
    return Tracing(provider, provider.get_tracer("noa"), file, status)


_TRACE_RUN: contextvars.ContextVar[str | None] = contextvars.ContextVar("noa_trace_run", default=None)


@contextlib.contextmanager
def trace_run(run_id: str | None) -> Iterator[str | None]:
    """Make ``run_id`` the trace of the flow stages run inside (the outermost caller wins: a
    pipeline's stages join the pipeline's trace, not the unified workflow's)."""
    if _TRACE_RUN.get() is not None or not run_id:
        yield _TRACE_RUN.get()
        return
    token = _TRACE_RUN.set(run_id)
    try:
        yield run_id
    finally:
        _TRACE_RUN.reset(token)


def current_trace_run() -> str | None:
    return _TRACE_RUN.get()


def run_trace_context(run_id: str) -> Any:
    """A context whose (remote, non-recording) parent span carries the trace id of ``run_id``: the
    flow run's UUID is 128 bits, exactly a trace id; other ids are hashed to one."""
    import hashlib
    import uuid

    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    try:
        trace_id = uuid.UUID(run_id).int
    except ValueError:
        trace_id = int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:16], "big")
    span_id = (trace_id & 0xFFFFFFFFFFFFFFFF) or 1
    ctx = SpanContext(trace_id=trace_id or 1, span_id=span_id, is_remote=True, trace_flags=TraceFlags(1))
    return trace.set_span_in_context(NonRecordingSpan(ctx))


def mark_error(span: Span, message: str) -> None:
    span.set_status(Status(StatusCode.ERROR, message))


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not Path(path).is_file():
        return []
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def tracing_for(settings: NoaSettings, service: str = "noa-flows") -> Tracing:
    """For flows and tasks: spans to ``NOA_HOME/traces/spans.jsonl`` (and OTLP when configured).

    ``with tracing_for(settings).stage("build", run_id=str(flow_run.id)): ...``; call ``flush()``
    (or ``shutdown()``) before the process ends.
    """
    return make_tracing(settings.layout().root / "traces", service=service)
