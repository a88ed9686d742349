"""Optional OpenTelemetry tracing: one trace from the inbound request through ingest to each attempt's outbound call.

Off unless ``REDRIVE_OTEL_ENDPOINT`` is set (and the ``otel`` extra installed): then nothing here is imported and
nothing runs, so it costs nothing. When on, spans go to a private tracer provider (nothing global) and are
exported over OTLP/HTTP in batches:

- ``IngestTracing`` (ASGI) opens a server span for each ingest request, continuing the sender's ``traceparent``,
  and puts its own ``traceparent`` in the request's headers, so the event is stored with it;
- the worker opens an attempt span as a child of the stored ``traceparent`` (in whichever process runs it);
- an aiohttp trace hook writes the attempt's ``traceparent`` into every outbound HTTP request.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

PROPAGATED = (b"traceparent", b"tracestate")


class Tracing:
    """The tracer, the propagator and the exporter of one process."""

    def __init__(self, endpoint: str, *, service_name: str = "redrive") -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider: TracerProvider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        self.tracer = self.provider.get_tracer("redrive")
        self.propagator = TraceContextTextMapPropagator()

    @contextmanager
    def span(self, name: str, parent_headers: Mapping[str, str], *, server: bool, **attributes: Any) -> Iterator[Any]:
        """A current span named ``name``, child of the ``traceparent`` in ``parent_headers`` when there is one."""
        from opentelemetry.trace import SpanKind

        parent = self.propagator.extract(carrier=dict(parent_headers))
        kind = SpanKind.SERVER if server else SpanKind.INTERNAL
        with self.tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes) as span:
            yield span

    def current_headers(self) -> dict[str, str]:
        """``traceparent`` (and ``tracestate``) of the current span."""
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier)
        return carrier

    def aiohttp_trace_config(self) -> aiohttp.TraceConfig:
        """A hook that puts the current span's ``traceparent`` on every outbound request of a session."""
        config = aiohttp.TraceConfig()

        async def on_request_start(session: Any, context: Any, params: aiohttp.TraceRequestStartParams) -> None:
            for name, value in self.current_headers().items():
                params.headers[name] = value

        config.on_request_start.append(on_request_start)
        return config

    def shutdown(self) -> None:
        """Export what is buffered and stop."""
        self.provider.shutdown()


def configure_tracing(endpoint: str | None) -> Tracing | None:
    """Tracing for ``endpoint``, or None (off) when it is not set."""
    return Tracing(endpoint) if endpoint else None


class IngestTracing:
    """A server span around ``POST /hooks/*`` and ``POST /api/v1/events`` whose context is stored with the event."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "POST" or not _is_ingest(path):
            await self.app(scope, receive, send)
            return
        inbound = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in PROPAGATED}
        route = "/hooks/{trigger}" if path.startswith("/hooks/") else path
        with self.tracing.span(f"POST {route}", inbound, server=True, **{"url.path": path}) as span:
            ours = [(k.encode(), v.encode()) for k, v in self.tracing.current_headers().items()]
            headers = [(k, v) for k, v in scope["headers"] if k not in PROPAGATED] + ours

            async def capture(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            await self.app({**scope, "headers": headers}, receive, capture)


def _is_ingest(path: str) -> bool:
    return path.startswith("/hooks/") or path == "/api/v1/events"
