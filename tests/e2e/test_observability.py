"""Traces, metrics and logs of real RPCs: one trace from the client to the database, the
transfer linked to it, attempt spans for retries, OpenTelemetry's RPC and database
conventions (and the previous names on request), no trace started by background work,
the metrics as Prometheus scrapes them, and the canonical log line."""

from __future__ import annotations

import asyncio
import io
import json
import re
import urllib.request
from collections.abc import Iterator

import asyncpg
import grpc
import pytest
from google.protobuf import duration_pb2
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from moneymovement.observability.logging import configure_logging
from moneymovement.observability.switches import read_switches, switches
from moneymovement.storage.ledger import LedgerStore
from moneymovement.storage.queries import all_queries
from moneymovement.storage.spans import statement_name
from moneymovement.v1 import (
    account_pb2,
    account_service_pb2,
    account_service_pb2_grpc,
    transfer_pb2,
)
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from moneymovement.v1 import money_movement_service_pb2_grpc as mpb_grpc
from tests.conftest import SPANS
from tests.e2e.conftest import Api, failure, start_api, stop_api
from tests.e2e.test_process import ServeProcess, _wait_serving, serve_process

client_tracer = trace.get_tracer("test-client")


def _hex(span_id: int, width: int = 16) -> str:
    return format(span_id, f"0{width}x")


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def _server_span(spans: list[ReadableSpan], rpc: str) -> ReadableSpan:
    [server] = [s for s in spans if s.kind == SpanKind.SERVER and s.name.endswith("/" + rpc)]
    return server


def _database_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.attributes and s.attributes.get("db.system.name")]


