"""An RPC served, in telemetry: its server span's attributes and its call duration.

They follow OpenTelemetry's RPC and gRPC conventions (semantic conventions 1.45, where
they became stable; docs/observability.md lists every name and what it replaced). With
OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup the names used before come as well: the span's
`rpc.system`, `rpc.service` and integer `rpc.grpc.status_code`, and the metrics
`moneymovement.rpc.requests` and `moneymovement.rpc.duration`.
"""

from __future__ import annotations

from functools import lru_cache

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from moneymovement.observability import metrics
from moneymovement.observability.switches import switches

SYSTEM = "grpc"


def span_attributes(method: str) -> dict[str, str]:
    """The server span's attributes known when the call starts (a copy to add to).

    Args:
        method: the full gRPC method, `/moneymovement.v1.AccountService/GetAccount`.
    """
    return dict(_span_attributes(method, switches.rpc_previous_names))


def record_outcome(
    span: trace.Span,
    method: str,
    code: tuple[str, int],
    *,
    fault: bool,
    duration_s: float,
    stream: bool = False,
) -> None:
    """The call's end: its status on the span, and its duration in `rpc.server.call.duration`.

    Args:
        span: the server span (the invalid span when none is made).
        method: the full gRPC method.
        code: the gRPC status code's name and number, ("NOT_FOUND", 5).
        fault: whether the code means the server failed (the gRPC conventions' list:
            UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS);
            only then `error.type` and an error status. A business rejection is no fault.
        duration_s: the time the server spent on the call (a stream's whole life).
        stream: a server-streaming call (the previous metrics counted it, timed it not).
    """
    name, number = code
    previous = switches.rpc_previous_names
    if span.is_recording():
        span.set_attribute("rpc.status_code", name)
        if fault:
            span.set_attribute("error.type", name)
            span.set_status(Status(StatusCode.ERROR, name))
        if previous:
            span.set_attribute("rpc.grpc.status_code", number)
    metrics.rpc_server_call_duration.record(duration_s, _metric_attributes(method, name, fault))
    if previous:
        labels = _previous_labels(method, name)
        metrics.rpc_requests.add(1, labels)
        if not stream:
            metrics.rpc_duration.record(duration_s, labels)


@lru_cache(maxsize=512)
def _span_attributes(method: str, previous: bool) -> dict[str, str]:
    full = method.lstrip("/")
    attributes = {"rpc.system.name": SYSTEM, "rpc.method": full}
    if previous:
        # `rpc.method` keeps its new value (the full name): one key cannot hold both.
        attributes["rpc.system"] = SYSTEM
        attributes["rpc.service"] = full.partition("/")[0]
    return attributes


@lru_cache(maxsize=4096)
def _metric_attributes(method: str, code: str, fault: bool) -> dict[str, str]:
    attributes = {"rpc.system.name": SYSTEM, "rpc.method": method.lstrip("/")}
    attributes["rpc.status_code"] = code
    if fault:
        attributes["error.type"] = code
    return attributes


@lru_cache(maxsize=4096)
def _previous_labels(method: str, code: str) -> dict[str, str]:
    return {"method": method.rpartition("/")[2], "code": code}
