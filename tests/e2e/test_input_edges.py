"""Inputs that used to slip past validation and answer INTERNAL (or worse).

Each answers INVALID_ARGUMENT naming the field, and changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json

import asyncpg
import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from moneymovement.observability.logging import configure_logging
from moneymovement.service.pages import scope_of
from moneymovement.v1 import account_pb2
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from tests.e2e.conftest import Api, failure

Code = grpc.StatusCode


async def test_nul_characters_are_refused_not_sent_to_the_database(api: Api) -> None:
    request = apb.CreateAccountRequest(
        request_id="nul", currency_code="USD", normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
        name="a\x00b", metadata={"k": "v\x00"},
    )  # fmt: skip
    bad = await failure(api.a.accounts.CreateAccount(request, metadata=api.a.md))
    assert bad.code == Code.INVALID_ARGUMENT
    assert dict(bad.field_violations) == {"name": "INVALID_FORMAT", "metadata[k]": "INVALID_FORMAT"}


async def test_times_and_durations_out_of_range_are_refused(api: Api) -> None:
    wallet, funding = await api.a.fund("t", 10)
    far = bpb.GetBalanceRequest(account_id=wallet)
    far.as_of_time.seconds = 10**12  # beyond year 9999
    bad = await failure(api.a.balances.GetBalance(far, metadata=api.a.md))
    assert bad.field_violations == [("as_of_time", "OUT_OF_RANGE")]
    hold = mpb.CreateTransferRequest(
        request_id="t-h", debit_account_id=wallet, credit_account_id=funding, amount_minor=1,
        currency_code="USD", pending=True, hold_timeout=duration_pb2.Duration(seconds=10**15),
    )  # fmt: skip
    bad = await failure(api.a.movements.CreateTransfer(hold, metadata=api.a.md))
    assert bad.field_violations == [("hold_timeout", "OUT_OF_RANGE")]
    listing = mpb.ListTransfersRequest()
    listing.start_time.seconds, listing.end_time.seconds = 2_000_000_000, 1_000_000_000
    bad = await failure(api.a.movements.ListTransfers(listing, metadata=api.a.md))
    assert bad.field_violations == [("end_time", "OUT_OF_RANGE")]


# Durations and Timestamps as google/protobuf defines them: nanos within +-999,999,999
# (Timestamp: 0 to 999,999,999), seconds and nanos of one sign (Duration), seconds within
# +-315,576,000,000 (Duration) or years 1 to 9999 (Timestamp).
BAD_DURATIONS = [
    duration_pb2.Duration(seconds=10, nanos=-1),  # signs disagree
    duration_pb2.Duration(seconds=-10, nanos=1),
    duration_pb2.Duration(seconds=1, nanos=1_000_000_000),  # nanos out of range
    duration_pb2.Duration(seconds=315_576_000_001),  # beyond the type's range
    duration_pb2.Duration(seconds=-(2**63)),
]
BAD_TIMESTAMPS = [
    timestamp_pb2.Timestamp(seconds=2_000_000_000, nanos=-1),
    timestamp_pb2.Timestamp(seconds=2_000_000_000, nanos=1_000_000_000),
    timestamp_pb2.Timestamp(seconds=253_402_300_800),  # year 10000
    timestamp_pb2.Timestamp(seconds=-62_135_596_801),  # before year 1
]


async def test_malformed_durations_and_timestamps_are_refused_naming_the_field(
    api: Api,
) -> None:
    wallet, funding = await api.a.fund("wkt", 10)

    def transfer(**fields: object) -> mpb.CreateTransferRequest:
        return mpb.CreateTransferRequest(
            request_id="wkt", debit_account_id=wallet, credit_account_id=funding,
            amount_minor=1, currency_code="USD", **fields,  # type: ignore[arg-type]
        )  # fmt: skip

    def item(**fields: object) -> mpb.CreateTransfersRequest:
        return mpb.CreateTransfersRequest(
            request_id="wkt-batch",
            transfers=[mpb.CreateTransfersRequest.Item(
                debit_account_id=wallet, credit_account_id=funding, amount_minor=1,
                currency_code="USD", **fields,  # type: ignore[arg-type]
            )],
        )  # fmt: skip

    calls = []
    for bad in BAD_DURATIONS:
        calls += [
            (api.a.movements.CreateTransfer, transfer(pending=True, hold_timeout=bad),
             "hold_timeout"),
            (api.a.movements.CreateTransfer, transfer(availability_delay=bad),
             "availability_delay"),
            (api.a.movements.CreateTransfers, item(pending=True, hold_timeout=bad),
             "transfers[0].hold_timeout"),
        ]  # fmt: skip
    for bad in BAD_TIMESTAMPS:
        calls += [
            (api.a.movements.CreateTransfer, transfer(pending=True, hold_expire_time=bad),
             "hold_expire_time"),
            (api.a.movements.CreateTransfer, transfer(available_time=bad), "available_time"),
            (api.a.balances.GetBalance, bpb.GetBalanceRequest(account_id=wallet, as_of_time=bad),
             "as_of_time"),
            (api.a.balances.ListEntries, bpb.ListEntriesRequest(account_id=wallet, start_time=bad),
             "start_time"),
            (api.a.movements.ListTransfers, mpb.ListTransfersRequest(end_time=bad), "end_time"),
        ]  # fmt: skip
    for method, request, field in calls:
        refused = await failure(method(request, metadata=api.a.md))
        assert refused.code == Code.INVALID_ARGUMENT, (request, refused)
        assert (field, "OUT_OF_RANGE") in refused.field_violations, (request, refused)
    balance = await api.a.balances.GetBalance(
        bpb.GetBalanceRequest(account_id=wallet), metadata=api.a.md
    )
    assert balance.balance.posted_minor == 10  # nothing moved


async def test_forged_statement_page_tokens_are_refused(api: Api) -> None:
    wallet, _ = await api.a.fund("pt", 10)
    scope = scope_of("entries", wallet, None, None, False)
    for position in (["not a number"], [10**30], [-1], []):
        raw = json.dumps({"p": position, "s": scope}).encode()
        token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        request = bpb.ListEntriesRequest(account_id=wallet, page_token=token)
        bad = await failure(api.a.balances.ListEntries(request, metadata=api.a.md))
        assert bad.field_violations == [("page_token", "INVALID_PAGE_TOKEN")], position


async def test_a_batch_of_bad_items_fits_in_its_error(api: Api) -> None:
    items = [mpb.CreateTransfersRequest.Item() for _ in range(1_000)]
    request = mpb.CreateTransfersRequest(request_id="many", transfers=items)
    bad = await failure(api.a.movements.CreateTransfers(request, metadata=api.a.md))
    assert bad.code == Code.INVALID_ARGUMENT  # not RESOURCE_EXHAUSTED for oversized details
    assert len(bad.field_violations) == 50
    assert bad.field_violations[0] == ("transfers[0].debit_account_id", "REQUIRED")
    assert "more" in bad.message


async def test_a_cancelled_call_still_writes_its_log_line(api: Api) -> None:
    buffer = io.StringIO()
    configure_logging("INFO", "json", stream=buffer)
    try:
        wallet, funding = await api.a.fund("cx", 10)
        blocker = await asyncpg.connect(api.dsn)
        try:
            async with blocker.transaction():
                await blocker.execute(
                    "SELECT 1 FROM accounts WHERE account_id = $1 FOR UPDATE", wallet
                )
                request = mpb.CreateTransferRequest(
                    request_id="cx-pay", debit_account_id=wallet, credit_account_id=funding,
                    amount_minor=1, currency_code="USD",
                )  # fmt: skip
                call = api.a.movements.CreateTransfer(request, metadata=api.a.md)
                await asyncio.sleep(0.3)
                call.cancel()
                await asyncio.sleep(0.3)
        finally:
            await blocker.close()
    finally:
        configure_logging("INFO", "console")
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    finished = [
        x for x in lines if x.get("event") == "rpc_finished" and x.get("request_id") == "cx-pay"
    ]
    assert [x["code"] for x in finished] == ["CANCELLED"]
