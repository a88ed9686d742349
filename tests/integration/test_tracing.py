"""OpenTelemetry, optional: one trace from the sender's request through ingest to the attempt and its outbound call
(``traceparent`` reaches the target), exported over OTLP/HTTP; when off, OpenTelemetry is not even imported."""

from __future__ import annotations

import subprocess
import sys

import httpx2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from support import run_service, scalar, wait_until

SENDER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SENDER_SPAN = "00f067aa0ba902b7"


def test_one_trace_from_the_request_to_the_outbound_call(db_url: str, httpserver: HTTPServer) -> None:
    exported: list[bytes] = []
    targets: list[str] = []

    def collector(request: Request) -> Response:
        exported.append(request.get_data())
        return Response(b"", content_type="application/x-protobuf")

    def target(request: Request) -> Response:
        targets.append(request.headers.get("traceparent", ""))
        return Response("ok")

    httpserver.expect_request("/v1/traces").respond_with_handler(collector)
    httpserver.expect_request("/target").respond_with_handler(target)
    target_url = httpserver.url_for("/target")
    config = f'triggers: [{{name: t, action: {{kind: http, url: "{target_url}", allow: [127.0.0.1]}}}}]'
    with run_service(db_url, config, otel_endpoint=httpserver.url_for("/v1/traces")) as service:
        headers = {"traceparent": f"00-{SENDER_TRACE}-{SENDER_SPAN}-01"}
        response = httpx2.post(f"{service.url}/hooks/t", json={"n": 1}, headers=headers)
        assert response.status_code == 202
        wait_until(lambda: scalar(db_url, "SELECT status FROM executions") == "succeeded")
    # The service has stopped: its spans were flushed on the way out.
    spans = {}
    for body in exported:
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    spans[span.name] = span
    ingest, attempt = spans["POST /hooks/{trigger}"], spans["redrive attempt"]
    assert ingest.trace_id.hex() == attempt.trace_id.hex() == SENDER_TRACE  # one trace, the sender's
    assert ingest.parent_span_id.hex() == SENDER_SPAN
    assert attempt.parent_span_id == ingest.span_id
    [traceparent] = targets
    assert traceparent == f"00-{SENDER_TRACE}-{attempt.span_id.hex()}-01"


def test_tracing_off_imports_nothing_of_opentelemetry(tmp_path) -> None:
    script = f"""
import sys
from redrive.api.app import create_app
from redrive.triggers.config import parse_config
from redrive.settings import Settings
app = create_app(Settings(database_url="sqlite:///{tmp_path}/x.db"), parse_config("triggers: []"))
# (FastAPI itself imports the OpenTelemetry API when it is installed; the SDK and the exporter are ours.)
loaded = sorted(name for name in sys.modules if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter")))
assert loaded == [], loaded
assert "IngestTracing" not in [getattr(m.cls, "__name__", "") for m in app.user_middleware]
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