def _roots(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    """The spans that started a trace of their own (no parent in this process or the
    caller's)."""
    return [s for s in spans if s.parent is None]


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
    [attempt] = [s for s in _children(spans, server) if s.name == "transaction"]
    assert attempt.attributes is not None
    assert attempt.attributes["moneymovement.transaction.attempt"] == 1
    queries = _children(spans, attempt)
    # The outcomes lookup, BEGIN with the tenant, the locks, the write, COMMIT: each a
    # client span named after its statement in sql/*.sql.
    assert {"find_outcomes", "begin_write", "lock_batch", "write_batch", "commit"} <= {
        s.name for s in queries
    }
    assert queries == _database_spans(queries)
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
    assert [
        a.attributes["moneymovement.transaction.attempt"] for a in attempts if a.attributes
    ] == [1, 2]
    assert attempts[1].attributes is not None
    assert attempts[1].attributes["moneymovement.transaction.retry_reason"] == "serialization"
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
    assert rejection.attributes["rpc.status_code"] == "FAILED_PRECONDITION"
    assert "error.type" not in rejection.attributes  # a business answer, not a failure

    async def broken(self: LedgerStore, *written: object) -> None:
        raise RuntimeError("secret internals: relation xyz")

    monkeypatch.setattr(LedgerStore, "write", broken)
    SPANS.clear()
    fault = await failure(api.a.pay("err-2", customer, merchant, 1))
    assert (fault.code, fault.reason) == (grpc.StatusCode.INTERNAL, "INTERNAL")
    assert "secret" not in fault.message
    server = _server_span(list(SPANS.get_finished_spans()), "CreateTransfer")
    assert server.status.status_code == StatusCode.ERROR
    assert server.attributes is not None
    assert server.attributes["rpc.status_code"] == "INTERNAL"
    assert server.attributes["error.type"] == "INTERNAL"


async def test_spans_follow_the_current_rpc_and_database_conventions(api: Api) -> None:
    customer, _ = await api.a.fund("conv", 100)
    merchant = (await api.a.open("conv-m")).id
    SPANS.clear()
    reply, _ = await _traced_pay(api, "conv-pay", customer, merchant, 40)
    assert isinstance(reply, mpb.CreateTransferResponse)
    spans = list(SPANS.get_finished_spans())

    server = _server_span(spans, "CreateTransfer")
    assert server.name == "moneymovement.v1.MoneyMovementService/CreateTransfer"
    assert server.attributes is not None
    assert {k: v for k, v in server.attributes.items() if k.startswith("rpc.")} == {
        "rpc.system.name": "grpc",
        "rpc.method": "moneymovement.v1.MoneyMovementService/CreateTransfer",
        "rpc.status_code": "OK",
    }
    assert "error.type" not in server.attributes

    database = _database_name(api.dsn)
    queries = _database_spans(spans)
    assert queries
    for query in queries:
        attributes = query.attributes or {}
        assert query.kind == SpanKind.CLIENT
        assert query.name == attributes["db.query.summary"]
        # Our statements by their names; asyncpg's own transaction of the token lookup
        # (BEGIN, COMMIT) by their first word.
        assert query.name in {*all_queries(), "BEGIN", "COMMIT"}, query.name
        assert attributes["db.system.name"] == "postgresql"
        assert attributes["db.namespace"] == database
        assert attributes["server.address"]
        # The text is off by default, and the names used before are not sent.
        assert not {"db.query.text", "db.statement", "db.system", "db.name"} & set(attributes)
    assert not [s.name for s in spans if s.name.startswith("--")]


def _database_name(dsn: str) -> str:
    return dsn.rsplit("/", 1)[1].split("?", 1)[0]


async def test_a_failed_statement_tells_its_sqlstate_and_no_span_is_named_after_a_comment(
    api: Api,
) -> None:
    SPANS.clear()
    async with api.database._pool.acquire() as connection:
        with (
            client_tracer.start_as_current_span("a caller"),
            pytest.raises(asyncpg.DivisionByZeroError),
        ):
            await connection.fetchval("-- not one of ours\n/* nor this */ SELECT 1 / 0")
    [failed] = _database_spans(list(SPANS.get_finished_spans()))
    assert failed.name == "SELECT"  # SQL of no named statement: its first word
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["db.response.status_code"] == "22012"
    assert failed.attributes["error.type"] == "22012"


def test_every_named_statement_names_its_span() -> None:
    from moneymovement.storage.session import begin_statement

    for name, sql in all_queries().items():
        assert statement_name(sql) == name
    tenant = "ten_" + "a" * 26
    assert statement_name(begin_statement("begin_write", tenant)) == "begin_write"
    assert statement_name(begin_statement("begin_read", tenant)) == "begin_read"
    assert statement_name("\n  -- x\n/* y\n */ select 1") == "SELECT"
    assert statement_name("-- a comment alone") == "postgresql"  # never `--`


def test_the_switches_read_the_opt_in_list() -> None:
    read = read_switches(
        {"OTEL_SEMCONV_STABILITY_OPT_IN": "http, rpc/dup,database", "MM_TRACE_BACKGROUND": "1"}
    )
    assert (read.rpc_previous_names, read.database_previous_names) == (True, False)
    assert (read.trace_background, read.query_text) == (True, False)
    assert read_switches({}) == type(read)()  # all off by default


async def test_background_work_starts_no_trace_unless_asked(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = await start_api(dsn, MM_HOLD_SWEEP_S="0.1", MM_RETENTION_SWEEP_S="0.1")
    try:
        wallet, _ = await api.a.fund("bg", 100)
        merchant = (await api.a.open("bg-m")).id
        hold = mpb.CreateTransferRequest(
            request_id="bg-hold", debit_account_id=wallet, credit_account_id=merchant,
            amount_minor=10, currency_code="USD", pending=True,
            hold_timeout=duration_pb2.Duration(nanos=200_000_000),
        )  # fmt: skip
        held = (await api.a.movements.CreateTransfer(hold, metadata=api.a.md)).transfer
        SPANS.clear()
        await api.database.ping()  # what readiness does every two seconds
        for _ in range(50):  # the sweeper expires the hold in a transaction of its own
            got = await api.a.movements.GetTransfer(
                mpb.GetTransferRequest(transfer_id=held.id), metadata=api.a.md
            )
            if got.transfer.state == transfer_pb2.Transfer.STATE_EXPIRED:
                break
            await asyncio.sleep(0.1)
        assert got.transfer.state == transfer_pb2.Transfer.STATE_EXPIRED
        await asyncio.sleep(0.3)  # a few more sweeps and retention steps
        spans = list(SPANS.get_finished_spans())
        # Only the GetTransfer calls started traces; the sweeps, the expiry's transaction,
        # the retention steps and the ping made no span at all.
        assert {s.kind for s in _roots(spans)} == {SpanKind.SERVER}
        assert {s.name for s in _roots(spans)} == {
            "moneymovement.v1.MoneyMovementService/GetTransfer"
        }
        assert not [s for s in spans if s.name in ("find_expired_holds", "ping", "transaction")]

        monkeypatch.setattr(switches, "trace_background", True)
        SPANS.clear()
        await api.database.ping()
        await asyncio.sleep(0.5)
        roots = {s.name for s in _roots(list(SPANS.get_finished_spans()))}
        assert {"ping", "find_expired_holds", "prune_events"} <= roots
    finally:
        await stop_api(api)


async def test_the_previous_names_come_too_when_asked(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(switches, "rpc_previous_names", True)
    monkeypatch.setattr(switches, "database_previous_names", True)
    monkeypatch.setattr(switches, "query_text", True)
    api = await start_api(dsn)  # its connections are opened with the switches on
    try:
        customer, _ = await api.a.fund("dup", 100)
        merchant = (await api.a.open("dup-m")).id
        SPANS.clear()
        reply, _ = await _traced_pay(api, "dup-pay", customer, merchant, 40)
        assert isinstance(reply, mpb.CreateTransferResponse)
        spans = list(SPANS.get_finished_spans())
    finally:
        await stop_api(api)
    server = _server_span(spans, "CreateTransfer")
    assert server.attributes is not None
    assert {k: v for k, v in server.attributes.items() if k.startswith("rpc.")} == {
        "rpc.system.name": "grpc",
        "rpc.system": "grpc",
        "rpc.service": "moneymovement.v1.MoneyMovementService",
        "rpc.method": "moneymovement.v1.MoneyMovementService/CreateTransfer",
        "rpc.status_code": "OK",
        "rpc.grpc.status_code": 0,
    }
    [write] = [s for s in spans if s.name == "write_batch"]
    assert write.attributes is not None
    assert write.attributes["db.system"] == write.attributes["db.system.name"] == "postgresql"
    assert write.attributes["db.name"] == write.attributes["db.namespace"]
    assert write.attributes["db.query.text"] == all_queries()["write_batch"]
    assert write.attributes["db.statement"] == all_queries()["write_batch"]


@pytest.fixture
def serve() -> Iterator[ServeProcess]:
    yield from serve_process("test-metrics")


def _rpc_samples(port: int) -> dict[str, float]:
    """The RPC samples of a Prometheus scrape, keyed by name and labels (scope labels cut)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith(("rpc_", "moneymovement_rpc_")):
            key, value = line.rsplit(" ", 1)
            key = re.sub(r'otel_scope_\w+="[^"]*",?', "", key).replace(",}", "}")
            samples[key] = float(value)
    return samples


async def _create_account(serve: ServeProcess, request_id: str) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{serve.port}") as channel:
        request = account_service_pb2.CreateAccountRequest(
            request_id=request_id, currency_code="EUR",
            normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
        )  # fmt: skip
        await account_service_pb2_grpc.AccountServiceStub(channel).CreateAccount(
            request, metadata=(("authorization", f"Bearer {serve.token()}"),)
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await mpb_grpc.MoneyMovementServiceStub(channel).CreateTransfer(
                mpb.CreateTransferRequest(), metadata=(("authorization", "Bearer nope"),)
            )


async def test_prometheus_shows_rpc_server_call_duration_and_the_old_names_on_request(
    serve: ServeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = (
        'rpc_server_call_duration_seconds_count{rpc_method="moneymovement.v1.AccountService/'
        'CreateAccount",rpc_status_code="OK",rpc_system_name="grpc"}'
    )
    refused = (
        'rpc_server_call_duration_seconds_count{rpc_method="moneymovement.v1.'
        'MoneyMovementService/CreateTransfer",rpc_status_code="UNAUTHENTICATED",'
        'rpc_system_name="grpc"}'
    )
    old = 'moneymovement_rpc_requests_total{code="OK",method="CreateAccount"}'
    serve.start()
    await _wait_serving(serve)
    await _create_account(serve, "metrics-1")
    samples = await asyncio.to_thread(_rpc_samples, serve.metrics_port)
    assert samples[created] == 1
    assert samples[refused] == 1
    assert not [name for name in samples if name.startswith("moneymovement_rpc_")]

    assert serve.process is not None
    serve.process.terminate()
    await asyncio.to_thread(serve.process.wait, 30)
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "rpc/dup")
    serve.start()
    await _wait_serving(serve)
    await _create_account(serve, "metrics-2")
    samples = await asyncio.to_thread(_rpc_samples, serve.metrics_port)
    assert samples[created] == 1
    assert samples[old] == 1
    assert (
        samples['moneymovement_rpc_duration_seconds_count{code="OK",method="CreateAccount"}'] == 1
    )


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


async def test_hold_steps_are_told_on_their_request_lines(
    api: Api, captured_logs: io.StringIO
) -> None:
    wallet, _ = await api.a.fund("hlog", 1_000)
    shop = (await api.a.open("hlog-shop")).id
    hold = await api.a.movements.CreateTransfer(
        mpb.CreateTransferRequest(
            request_id="hlog-auth", debit_account_id=wallet, credit_account_id=shop,
            amount_minor=500, currency_code="USD", pending=True,
        ),
        metadata=api.a.md,
    )  # fmt: skip
    order = hold.transfer.id
    await api.a.movements.PostTransfer(
        mpb.PostTransferRequest(
            request_id="hlog-part", transfer_id=order, amount_minor=200, final_capture=False
        ),
        metadata=api.a.md,
    )
    other = await api.a.movements.CreateTransfer(
        mpb.CreateTransferRequest(
            request_id="hlog-auth-2", debit_account_id=wallet, credit_account_id=shop,
            amount_minor=100, currency_code="USD", pending=True,
        ),
        metadata=api.a.md,
    )  # fmt: skip
    batch = mpb.CreateTransfersRequest
    await api.a.movements.CreateTransfers(
        batch(request_id="hlog-batch", operations=[
            batch.Operation(capture_hold=batch.CaptureHold(transfer_id=order)),
            batch.Operation(void_hold=batch.VoidHold(transfer_id=other.transfer.id)),
        ]),
        metadata=api.a.md,
    )  # fmt: skip

    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    by_request = {
        x["request_id"]: x for x in lines if x.get("event") == "rpc_finished" and "request_id" in x
    }
    part = by_request["hlog-part"]
    assert (part["domain_event"], part["transfer_id"], part["hold_state"]) == (
        "hold_captured", order, "PENDING",
    )  # fmt: skip
    assert (part["step_amount_minor"], part["posted_amount_minor"]) == (200, 200)
    both = by_request["hlog-batch"]
    assert both["domain_event"] == "batch_operations"
    assert both["hold_steps"] == [f"{order}:POSTED", f"{other.transfer.id}:VOIDED"]
    assert both["transfers"] == 0
