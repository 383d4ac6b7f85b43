"""OTLP/HTTP export of traces to a real local receiver (an http.server decoding the protobuf body):
the spans arrive with their name, the service and the run id; the status names where they go; a
collector answering 500 costs nothing but those spans (the JSON file still has them)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pb = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")

from noa_core.observability.tracing import (
    make_tracing,
    otlp_traces_endpoint,
    read_spans,
)

OTLP_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@dataclass
class Received:
    path: str
    content_type: str
    request: Any  # ExportTraceServiceRequest


@dataclass
class Collector:
    base: str
    status: int = 200
    received: list[Received] = field(default_factory=list)

    def spans(self) -> list[dict[str, Any]]:
        """Every received span with its resource's and its own attributes (string values)."""
        out = []
        for got in self.received:
            for rs in got.request.resource_spans:
                resource = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        out.append({"name": span.name, "resource": resource, "path": got.path,
                                    "attributes": {kv.key: kv.value.string_value for kv in span.attributes}})
        return out


@contextmanager
def otlp_collector() -> Iterator[Collector]:
    collector = Collector(base="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            request = pb.ExportTraceServiceRequest()
            request.ParseFromString(body)
            collector.received.append(Received(self.path, self.headers.get("Content-Type", ""), request))
            reply = pb.ExportTraceServiceResponse().SerializeToString() if collector.status == 200 else b"boom"
            self.send_response(collector.status)
            self.send_header("Content-Type", "application/x-protobuf" if collector.status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    collector.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield collector
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture()
def no_otlp_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in OTLP_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_spans_arrive_at_the_collector_with_service_and_run_id(tmp_path: Path, no_otlp_env) -> None:
    with otlp_collector() as collector:
        no_otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.base)
        tracing = make_tracing(tmp_path, service="noa-otlp-test")
        assert tracing.otlp_status == f"ok: {collector.base}/v1/traces"
        try:
            with tracing.span("GET /v1/projects", {"http.route": "/v1/projects"}, run_id="abc"), \
                    tracing.stage("build", run_id="abc", project="hello"):
                pass
            tracing.flush()
        finally:
            tracing.shutdown()
        assert collector.received, "no OTLP request reached the collector"
        assert {(r.path, r.content_type) for r in collector.received} == {("/v1/traces", "application/x-protobuf")}
        spans = {s["name"]: s for s in collector.spans()}
    assert set(spans) == {"GET /v1/projects", "stage build"}
    for span in spans.values():
        assert span["resource"]["service.name"] == "noa-otlp-test"
        assert span["attributes"]["noa.run_id"] == "abc"
    assert spans["stage build"]["attributes"]["noa.stage"] == "build"
    assert spans["stage build"]["attributes"]["project"] == "hello"
    assert spans["GET /v1/projects"]["attributes"]["http.route"] == "/v1/projects"
    # and the JSON file has them too
    assert {s["name"] for s in read_spans(tracing.file)} == {"GET /v1/projects", "stage build"}


def test_traces_specific_endpoint_is_used_as_is_and_wins(tmp_path: Path, no_otlp_env) -> None:
    with otlp_collector() as collector:
        no_otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/not-here")
        no_otlp_env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{collector.base}/custom/traces")
        tracing = make_tracing(tmp_path, service="noa-otlp-test")
        assert tracing.otlp_status == f"ok: {collector.base}/custom/traces"
        try:
            with tracing.span("one", run_id="abc"):
                pass
            tracing.flush()
        finally:
            tracing.shutdown()
        assert [(s["path"], s["name"]) for s in collector.spans()] == [("/custom/traces", "one")]


def test_endpoint_resolution_follows_the_exporter_rules() -> None:
    assert otlp_traces_endpoint({}) is None
    assert otlp_traces_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == "http://c:4318/v1/traces"
    assert otlp_traces_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == "http://c:4318/v1/traces"
    assert otlp_traces_endpoint({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/x"}) == "http://c/x"


def test_without_an_endpoint_otlp_is_skipped(tmp_path: Path, no_otlp_env) -> None:
    tracing = make_tracing(tmp_path)
    assert tracing.otlp_status.startswith("skipped: ") and "OTEL_EXPORTER_OTLP_ENDPOINT" in tracing.otlp_status
    tracing.shutdown()


def test_a_collector_answering_500_loses_nothing_else(tmp_path: Path, no_otlp_env) -> None:
    with otlp_collector() as collector:
        collector.status = 500
        no_otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.base)
        tracing = make_tracing(tmp_path, service="noa-otlp-test")
        try:
            with tracing.span("refused upstream", run_id="abc"):
                pass
            tracing.flush()  # must not raise
        finally:
            tracing.shutdown()
        assert collector.received  # the export was tried (and refused)
    spans = read_spans(tracing.file)
    assert [(s["name"], s["attributes"]["noa.run_id"], s["service"]) for s in spans] == \
        [("refused upstream", "abc", "noa-otlp-test")]
