"""Holds over a real port: authorise, capture, void, expire, and their races."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from moneymovement.v1 import transfer_pb2
from tests.e2e.conftest import Api, Client, failure

Code = grpc.StatusCode
State = transfer_pb2.Transfer
Kind = transfer_pb2.TransferEvent


async def hold(
    client: Client, request_id: str, debit: str, credit: str, amount: int, timeout_s: float = 3600
) -> transfer_pb2.Transfer:
    request = mpb.CreateTransferRequest(
        request_id=request_id, debit_account_id=debit, credit_account_id=credit,
        amount_minor=amount, currency_code="USD", pending=True,
        hold_timeout=duration_pb2.Duration(seconds=int(timeout_s), nanos=int(timeout_s % 1 * 1e9)),
    )  # fmt: skip
    return (await client.movements.CreateTransfer(request, metadata=client.md)).transfer


async def post(
    client: Client, request_id: str, transfer_id: str, amount: int = 0
) -> mpb.PostTransferResponse:
    request = mpb.PostTransferRequest(
        request_id=request_id, transfer_id=transfer_id, amount_minor=amount
    )
    return await client.movements.PostTransfer(request, metadata=client.md)


async def void(client: Client, request_id: str, transfer_id: str) -> mpb.VoidTransferResponse:
    request = mpb.VoidTransferRequest(request_id=request_id, transfer_id=transfer_id)
    return await client.movements.VoidTransfer(request, metadata=client.md)


async def balance(client: Client, account_id: str) -> bpb.GetBalanceResponse:
    return await client.balances.GetBalance(
        bpb.GetBalanceRequest(account_id=account_id), metadata=client.md
    )


async def get(client: Client, transfer_id: str) -> transfer_pb2.Transfer:
    reply = await client.movements.GetTransfer(
        mpb.GetTransferRequest(transfer_id=transfer_id), metadata=client.md
    )
    return reply.transfer


async def test_authorise_then_capture_part_releases_the_rest(api: Api) -> None:
    wallet, _ = await api.a.fund("card", 10_000)
    merchant = (await api.a.open("card-merchant")).id
    held = await hold(api.a, "card-auth", wallet, merchant, 6_000)
    assert held.state == State.STATE_PENDING
    assert held.HasField("expire_time")
    b = (await balance(api.a, wallet)).balance
    assert (b.posted_minor, b.pending_outbound_minor, b.available_minor) == (10_000, 6_000, 4_000)
    assert (await balance(api.a, merchant)).balance.pending_inbound_minor == 6_000
    assert (await balance(api.a, merchant)).balance.available_minor == 0

    # The hold counts: what is held cannot be spent twice.
    spend = await failure(api.a.pay("card-spend", wallet, merchant, 4_001))
    assert spend.reason == "INSUFFICIENT_FUNDS"

    captured = (await post(api.a, "card-capture", held.id, 4_500)).transfer
    assert (captured.state, captured.posted_amount_minor) == (State.STATE_POSTED, 4_500)
    assert [e.kind for e in captured.history] == [Kind.KIND_CREATED, Kind.KIND_POSTED]
    w = (await balance(api.a, wallet)).balance
    assert (w.posted_minor, w.pending_outbound_minor, w.available_minor) == (5_500, 0, 5_500)
    m = (await balance(api.a, merchant)).balance
    assert (m.posted_minor, m.pending_inbound_minor) == (4_500, 0)

    assert (await post(api.a, "card-capture", held.id, 4_500)).transfer == captured  # replay
    again = await failure(post(api.a, "card-capture-2", held.id, 1))
    assert (again.code, again.reason) == (Code.FAILED_PRECONDITION, "TRANSFER_NOT_PENDING")
    too_much = await hold(api.a, "card-auth-2", wallet, merchant, 100)
    over = await failure(post(api.a, "card-capture-3", too_much.id, 101))
    assert (over.code, over.reason) == (Code.FAILED_PRECONDITION, "POST_EXCEEDS_HOLD")


async def test_void_releases_and_cannot_be_captured_after(api: Api) -> None:
    wallet, _ = await api.a.fund("void", 1_000)
    merchant = (await api.a.open("void-merchant")).id
    held = await hold(api.a, "void-auth", wallet, merchant, 800)
    voided = (await void(api.a, "void-void", held.id)).transfer
    assert voided.state == State.STATE_VOIDED
    assert (await balance(api.a, wallet)).balance.available_minor == 1_000
    late = await failure(post(api.a, "void-post", held.id))
    assert late.reason == "TRANSFER_NOT_PENDING"
    twice = await failure(void(api.a, "void-void-2", held.id))
    assert twice.reason == "TRANSFER_NOT_PENDING"


async def test_an_expired_hold_cannot_be_captured_and_the_sweeper_releases_it(api: Api) -> None:
    wallet, _ = await api.a.fund("exp", 1_000)
    merchant = (await api.a.open("exp-merchant")).id
    held = await hold(api.a, "exp-auth", wallet, merchant, 700, timeout_s=0.5)
    await asyncio.sleep(0.6)
    expired = await failure(post(api.a, "exp-post", held.id))
    assert (expired.code, expired.reason) == (Code.FAILED_PRECONDITION, "HOLD_EXPIRED")
    for _ in range(50):  # the sweeper runs every second
        if (await get(api.a, held.id)).state == State.STATE_EXPIRED:
            break
        await asyncio.sleep(0.1)
    final = await get(api.a, held.id)
    assert final.state == State.STATE_EXPIRED
    assert [e.kind for e in final.history] == [Kind.KIND_CREATED, Kind.KIND_EXPIRED]
    assert (await balance(api.a, wallet)).balance.available_minor == 1_000
    # The recorded rejection is replayed even though the hold has changed since.
    assert (await failure(post(api.a, "exp-post", held.id))).reason == "HOLD_EXPIRED"


async def test_hold_options_are_validated(api: Api) -> None:
    wallet, _ = await api.a.fund("opt", 100)
    merchant = (await api.a.open("opt-m")).id
    past = timestamp_pb2.Timestamp()
    past.FromDatetime(datetime.now(UTC) - timedelta(minutes=1))
    cases = [
        mpb.CreateTransferRequest(
            hold_timeout=duration_pb2.Duration(seconds=31 * 86400), pending=True
        ),
        mpb.CreateTransferRequest(hold_timeout=duration_pb2.Duration(seconds=60)),
        mpb.CreateTransferRequest(hold_expire_time=past, pending=True),
    ]
    expected = ["hold_timeout", "pending", "hold_expire_time"]
    for i, (request, field) in enumerate(zip(cases, expected, strict=True)):
        request.request_id, request.amount_minor, request.currency_code = f"opt-{i}", 1, "USD"
        request.debit_account_id, request.credit_account_id = wallet, merchant
        bad = await failure(api.a.movements.CreateTransfer(request, metadata=api.a.md))
        assert bad.code == Code.INVALID_ARGUMENT
        assert field in dict(bad.field_violations), bad.field_violations


async def test_frozen_accounts_refuse_captures_but_voids_still_release(api: Api) -> None:
    wallet, _ = await api.a.fund("frz", 1_000)
    merchant = (await api.a.open("frz-m")).id
    first = await hold(api.a, "frz-h1", wallet, merchant, 300)
    second = await hold(api.a, "frz-h2", wallet, merchant, 300)
    await api.a.accounts.FreezeAccount(
        apb.FreezeAccountRequest(request_id="frz-f", account_id=merchant), metadata=api.a.md
    )
    refused = await failure(post(api.a, "frz-p", first.id))
    assert (refused.code, refused.reason) == (Code.FAILED_PRECONDITION, "ACCOUNT_FROZEN")
    assert (await void(api.a, "frz-v", second.id)).transfer.state == State.STATE_VOIDED
    assert (await balance(api.a, wallet)).balance.available_minor == 700


async def test_close_refuses_an_account_with_open_holds(api: Api) -> None:
    wallet, _ = await api.a.fund("cls", 100)
    receiver = (await api.a.open("cls-r")).id
    await hold(api.a, "cls-h", wallet, receiver, 10)
    closing = apb.CloseAccountRequest(request_id="cls-c", account_id=receiver)
    refused = await failure(api.a.accounts.CloseAccount(closing, metadata=api.a.md))
    assert refused.reason == "ACCOUNT_NOT_EMPTY"


async def test_fifty_concurrent_captures_and_voids_of_one_hold_exactly_one_wins(api: Api) -> None:
    wallet, _ = await api.a.fund("race", 1_000)
    merchant = (await api.a.open("race-m")).id
    held = await hold(api.a, "race-h", wallet, merchant, 500)
    calls = [
        post(api.a, f"race-p{i}", held.id, 100 + i) if i % 2 else void(api.a, f"race-v{i}", held.id)
        for i in range(50)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, BaseException)]
    assert len(wins) == 1, results
    for loss in losses:
        assert isinstance(loss, grpc.aio.AioRpcError), loss
        assert loss.code() in (Code.FAILED_PRECONDITION, Code.ABORTED), loss
    final = await get(api.a, held.id)
    w = (await balance(api.a, wallet)).balance
    assert w.pending_outbound_minor == 0
    assert w.posted_minor == 1_000 - final.posted_amount_minor


async def test_captures_racing_the_expiry_are_never_both_captured_and_expired(api: Api) -> None:
    wallet, _ = await api.a.fund("edge", 10_000)
    merchant = (await api.a.open("edge-m")).id
    holds = [
        await hold(api.a, f"edge-h{i}", wallet, merchant, 100, timeout_s=0.4) for i in range(8)
    ]
    await asyncio.sleep(0.3)
    results = await asyncio.gather(
        *(post(api.a, f"edge-p{i}", h.id) for i, h in enumerate(holds)), return_exceptions=True
    )
    await asyncio.sleep(1.5)  # let the sweeper take what the captures did not
    captured = 0
    for h, result in zip(holds, results, strict=True):
        final = await get(api.a, h.id)
        kinds = [e.kind for e in final.history]
        if isinstance(result, BaseException):
            assert isinstance(result, grpc.aio.AioRpcError)
            assert result.code() == Code.FAILED_PRECONDITION
            assert final.state == State.STATE_EXPIRED
            assert kinds == [Kind.KIND_CREATED, Kind.KIND_EXPIRED]
        else:
            captured += 1
            assert final.state == State.STATE_POSTED
            assert kinds == [Kind.KIND_CREATED, Kind.KIND_POSTED]
    b = (await balance(api.a, wallet)).balance
    assert (b.pending_outbound_minor, b.posted_minor) == (0, 10_000 - 100 * captured)


async def test_a_hold_cannot_be_reversed_only_voided(api: Api) -> None:
    wallet, _ = await api.a.fund("rev", 500)
    merchant = (await api.a.open("rev-m")).id
    held = await hold(api.a, "rev-h", wallet, merchant, 200)
    request = mpb.ReverseTransferRequest(request_id="rev-r", transfer_id=held.id)
    refused = await failure(api.a.movements.ReverseTransfer(request, metadata=api.a.md))
    assert (refused.code, refused.reason) == (Code.FAILED_PRECONDITION, "TRANSFER_NOT_POSTED")
    assert refused.metadata["state"] == "PENDING"
