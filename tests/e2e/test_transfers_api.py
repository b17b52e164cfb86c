"""MoneyMovementService and BalanceService over a real port."""

from __future__ import annotations

import asyncio

import grpc

from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from moneymovement.v1 import transfer_pb2
from tests.e2e.conftest import Api, failure, start_api, stop_api
from tests.ledger_checks import assert_ledger_consistent

Code = grpc.StatusCode
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def balances(api: Api, *account_ids: str) -> list[int]:
    response = await api.a.balances.BatchGetBalances(
        bpb.BatchGetBalancesRequest(account_ids=account_ids), metadata=api.a.md
    )
    return [b.available_minor for b in response.balances]


async def test_move_money_and_read_it_back(api: Api) -> None:
    customer, funding = await api.a.fund("m", 10_000)
    merchant = (await api.a.open("m-merchant")).id
    request = mpb.CreateTransferRequest(
        request_id="m-pay", debit_account_id=customer, credit_account_id=merchant,
        amount_minor=9_223_372_036_854, currency_code="USD", description="order 7",
        metadata={"order": "7"},
    )  # fmt: skip
    too_much = await failure(api.a.movements.CreateTransfer(request, metadata=api.a.md))
    assert (too_much.code, too_much.reason) == (Code.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS")
    assert too_much.metadata["account_id"] == customer

    request = mpb.CreateTransferRequest(
        request_id="m-pay2", debit_account_id=customer, credit_account_id=merchant,
        amount_minor=2_500, currency_code="USD", metadata={"order": "7"},
    )  # fmt: skip
    md = (*api.a.md, ("traceparent", TRACEPARENT))
    transfer = (await api.a.movements.CreateTransfer(request, metadata=md)).transfer
    assert transfer.state == transfer_pb2.Transfer.STATE_POSTED
    assert transfer.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert [e.kind for e in transfer.history] == [transfer_pb2.TransferEvent.KIND_CREATED]
    assert await balances(api, customer, merchant, funding) == [7_500, 2_500, 10_000]

    got = await api.a.movements.GetTransfer(
        mpb.GetTransferRequest(transfer_id=transfer.id), metadata=api.a.md
    )
    assert got.transfer == transfer
    by_account = await api.a.movements.ListTransfers(
        mpb.ListTransfersRequest(account_id=merchant), metadata=api.a.md
    )
    assert [t.id for t in by_account.transfers] == [transfer.id]
    by_trace = await api.a.movements.ListTransfers(
        mpb.ListTransfersRequest(trace_id=transfer.trace_id), metadata=api.a.md
    )
    assert [t.id for t in by_trace.transfers] == [transfer.id]
    balance = (
        await api.a.balances.GetBalance(
            bpb.GetBalanceRequest(account_id=customer), metadata=api.a.md
        )
    ).balance
    assert (balance.posted_credits_minor, balance.posted_debits_minor, balance.posted_minor) == (
        10_000,
        2_500,
        7_500,
    )
    assert balance.version == 3  # created at 1, funded, paid out
    await assert_ledger_consistent(api.dsn)


async def test_each_rejection_has_its_code_and_reason(api: Api) -> None:
    customer, _ = await api.a.fund("r", 100)
    euro = (await api.a.open("r-eur", currency_code="EUR")).id
    ghost = "acct_" + "q" * 26
    cases = [
        (customer, euro, 1, "USD", Code.FAILED_PRECONDITION, "CURRENCY_MISMATCH"),
        (customer, ghost, 1, "USD", Code.NOT_FOUND, "ACCOUNT_NOT_FOUND"),
        (customer, customer, 1, "USD", Code.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        (customer, euro, 0, "USD", Code.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    ]
    for i, (debit, credit, amount, currency, code, reason) in enumerate(cases):
        got = await failure(api.a.pay(f"r{i}", debit, credit, amount, currency))
        assert (got.code, got.reason) == (code, reason), (i, got)
    assert await balances(api, customer) == [100]
    await assert_ledger_consistent(api.dsn)


async def test_concurrent_overdraw_over_grpc_lets_exactly_one_through(api: Api) -> None:
    customer, _ = await api.a.fund("race", 100)
    a, b = (await api.a.open("race-a")).id, (await api.a.open("race-b")).id
    results = await asyncio.gather(
        api.a.pay("race-1", customer, a, 60),
        api.a.pay("race-2", customer, b, 60),
        return_exceptions=True,
    )
    failed = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(failed) == 1
    assert failed[0].code() == Code.FAILED_PRECONDITION
    assert await balances(api, customer) == [40]


async def test_twenty_concurrent_duplicates_over_grpc_make_one_transfer(api: Api) -> None:
    customer, _ = await api.a.fund("dup", 1_000)
    merchant = (await api.a.open("dup-m")).id
    results = await asyncio.gather(
        *(api.a.pay("dup-pay", customer, merchant, 7) for _ in range(20)), return_exceptions=True
    )
    ok = {r.transfer.id for r in results if isinstance(r, mpb.CreateTransferResponse)}
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(ok) == 1
    assert all(isinstance(e, grpc.aio.AioRpcError) and e.code() == Code.ABORTED for e in errors), (
        errors
    )
    assert await balances(api, merchant) == [7]
    await assert_ledger_consistent(api.dsn)


async def test_a_replay_after_a_server_restart_returns_the_same_transfer(dsn: str) -> None:
    first = await start_api(dsn)
    try:
        customer, _ = await first.a.fund("restart", 100)
        merchant = (await first.a.open("restart-m")).id
        original = (await first.a.pay("restart-pay", customer, merchant, 30)).transfer
        token = first.a.md
    finally:
        await stop_api(first)
    second = await start_api(dsn)
    try:
        second.a.md = token  # the same tenant as before the restart
        replay = (await second.a.pay("restart-pay", customer, merchant, 30)).transfer
        assert replay == original
        assert await balances(second, customer) == [70]
    finally:
        await stop_api(second)
