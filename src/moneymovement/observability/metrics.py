"""The service's metrics: every instrument is declared here, and recorded through it.

Exposed for Prometheus scraping on MM_METRICS_ADDRESS (off when empty), and pushed by
OTLP when OTEL_METRICS_EXPORTER=otlp. Names as Prometheus shows them are listed in
docs/observability.md. RPCs are timed in `rpc.server.call.duration`, OpenTelemetry's
RPC metric (observability/rpc.py records it); `moneymovement.*` are the business's and
the write pipeline's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from moneymovement.config import Settings
from moneymovement.observability.tracing import SCHEMA_URL

_meter = metrics.get_meter("moneymovement", schema_url=SCHEMA_URL)
# From a millisecond (a balance read) to the longest deadline, in seconds.
_RPC_BUCKETS_S = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

rpc_server_call_duration = _meter.create_histogram(
    "rpc.server.call.duration",
    unit="s",
    description="Measures the duration of inbound remote procedure calls (RPC).",
    explicit_bucket_boundaries_advisory=_RPC_BUCKETS_S,
)
# The names used before OpenTelemetry's RPC metric: recorded only with
# OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup (an instrument never recorded is not exported).
rpc_requests = _meter.create_counter(
    "moneymovement.rpc.requests", unit="1", description="RPCs served, by method and code"
)
rpc_duration = _meter.create_histogram(
    "moneymovement.rpc.duration",
    unit="s",
    description="RPC latency, by method and code",
    explicit_bucket_boundaries_advisory=_RPC_BUCKETS_S,
)
transfers = _meter.create_counter(
    "moneymovement.transfers", unit="1", description="Transfers written, by currency and kind"
)
amount_moved = _meter.create_counter(
    "moneymovement.amount.moved",
    unit="1",
    description="Minor units moved by new transfers, by currency and kind",
)
tx_retries = _meter.create_counter(
    "moneymovement.tx.retries", unit="1", description="Transactions retried, by reason"
)
tx_aborts = _meter.create_counter(
    "moneymovement.tx.aborts",
    unit="1",
    description="Requests that ran out of retries (ABORTED)",
)
write_commits = _meter.create_counter(
    "moneymovement.write.commits",
    unit="1",
    description="Transactions committed by the write pipeline",
)
write_batch_size = _meter.create_histogram(
    "moneymovement.write.batch_size",
    unit="1",
    description="Commands per transaction committed by the write pipeline",
    explicit_bucket_boundaries_advisory=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
)
holds_expired = _meter.create_counter(
    "moneymovement.holds.expired", unit="1", description="Holds released by the sweeper"
)
events_written = _meter.create_counter(
    "moneymovement.events.written", unit="1", description="Events committed to the outbox"
)
events_delivered = _meter.create_counter(
    "moneymovement.events.delivered",
    unit="1",
    description="Events sent to consumers, by RPC (WatchEvents, ListEvents)",
)
event_delivery_latency = _meter.create_histogram(
    "moneymovement.events.delivery_latency",
    unit="s",
    description="From an event's transaction time to its sending on a live stream",
    explicit_bucket_boundaries_advisory=[
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60,
    ],
)  # fmt: skip


def observe_event_streams(open_streams: Callable[[], int], oldest_lag: Callable[[], int]) -> None:
    """Gauges of the event streams: how many are open, and how many events the furthest
    behind of them still has to receive."""
    _meter.create_observable_gauge(
        "moneymovement.events.streams",
        [lambda _: [Observation(open_streams())]],
        unit="1",
        description="Event streams (WatchEvents) open on this replica",
    )
    _meter.create_observable_gauge(
        "moneymovement.events.oldest_watcher_lag",
        [lambda _: [Observation(oldest_lag())]],
        unit="1",
        description="Events the furthest-behind open stream has yet to receive",
    )


def observe_pool(stats: Callable[[], tuple[int, int, int]]) -> None:
    """Gauges of the database pool: connections in use, open, and callers waiting."""
    for index, name in enumerate(("in_use", "size", "waiting")):

        def observe(_: CallbackOptions, index: int = index) -> Iterable[Observation]:
            return [Observation(stats()[index])]

        _meter.create_observable_gauge(f"moneymovement.db.pool.{name}", [observe], unit="1")


def configure_metrics(settings: Settings) -> MeterProvider | None:
    """Installs the process's meter provider with its readers; with OTEL_SDK_DISABLED=true,
    or no reader (no MM_METRICS_ADDRESS, no OTLP), nothing: every instrument stays the
    API's no-op."""
    if not settings.telemetry_enabled:
        return None
    readers: list[MetricReader] = []
    if settings.metrics_address:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server

        host, _, port = settings.metrics_address.rpartition(":")
        start_http_server(int(port), addr=host or "0.0.0.0")  # noqa: S104 - configured
        readers.append(PrometheusMetricReader())
    if "otlp" in settings.metrics_exporters:
        if settings.otlp_protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[assignment]
                OTLPMetricExporter,
            )
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    if not readers:
        # Nobody reads them: the API's no-op instruments cost ~1 µs a call, the SDK's
        # ~15 µs (aggregating what no reader will ever collect).
        return None
    provider = MeterProvider(
        metric_readers=readers, resource=Resource.create({"service.name": settings.service_name})
    )
    metrics.set_meter_provider(provider)
    return provider
