"""OpenTelemetry tracing: one provider per process, exporters chosen by OTEL_* variables.

With nothing configured there is no exporter and no output, and no spans are made: every
request still has a trace id (the caller's, when it sent `traceparent`, else a fresh
one), which its log line and its transfers carry. Spans that nobody reads would cost
each RPC the span objects, context switches and attribute copies for nothing.
"""

from __future__ import annotations

import random
import re

from opentelemetry import propagate, trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from moneymovement.config import Settings

tracer = trace.get_tracer("moneymovement")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
# Whether spans are made at all: true until configure_tracing finds no exporter (a test or
# an embedding program that installs its own provider gets spans).
_spans = True


def spans_recorded() -> bool:
    """Whether the service makes spans (an exporter, or a provider installed by hand)."""
    return _spans


def configure_tracing(settings: Settings) -> TracerProvider | None:
    """Installs the process's tracer provider, its exporters and the asyncpg spans; with
    no exporter or OTEL_SDK_DISABLED=true, nothing, and no spans are made.

    OTEL_TRACES_EXPORTER: `none` (default), `otlp`, `console`, or a comma list. The OTLP
    exporter reads the standard OTEL_EXPORTER_OTLP_* variables (endpoint, headers) and
    speaks OTEL_EXPORTER_OTLP_PROTOCOL (`grpc` or `http/protobuf`). OTEL_SERVICE_NAME and
    OTEL_RESOURCE_ATTRIBUTES name the service; OTEL_TRACES_SAMPLER picks the sampler.
    """
    global _spans
    exporters = _exporters(settings) if settings.telemetry_enabled else []
    _spans = bool(exporters)
    if not exporters:
        return None
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.service_name}),
        # The SDK's own choice, OTEL_TRACES_SAMPLER (default parent-based always-on).
    )
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    instrument_database(provider)
    return provider


def instrument_database(provider: trace.TracerProvider) -> None:
    """A span for every asyncpg query, under whatever span is current."""
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)


def _exporters(settings: Settings) -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    for name in settings.traces_exporters:
        if name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name == "otlp" and settings.otlp_protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HttpSpanExporter,
            )

            exporters.append(HttpSpanExporter())
    return exporters


def extract_context(metadata: dict[str, str]) -> object:
    """The caller's trace context from gRPC metadata (W3C traceparent, baggage)."""
    return propagate.extract(metadata)


def current_trace_id(traceparent: str | None = None) -> str:
    """The trace id of the current span, as 32 hex digits; without spans, the caller's
    from `traceparent`, or a fresh random one (a request is always traceable)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        return format(context.trace_id, "032x")
    match = _TRACEPARENT.fullmatch((traceparent or "").strip())
    if match is None or match[1] == "0" * 32:
        return format(random.getrandbits(128) or 1, "032x")
    return match[1]
