"""Traces and logs of real RPCs: one trace from the client to the database, the transfer
linked to it, attempt spans for retries, and the canonical log line."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import asyncpg
import grpc
import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from moneymovement.observability.logging import configure_logging
from moneymovement.storage.ledger import LedgerStore
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from tests.conftest import SPANS
from tests.e2e.conftest import Api, failure

client_tracer = trace.get_tracer("test-client")


def _hex(span_id: int, width: int = 16) -> str:
    return format(span_id, f"0{width}x")


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def _server_span(spans: list[ReadableSpan], rpc: str) -> ReadableSpan:
    [server] = [s for s in spans if s.kind == SpanKind.SERVER and s.name.endswith("/" + rpc)]
    return server


async def _traced_pay(api: Api, request_id: str, debit: str, credit: str, amount: int) -> tuple[
    mpb.CreateTransferResponse | BaseException, ReadableSpan | None
]:  # fmt: skip
    """A CreateTransfer inside a client span whose context travels as traceparent."""
    with client_tracer.start_as_current_span("client call", kind=SpanKind.CLIENT) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        request = mpb.CreateTransferRequest(
            request_id=request_id, debit_account_id=debit, credit_account_id=credit,
            amount_minor=amount, currency_code="USD",
        )  # fmt: skip
        try:
            reply: (
                mpb.CreateTransferResponse | BaseException
            ) = await api.a.movements.CreateTransfer(
                request, metadata=(*api.a.md, *carrier.items())
            )
        except grpc.aio.AioRpcError as error:
            reply = error
    return reply, span  # type: ignore[return-value]


async def test_one_trace_from_the_client_through_the_attempt_to_the_database(api: Api) -> None:
    customer, _ = await api.a.fund("tr", 1_000)
    merchant = (await api.a.open("tr-m")).id
    SPANS.clear()
    reply, client = await _traced_pay(api, "tr-pay", customer, merchant, 250)
    assert isinstance(reply, mpb.CreateTransferResponse)
    assert client is not None
    trace_id = client.get_span_context().trace_id

    assert reply.transfer.trace_id == _hex(trace_id, 32)  # the money knows its trace
    spans = list(SPANS.get_finished_spans())
    server = _server_span(spans, "CreateTransfer")
    assert server.parent is not None
    assert server.parent.span_id == client.get_span_context().span_id
    assert server.attributes is not None
    assert server.attributes["moneymovement.request_id"] == "tr-pay"
    assert str(server.attributes["moneymovement.tenant_id"]).startswith("ten_")
    assert server.attributes["rpc.grpc.status_code"] == 0
    [attempt] = [s for s in _children(spans, server) if s.name == "transaction"]
    assert attempt.attributes is not None
    assert attempt.attributes["db.transaction.attempt"] == 1
    queries = _children(spans, attempt)
    assert len(queries) >= 4  # BEGIN, outcome lookup, lock, write, outcome save, COMMIT
    assert all(s.attributes and s.attributes.get("db.system") == "postgresql" for s in queries)
    assert {s.context.trace_id for s in [server, attempt, *queries]} == {trace_id}
    listed = await api.a.movements.ListTransfers(
        mpb.ListTransfersRequest(trace_id=_hex(trace_id, 32)), metadata=api.a.md
    )
    assert [t.id for t in listed.transfers] == [reply.transfer.id]
    statement = await api.a.balances.ListEntries(
        bpb.ListEntriesRequest(account_id=merchant), metadata=api.a.md
    )
    assert [e.trace_id for e in statement.entries] == [_hex(trace_id, 32)]


async def test_a_forced_serialization_retry_shows_two_attempt_spans(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer, _ = await api.a.fund("retry", 1_000)
    merchant = (await api.a.open("retry-m")).id
    original = LedgerStore.write
    failures = iter([True])

    async def conflicting_once(self: LedgerStore, *written: object) -> None:
        if next(failures, False):
            raise asyncpg.SerializationError("forced by the test")
        await original(self, *written)  # type: ignore[arg-type]

    monkeypatch.setattr(LedgerStore, "write", conflicting_once)
    SPANS.clear()
    reply, _ = await _traced_pay(api, "retry-pay", customer, merchant, 10)
    assert isinstance(reply, mpb.CreateTransferResponse)
    spans = list(SPANS.get_finished_spans())
    attempts = [
        s
        for s in _children(spans, _server_span(spans, "CreateTransfer"))
        if s.name == "transaction"
    ]
    assert [a.attributes["db.transaction.attempt"] for a in attempts if a.attributes] == [1, 2]
    assert attempts[1].attributes is not None
    assert attempts[1].attributes["db.transaction.retry_reason"] == "serialization"
    # The retried attempt recorded the request once: reusing its id for another amount fails.
    reused = await failure(api.a.pay("retry-pay", customer, merchant, 11))
    assert (reused.code, reused.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")


async def test_rejections_are_not_span_errors_but_server_faults_are(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer, _ = await api.a.fund("err", 10)
    merchant = (await api.a.open("err-m")).id
    SPANS.clear()
    refused, _ = await _traced_pay(api, "err-1", customer, merchant, 11)
    assert isinstance(refused, grpc.aio.AioRpcError)
    rejection = _server_span(list(SPANS.get_finished_spans()), "CreateTransfer")
    assert rejection.status.status_code == StatusCode.UNSET
    assert rejection.attributes is not None
    assert rejection.attributes["moneymovement.reason"] == "INSUFFICIENT_FUNDS"

    async def broken(self: LedgerStore, *written: object) -> None:
        raise RuntimeError("secret internals: relation xyz")

    monkeypatch.setattr(LedgerStore, "write", broken)
    SPANS.clear()
    fault = await failure(api.a.pay("err-2", customer, merchant, 1))
    assert (fault.code, fault.reason) == (grpc.StatusCode.INTERNAL, "INTERNAL")
    assert "secret" not in fault.message
    server = _server_span(list(SPANS.get_finished_spans()), "CreateTransfer")
    assert server.status.status_code == StatusCode.ERROR


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("INFO", "json", stream=buffer)
    yield buffer
    configure_logging("INFO", "console")


async def test_the_canonical_log_line_has_every_field_and_no_token(
    api: Api, captured_logs: io.StringIO
) -> None:
    customer, _ = await api.a.fund("log", 100)
    merchant = (await api.a.open("log-m")).id
    reply, client = await _traced_pay(api, "log-pay", customer, merchant, 40)
    assert isinstance(reply, mpb.CreateTransferResponse)
    assert client is not None
    text = captured_logs.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    [line] = [
        x for x in lines
        if x.get("event") == "rpc_finished" and x.get("request_id") == "log-pay"
    ]  # fmt: skip
    assert line["method"] == "/moneymovement.v1.MoneyMovementService/CreateTransfer"
    assert line["code"] == "OK"
    assert line["duration_ms"] > 0
    assert line["tenant_id"].startswith("ten_")
    assert line["trace_id"] == _hex(client.get_span_context().trace_id, 32)
    assert len(line["span_id"]) == 16
    assert line["retries"] == 0
    assert line["level"] == "info"
    # One line per RPC: what the request did to money is on it too.
    assert line["domain_event"] == "transfer_created"
    assert line["transfer_id"] == reply.transfer.id
    assert (line["amount_minor"], line["transfer_kind"]) == (40, "immediate")
    assert not [x for x in lines if x.get("event") == "transfer_created"]
    token = dict(api.a.md)["authorization"].split()[1]
    assert token not in text
    assert "authorization" not in text.lower()
