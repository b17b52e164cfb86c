"""Statements a person can read, over a real port: each entry with its transfer's
description, metadata and counterparty; BatchGetBalances as of a past time; listings
filtered on metadata keys that must exist, with page tokens bound to those keys."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2

from moneymovement.client import InvalidRequest, MoneyMovementClient, NotFound, RetryPolicy
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import balance_pb2
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from tests.e2e.conftest import Api, Client, failure

Code = grpc.StatusCode
DEBIT = balance_pb2.ENTRY_DIRECTION_DEBIT
CREDIT = balance_pb2.ENTRY_DIRECTION_CREDIT
UNKNOWN = "acct_" + "z" * 26  # well formed, never issued


async def statement(client: Client, account_id: str) -> list[balance_pb2.Entry]:
    """An account's whole statement, oldest first, one entry per page: the new fields
    must survive pagination too."""
    entries: list[balance_pb2.Entry] = []
    token = ""
    while True:
        page = await client.balances.ListEntries(
            bpb.ListEntriesRequest(
                account_id=account_id,
                order=bpb.SORT_ORDER_OLDEST_FIRST,
                page_size=1,
                page_token=token,
            ),
            metadata=client.md,
        )
        entries += page.entries
        token = page.next_page_token
        if not token:
            return entries


def line(entry: balance_pb2.Entry) -> tuple[object, ...]:
    """What a reader of a statement line sees besides the amounts."""
    return (
        entry.transfer_id,
        entry.direction,
        entry.amount_minor,
        entry.counterparty_account_id,
        entry.description,
        dict(entry.metadata),
    )


async def test_each_entry_names_its_transfers_words_and_the_other_account(api: Api) -> None:
    a = api.a
    buyer, funding = await a.fund("st", 1_000)
    shop = (await a.open("st-shop")).id
    paid = (
        await a.movements.CreateTransfer(
            mpb.CreateTransferRequest(
                request_id="st-pay", debit_account_id=buyer, credit_account_id=shop,
                amount_minor=400, currency_code="USD", description="Order 1234: two lamps",
                metadata={"order_id": "1234", "channel": "web"},
            ),
            metadata=a.md,
        )
    ).transfer  # fmt: skip
    refund = (
        await a.movements.ReverseTransfer(
            mpb.ReverseTransferRequest(
                request_id="st-refund", transfer_id=paid.id, amount_minor=150,
                description="One lamp returned", metadata={"rma": "R-77"},
            ),
            metadata=a.md,
        )
    ).reversal  # fmt: skip
    fund_id = (await statement(a, funding))[0].transfer_id
    words = ("Order 1234: two lamps", {"order_id": "1234", "channel": "web"})

    assert [line(e) for e in await statement(a, buyer)] == [
        (fund_id, CREDIT, 1_000, funding, "", {}),
        (paid.id, DEBIT, 400, shop, *words),
        (refund.id, CREDIT, 150, shop, "One lamp returned", {"rma": "R-77"}),
    ]
    assert [line(e) for e in await statement(a, shop)] == [
        (paid.id, CREDIT, 400, buyer, *words),
        (refund.id, DEBIT, 150, buyer, "One lamp returned", {"rma": "R-77"}),
    ]
    assert [line(e) for e in await statement(a, funding)] == [
        (fund_id, DEBIT, 1_000, buyer, "", {}),
    ]
    # The running balances and the order are those of before: newest first by default.
    newest = await a.balances.ListEntries(bpb.ListEntriesRequest(account_id=buyer), metadata=a.md)
    assert [(e.transfer_id, e.balance_after.posted_minor) for e in newest.entries] == [
        (refund.id, 750),
        (paid.id, 600),
        (fund_id, 1_000),
    ]
    assert all(e.trace_id and e.account_id == buyer for e in newest.entries)


def at(entry: balance_pb2.Entry) -> timestamp_pb2.Timestamp:
    return entry.create_time


async def batch(
    client: Client, account_ids: list[str], as_of: timestamp_pb2.Timestamp | None
) -> list[balance_pb2.Balance]:
    request = bpb.BatchGetBalancesRequest(account_ids=account_ids)
    if as_of is not None:
        request.as_of_time.CopyFrom(as_of)
    return list((await client.balances.BatchGetBalances(request, metadata=client.md)).balances)


def figures(balances: list[balance_pb2.Balance]) -> list[tuple[str, int, int, int]]:
    return [(b.account_id, b.posted_minor, b.available_minor, b.version) for b in balances]


async def test_batch_get_balances_as_of_a_past_time(api: Api) -> None:
    a = api.a
    shop = (await a.open("ba-shop")).id
    fees = (await a.open("ba-fees")).id
    buyer, funding = await a.fund("ba", 1_000)
    funded = at((await statement(a, buyer))[0])
    await asyncio.sleep(0.02)
    await a.pay("ba-1", buyer, shop, 300)
    paid = at((await statement(a, shop))[0])
    await asyncio.sleep(0.02)
    await a.pay("ba-2", buyer, fees, 20)
    late = (await a.open("ba-late")).id  # opened after both times: zero then
    asked = [buyer, shop, fees, funding, late, buyer]

    then = await batch(a, asked, funded)
    assert figures(then) == [
        (buyer, 1_000, 1_000, 2),
        (shop, 0, 0, 0),
        (fees, 0, 0, 0),
        (funding, 1_000, 1_000, 2),
        (late, 0, 0, 0),
        (buyer, 1_000, 1_000, 2),
    ]
    assert {b.as_of_time.ToDatetime() for b in then} == {funded.ToDatetime()}
    assert figures(await batch(a, asked, paid)) == [
        (buyer, 700, 700, 3),
        (shop, 300, 300, 2),
        (fees, 0, 0, 0),
        (funding, 1_000, 1_000, 2),
        (late, 0, 0, 0),
        (buyer, 700, 700, 3),
    ]
    assert figures(await batch(a, asked, None)) == [
        (buyer, 680, 680, 4),
        (shop, 300, 300, 2),
        (fees, 20, 20, 2),
        (funding, 1_000, 1_000, 2),
        (late, 0, 0, 1),
        (buyer, 680, 680, 4),
    ]
    # As GetBalance with the same time says, account by account.
    one = await a.balances.GetBalance(
        bpb.GetBalanceRequest(account_id=shop, as_of_time=paid), metadata=a.md
    )
    assert one.balance == (await batch(a, [shop], paid))[0]

    future = timestamp_pb2.Timestamp()
    future.FromSeconds(funded.seconds + 86_400)
    bad = await failure(batch(a, [buyer], future))
    assert (bad.code, bad.reason, bad.field_violations) == (
        Code.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        [("as_of_time", "OUT_OF_RANGE")],
    )
    both = await failure(batch(a, ["nope", buyer], future))
    assert both.field_violations == [
        ("account_ids[0]", "INVALID_FORMAT"),
        ("as_of_time", "OUT_OF_RANGE"),
    ]

    other_tenant = (await api.b.open("ba-b")).id
    missing = await failure(batch(a, [buyer, UNKNOWN, shop, other_tenant, UNKNOWN], funded))
    assert (missing.code, missing.reason, missing.metadata) == (
        Code.NOT_FOUND,
        "ACCOUNT_NOT_FOUND",
        {"account_id": UNKNOWN, "missing_account_ids": f"{UNKNOWN},{other_tenant}"},
    )
    alone = await failure(batch(a, [other_tenant], funded))
    assert (alone.code, alone.reason, alone.metadata) == (
        Code.NOT_FOUND,
        "ACCOUNT_NOT_FOUND",
        {"account_id": other_tenant, "missing_account_ids": other_tenant},
    )


async def test_accounts_filtered_on_metadata_keys_that_exist(api: Api) -> None:
    a = api.a
    both = (await a.open("mk-1", metadata={"tier": "gold", "region": "eu"})).id
    tier = (await a.open("mk-2", metadata={"tier": "silver"})).id
    region = (await a.open("mk-3", metadata={"region": "us"})).id
    await a.open("mk-4")
    await api.b.open("mk-b", metadata={"tier": "gold", "region": "eu"})

    async def ids(**filters: object) -> list[str]:
        page = await a.accounts.ListAccounts(apb.ListAccountsRequest(**filters), metadata=a.md)
        return [account.id for account in page.accounts]

    assert await ids(metadata_keys=["tier"]) == [tier, both]  # any value, newest first
    assert await ids(metadata_keys=["region", "tier"]) == [both]  # every key
    assert await ids(metadata_keys=["tier", "region", "tier"]) == [both]
    assert await ids(metadata_keys=["region"], metadata={"tier": "gold"}) == [both]
    assert await ids(metadata_keys=["region"], metadata={"tier": "silver"}) == []
    assert await ids(metadata_keys=["region"]) == [region, both]
    assert await ids(metadata_keys=["colour"]) == []

    first = await a.accounts.ListAccounts(
        apb.ListAccountsRequest(page_size=1, metadata_keys=["tier"]), metadata=a.md
    )
    assert [x.id for x in first.accounts] == [tier]
    # The same keys in another order and repeated are the same filter: its token serves.
    rest = await ids(page_size=5, metadata_keys=["tier", "tier"], page_token=first.next_page_token)
    assert rest == [both]
    for other in ({"metadata_keys": ["region"]}, {}, {"metadata": {"tier": "gold"}}):
        bound = await failure(
            a.accounts.ListAccounts(
                apb.ListAccountsRequest(page_size=1, page_token=first.next_page_token, **other),
                metadata=a.md,
            )
        )
        assert (bound.code, bound.reason, bound.field_violations) == (
            Code.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            [("page_token", "INVALID_PAGE_TOKEN")],
        )

    bad = await failure(
        a.accounts.ListAccounts(
            apb.ListAccountsRequest(metadata_keys=["tier", "bad key!", ""]), metadata=a.md
        )
    )
    assert (bad.code, bad.reason, bad.field_violations) == (
        Code.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        [("metadata_keys[1]", "INVALID_FORMAT"), ("metadata_keys[2]", "INVALID_FORMAT")],
    )
    too_many = await failure(
        a.accounts.ListAccounts(
            apb.ListAccountsRequest(metadata_keys=[f"k{i}" for i in range(51)]), metadata=a.md
        )
    )
    assert too_many.field_violations == [("metadata_keys", "TOO_MANY")]


async def test_transfers_filtered_on_metadata_keys_that_exist(api: Api) -> None:
    a = api.a
    payer, _ = await a.fund("tk", 1_000)
    payee = (await a.open("tk-payee")).id

    async def pay(request_id: str, metadata: dict[str, str]) -> str:
        request = mpb.CreateTransferRequest(
            request_id=request_id, debit_account_id=payer, credit_account_id=payee,
            amount_minor=10, currency_code="USD", metadata=metadata,
        )  # fmt: skip
        return (await a.movements.CreateTransfer(request, metadata=a.md)).transfer.id

    both = await pay("tk-1", {"order_id": "1", "invoice": "A"})
    order = await pay("tk-2", {"order_id": "2"})
    invoice = await pay("tk-3", {"invoice": "B"})
    await pay("tk-4", {})

    async def ids(**filters: object) -> list[str]:
        request = mpb.ListTransfersRequest(account_id=payee, **filters)
        page = await a.movements.ListTransfers(request, metadata=a.md)
        return [transfer.id for transfer in page.transfers]

    assert await ids(metadata_keys=["order_id"]) == [order, both]
    assert await ids(metadata_keys=["invoice"]) == [invoice, both]
    assert await ids(metadata_keys=["invoice", "order_id"]) == [both]
    assert await ids(metadata_keys=["invoice"], metadata={"order_id": "2"}) == []
    assert await ids(metadata_keys=["order_id"], metadata={"order_id": "2"}) == [order]
    assert await ids(metadata_keys=["refund_of"]) == []

    first = await a.movements.ListTransfers(
        mpb.ListTransfersRequest(account_id=payee, page_size=1, metadata_keys=["order_id"]),
        metadata=a.md,
    )
    assert [t.id for t in first.transfers] == [order]
    assert await ids(metadata_keys=["order_id"], page_token=first.next_page_token) == [both]
    bound = await failure(
        a.movements.ListTransfers(
            mpb.ListTransfersRequest(
                account_id=payee, page_token=first.next_page_token, metadata_keys=["invoice"]
            ),
            metadata=a.md,
        )
    )
    assert (bound.code, bound.field_violations) == (
        Code.INVALID_ARGUMENT,
        [("page_token", "INVALID_PAGE_TOKEN")],
    )
    bad = await failure(
        a.movements.ListTransfers(mpb.ListTransfersRequest(metadata_keys=["x" * 41]), metadata=a.md)
    )
    assert (bad.code, bad.reason, bad.field_violations) == (
        Code.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        [("metadata_keys[0]", "INVALID_FORMAT")],
    )


async def test_the_python_client_passes_the_new_arguments(api: Api) -> None:
    token = dict(api.a.md)["authorization"].split()[1]
    async with MoneyMovementClient(f"127.0.0.1:{api.port}", token, RetryPolicy()) as mm:
        funding = await mm.create_account(
            currency_code="USD", normal_balance="DEBIT", overdraft_mode="UNLIMITED",
            metadata={"kind": "funding"},
        )  # fmt: skip
        wallet = await mm.create_account(currency_code="USD", normal_balance="CREDIT")
        first = await mm.create_transfer(
            funding.id, wallet.id, 500, "USD", description="top-up", metadata={"ref": "t1"}
        )
        [entry] = [e async for e in mm.iter_entries(wallet.id)]
        assert (entry.counterparty_account_id, entry.description, dict(entry.metadata)) == (
            funding.id,
            "top-up",
            {"ref": "t1"},
        )
        when = entry.create_time.ToDatetime(tzinfo=UTC)
        await asyncio.sleep(0.02)
        await mm.create_transfer(funding.id, wallet.id, 70, "USD")
        then = await mm.get_balances(wallet.id, funding.id, as_of_time=when)
        assert [b.posted_minor for b in then] == [500, 500]
        now = await mm.batch_get_balances([wallet.id])
        assert now[0].posted_minor == 570
        with pytest.raises(InvalidRequest) as future:
            await mm.batch_get_balances([wallet.id], as_of_time=when + timedelta(days=1))
        assert future.value.field_violations == [("as_of_time", "OUT_OF_RANGE")]
        with pytest.raises(NotFound) as missing:
            await mm.batch_get_balances([wallet.id, UNKNOWN], as_of_time=when)
        assert missing.value.metadata["missing_account_ids"] == UNKNOWN

        keyed = [a.id async for a in mm.iter_accounts(metadata_keys=iter(["kind"]), page_size=1)]
        assert keyed == [funding.id]
        listed = await mm.list_transfers(account_id=wallet.id, metadata_keys=["ref"])
        assert [t.id for t in listed.transfers] == [first.id]
        assert [t.id async for t in mm.iter_transfers(metadata_keys=["nothing"])] == []
