"""OpenTelemetry tracing: one provider per process, exporters chosen by OTEL_* variables.

With nothing configured there is no exporter and no output, and no spans are made: every
request still has a trace id (the caller's, when it sent `traceparent`, else a fresh
one), which its log line and its transfers carry. Spans that nobody reads would cost
each RPC the span objects, context switches and attribute copies for nothing.

Traces start at requests. Our spans are made through a ServiceTracer, which starts a
span without a parent only for an incoming RPC (kind SERVER): the hold sweeper, the
retention sweep, the readiness ping and the listeners, which run every second or so,
would otherwise each start a trace of their own, all day, burying the requests' traces.
MM_TRACE_BACKGROUND=true lets them (observability/switches.py).
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import Attributes

from moneymovement.config import Settings
from moneymovement.observability.switches import switches

# The version of OpenTelemetry's semantic conventions our spans and metrics follow
# (docs/observability.md), told to backends with every batch of them.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.45.0"
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
# Whether spans are made at all: true until configure_tracing finds no exporter (a test or
# an embedding program that installs its own provider gets spans).
_spans = True


def starts_span(context: Context | None = None, kind: SpanKind = SpanKind.INTERNAL) -> bool:
    """Whether a span of `kind` may start under `context` (the current one by default):
    under a span, always; as the root of a new trace, only for an incoming RPC, unless
    MM_TRACE_BACKGROUND=true."""
    if kind is SpanKind.SERVER or switches.trace_background:
        return True
    return trace.get_current_span(context).get_span_context().is_valid


class ServiceTracer:
    """A tracer that starts no trace from background work (see starts_span): where it
    declines, `start_span` gives the invalid span and `start_as_current_span` leaves the
    context as it is, so nothing below makes spans either."""

    def __init__(self, name: str, provider: trace.TracerProvider | None = None) -> None:
        # Without a provider, the global one, even if it is installed later.
        self._tracer = trace.get_tracer(name, tracer_provider=provider, schema_url=SCHEMA_URL)

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[trace.Link] | None = None,
    ) -> trace.Span:
        """A span not made current; the caller ends it."""
        if not starts_span(context, kind):
            return trace.INVALID_SPAN
        return self._tracer.start_span(
            name, context=context, kind=kind, attributes=attributes, links=links
        )

    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[trace.Link] | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> AbstractContextManager[trace.Span]:
        """A span made current for the `with` block, and ended after it."""
        if not starts_span(context, kind):
            return contextlib.nullcontext(trace.INVALID_SPAN)
        return self._tracer.start_as_current_span(
            name,
            context=context,
            kind=kind,
            attributes=attributes,
            links=links,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        )


tracer = ServiceTracer("moneymovement")
# The database spans' tracer (storage/spans.py): set by instrument_database; None, and
# the pool's connections are plain ones, when spans are not made.
_database_tracer: ServiceTracer | None = None


def spans_recorded() -> bool:
    """Whether the service makes spans (an exporter, or a provider installed by hand)."""
    return _spans


def configure_tracing(settings: Settings) -> TracerProvider | None:
    """Installs the process's tracer provider, its exporters and the database spans; with
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
    """Database spans from now on, made by `provider`: pools created after this hand out
    connections that make a span per statement under the current span (storage/spans.py)."""
    global _database_tracer
    _database_tracer = ServiceTracer("moneymovement.storage", provider)


def database_tracer() -> ServiceTracer | None:
    """The database spans' tracer, or None when they are not made."""
    return _database_tracer


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
