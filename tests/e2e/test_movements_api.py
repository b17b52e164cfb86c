"""Reversals, atomic batches, statements and as-of balances over a real port."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc

from moneymovement.v1 import account_pb2, balance_pb2, transfer_pb2
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from tests.e2e.conftest import Api, Client, failure

Code = grpc.StatusCode
Kind = transfer_pb2.TransferEvent
Item = mpb.CreateTransfersRequest.Item
DEBIT_NORMAL = {
    "normal_balance": account_pb2.NORMAL_BALANCE_DEBIT,
    "overdraft_mode": account_pb2.OVERDRAFT_MODE_UNLIMITED,
}


def item(debit: str, credit: str, amount: int, currency: str = "USD") -> Item:
    return Item(
        debit_account_id=debit,
        credit_account_id=credit,
        amount_minor=amount,
        currency_code=currency,
    )


async def refund(
    client: Client, request_id: str, transfer_id: str, amount: int = 0
) -> mpb.ReverseTransferResponse:
    request = mpb.ReverseTransferRequest(
        request_id=request_id, transfer_id=transfer_id, amount_minor=amount
    )
    return await client.movements.ReverseTransfer(request, metadata=client.md)


async def available(client: Client, *account_ids: str) -> list[int]:
    reply = await client.balances.BatchGetBalances(
        bpb.BatchGetBalancesRequest(account_ids=account_ids), metadata=client.md
    )
    return [b.available_minor for b in reply.balances]


async def ledger_counts(dsn: str) -> tuple[int, int]:
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM transfers) AS t, (SELECT count(*) FROM entries) AS e"
        )
        assert row is not None
        return row["t"], row["e"]
    finally:
        await connection.close()


async def test_partial_refunds_never_exceed_the_original(api: Api) -> None:
    customer, _ = await api.a.fund("rf", 10_000)
    merchant = (await api.a.open("rf-m")).id
    payment = (await api.a.pay("rf-pay", customer, merchant, 5_000)).transfer
    first = await refund(api.a, "rf-1", payment.id, 2_000)
    assert first.reversal.reversal_of_transfer_id == payment.id
    assert (first.reversal.debit_account_id, first.reversal.credit_account_id) == (
        merchant,
        customer,
    )
    assert first.original.reversed_amount_minor == 2_000
    second = await refund(api.a, "rf-2", payment.id)  # all that remains
    assert second.reversal.amount_minor == 3_000
    over = await failure(refund(api.a, "rf-3", payment.id, 1))
    assert (over.code, over.reason) == (Code.FAILED_PRECONDITION, "REVERSAL_EXCEEDS_ORIGINAL")
    assert over.metadata["remaining_minor"] == "0"
    got = (
        await api.a.movements.GetTransfer(
            mpb.GetTransferRequest(transfer_id=payment.id), metadata=api.a.md
        )
    ).transfer
    assert [e.kind for e in got.history] == [
        Kind.KIND_CREATED,
        Kind.KIND_REVERSED,
        Kind.KIND_REVERSED,
    ]
    assert list(got.reversal_transfer_ids) == [first.reversal.id, second.reversal.id]
    assert await available(api.a, customer, merchant) == [10_000, 0]
    not_posted = await failure(refund(api.a, "rf-4", first.reversal.id, 1 + 2_000))
    assert not_posted.reason == "REVERSAL_EXCEEDS_ORIGINAL"


async def test_a_refund_obeys_the_payers_overdraft_policy(api: Api) -> None:
    customer, _ = await api.a.fund("od", 1_000)
    merchant = (await api.a.open("od-m")).id
    payment = (await api.a.pay("od-pay", customer, merchant, 1_000)).transfer
    await api.a.pay("od-out", merchant, customer, 600)  # the merchant spent most of it
    refused = await failure(refund(api.a, "od-rf", payment.id))
    assert (refused.code, refused.reason) == (Code.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS")


async def test_concurrent_partial_refunds_stay_within_the_original(api: Api) -> None:
    customer, _ = await api.a.fund("cr", 10_000)
    merchant = (await api.a.open("cr-m")).id
    payment = (await api.a.pay("cr-pay", customer, merchant, 1_000)).transfer
    results = await asyncio.gather(
        *(refund(api.a, f"cr-{i}", payment.id, 150) for i in range(16)), return_exceptions=True
    )
    done = [r for r in results if isinstance(r, mpb.ReverseTransferResponse)]
    for error in (r for r in results if isinstance(r, BaseException)):
        assert isinstance(error, grpc.aio.AioRpcError)
        assert error.code() in (Code.FAILED_PRECONDITION, Code.ABORTED), error
    assert len(done) == 6  # 6 x 150 = 900 <= 1000 < 7 x 150
    got = (
        await api.a.movements.GetTransfer(
            mpb.GetTransferRequest(transfer_id=payment.id), metadata=api.a.md
        )
    ).transfer
    assert got.reversed_amount_minor == 900
    assert await available(api.a, merchant) == [100]


async def test_marketplace_split_with_fee_and_fx_legs_in_one_batch(api: Api) -> None:
    buyer, _ = await api.a.fund("mk", 10_000)
    seller = (await api.a.open("mk-seller")).id
    fees = (await api.a.open("mk-fees")).id
    usd_pool = (await api.a.open("mk-usd-pool", **DEBIT_NORMAL)).id
    eur_pool = (await api.a.open("mk-eur-pool", currency_code="EUR", **DEBIT_NORMAL)).id
    seller_eur = (await api.a.open("mk-seller-eur", currency_code="EUR")).id
    request = mpb.CreateTransfersRequest(
        request_id="mk-batch",
        transfers=[
            item(buyer, seller, 9_000),
            item(buyer, fees, 1_000),
            item(seller, usd_pool, 5_000),  # the seller converts 50.00 USD ...
            item(eur_pool, seller_eur, 4_600, "EUR"),  # ... into 46.00 EUR
        ],
    )
    made = (await api.a.movements.CreateTransfers(request, metadata=api.a.md)).transfers
    assert len(made) == 4
    assert len({t.batch_id for t in made}) == 1
    assert made[0].batch_id.startswith("batch_")
    assert await available(api.a, buyer, seller, fees, seller_eur) == [0, 4_000, 1_000, 4_600]
    listed = await api.a.movements.ListTransfers(
        mpb.ListTransfersRequest(batch_id=made[0].batch_id), metadata=api.a.md
    )
    assert {t.id for t in listed.transfers} == {t.id for t in made}
    replay = (await api.a.movements.CreateTransfers(request, metadata=api.a.md)).transfers
    assert list(replay) == list(made)


async def test_one_bad_item_leaves_the_ledger_unchanged_and_is_named(api: Api) -> None:
    buyer, _ = await api.a.fund("bad", 100)
    seller = (await api.a.open("bad-seller")).id
    frozen = (await api.a.open("bad-frozen")).id
    await api.a.accounts.FreezeAccount(
        apb.FreezeAccountRequest(request_id="bad-f", account_id=frozen), metadata=api.a.md
    )
    before = await ledger_counts(api.dsn)
    items = [
        Item(debit_account_id=buyer, credit_account_id=seller, amount_minor=1, currency_code="USD")
    ] * 5
    items[3] = Item(
        debit_account_id=buyer, credit_account_id=frozen, amount_minor=1, currency_code="USD"
    )
    refused = await failure(
        api.a.movements.CreateTransfers(
            mpb.CreateTransfersRequest(request_id="bad-b", transfers=items), metadata=api.a.md
        )
    )
    assert (refused.code, refused.reason, refused.metadata["item_index"]) == (
        Code.FAILED_PRECONDITION, "ACCOUNT_FROZEN", "3",
    )  # fmt: skip
    items[3] = Item(
        debit_account_id=buyer, credit_account_id=seller, amount_minor=0, currency_code="USD"
    )
    invalid = await failure(
        api.a.movements.CreateTransfers(
            mpb.CreateTransfersRequest(request_id="bad-c", transfers=items), metadata=api.a.md
        )
    )
    assert invalid.field_violations == [("transfers[3].amount_minor", "OUT_OF_RANGE")]
    assert await ledger_counts(api.dsn) == before
    assert await available(api.a, buyer, seller) == [100, 0]


async def test_a_batch_of_1000_commits_atomically(api: Api) -> None:
    buyer, _ = await api.a.fund("big", 1_000)
    sellers = [(await api.a.open(f"big-s{i}")).id for i in range(10)]
    items = [
        Item(
            debit_account_id=buyer,
            credit_account_id=sellers[i % 10],
            amount_minor=1,
            currency_code="USD",
        )
        for i in range(1_000)
    ]
    made = (
        await api.a.movements.CreateTransfers(
            mpb.CreateTransfersRequest(request_id="big-b", transfers=items),
            metadata=api.a.md,
            timeout=60,
        )
    ).transfers
    assert len(made) == 1_000
    assert await available(api.a, buyer, *sellers) == [0] + [100] * 10
    before = await ledger_counts(api.dsn)
    items.append(
        Item(
            debit_account_id=buyer,
            credit_account_id=sellers[0],
            amount_minor=1,
            currency_code="USD",
        )
    )
    too_many = await failure(
        api.a.movements.CreateTransfers(
            mpb.CreateTransfersRequest(request_id="big-c", transfers=items), metadata=api.a.md
        )
    )
    assert too_many.field_violations == [("transfers", "TOO_MANY")]
    overdrawn = [
        Item(
            debit_account_id=sellers[0],
            credit_account_id=buyer,
            amount_minor=1,
            currency_code="USD",
        )
    ] * 101
    short = await failure(
        api.a.movements.CreateTransfers(
            mpb.CreateTransfersRequest(request_id="big-d", transfers=overdrawn), metadata=api.a.md
        )
    )
    assert (short.reason, short.metadata["item_index"]) == ("INSUFFICIENT_FUNDS", "100")
    assert await ledger_counts(api.dsn) == before


async def test_statement_pages_are_stable_while_entries_arrive(api: Api) -> None:
    wallet, funding = await api.a.fund("st", 1_000)
    other = (await api.a.open("st-o")).id
    for i in range(4):
        await api.a.pay(f"st-{i}", wallet, other, 10 * (i + 1))
    request = bpb.ListEntriesRequest(
        account_id=wallet, page_size=2, order=bpb.SORT_ORDER_OLDEST_FIRST
    )
    first = await api.a.balances.ListEntries(request, metadata=api.a.md)
    await api.a.pay("st-late", wallet, other, 5)  # arrives between pages
    seen = list(first.entries)
    token = first.next_page_token
    while token:
        request.page_token = token
        page = await api.a.balances.ListEntries(request, metadata=api.a.md)
        seen += page.entries
        token = page.next_page_token
    amounts = [(e.direction, e.amount_minor) for e in seen]
    credit, debit = balance_pb2.ENTRY_DIRECTION_CREDIT, balance_pb2.ENTRY_DIRECTION_DEBIT
    assert amounts == [
        (credit, 1_000),
        (debit, 10),
        (debit, 20),
        (debit, 30),
        (debit, 40),
        (debit, 5),
    ]
    assert [e.balance_after.available_minor for e in seen] == [1_000, 990, 970, 940, 900, 895]
    assert [e.balance_after.version for e in seen] == [2, 3, 4, 5, 6, 7]
    newest = await api.a.balances.ListEntries(
        bpb.ListEntriesRequest(account_id=wallet, page_size=1), metadata=api.a.md
    )
    assert newest.entries[0].amount_minor == 5
    del funding


async def test_balance_as_of_a_past_time(api: Api) -> None:
    wallet, _ = await api.a.fund("asof", 1_000)
    other = (await api.a.open("asof-o")).id
    statement = await api.a.balances.ListEntries(
        bpb.ListEntriesRequest(account_id=wallet), metadata=api.a.md
    )
    funded_at = statement.entries[0].create_time
    await asyncio.sleep(0.05)
    await api.a.pay("asof-1", wallet, other, 300)
    now = (
        await api.a.balances.GetBalance(bpb.GetBalanceRequest(account_id=wallet), metadata=api.a.md)
    ).balance
    then = (
        await api.a.balances.GetBalance(
            bpb.GetBalanceRequest(account_id=wallet, as_of_time=funded_at), metadata=api.a.md
        )
    ).balance
    assert (now.available_minor, then.available_minor) == (700, 1_000)
    before = funded_at.ToDatetime().timestamp() - 60
    early = bpb.GetBalanceRequest(account_id=wallet)
    early.as_of_time.FromSeconds(int(before))
    zero = (await api.a.balances.GetBalance(early, metadata=api.a.md)).balance
    assert (zero.posted_minor, zero.version) == (0, 0)
    future = bpb.GetBalanceRequest(account_id=wallet)
    future.as_of_time.FromSeconds(int(before) + 86_400)
    bad = await failure(api.a.balances.GetBalance(future, metadata=api.a.md))
    assert bad.field_violations == [("as_of_time", "OUT_OF_RANGE")]
