"""HolderService over a real port (docs/platforms.md): holders created, read, listed and
changed; accounts opened for them; a restriction that stops new money out of their
accounts and lets money in; closing once every account is closed; and per-holder
balances summed per currency from one snapshot."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from moneymovement.v1 import account_pb2, event_pb2, holder_pb2, payout_pb2
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import event_service_pb2 as epb
from moneymovement.v1 import holder_service_pb2 as pb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from moneymovement.v1 import payout_service_pb2 as ppb
from tests.e2e.conftest import Api, Client, failure

Code = grpc.StatusCode
State = holder_pb2.Holder.State
DEBIT = account_pb2.NORMAL_BALANCE_DEBIT
UNLIMITED = account_pb2.OVERDRAFT_MODE_UNLIMITED


async def create(
    client: Client, request_id: str, external_id: str, **more: Any
) -> holder_pb2.Holder:
    request = pb.CreateHolderRequest(request_id=request_id, external_id=external_id, **more)
    return (await client.holders.CreateHolder(request, metadata=client.md)).holder


async def update(client: Client, request_id: str, holder_id: str, **more: Any) -> holder_pb2.Holder:
    request = pb.UpdateHolderRequest(request_id=request_id, holder_id=holder_id, **more)
    return (await client.holders.UpdateHolder(request, metadata=client.md)).holder


async def listed(client: Client, page_size: int = 0, **filters: Any) -> list[holder_pb2.Holder]:
    """Every page of ListHolders, in order."""
    holders: list[holder_pb2.Holder] = []
    token = ""
    while True:
        request = pb.ListHoldersRequest(page_size=page_size, page_token=token, **filters)
        page = await client.holders.ListHolders(request, metadata=client.md)
        holders += page.holders
        token = page.next_page_token
        if not token:
            return holders


async def funding(client: Client, request_id: str, currency: str = "USD") -> str:
    account = await client.open(
        request_id, currency_code=currency, normal_balance=DEBIT, overdraft_mode=UNLIMITED
    )
    return account.id


async def hold(client: Client, request_id: str, debit: str, credit: str, amount: int) -> str:
    request = mpb.CreateTransferRequest(
        request_id=request_id, debit_account_id=debit, credit_account_id=credit,
        amount_minor=amount, currency_code="USD", pending=True,
    )  # fmt: skip
    return (await client.movements.CreateTransfer(request, metadata=client.md)).transfer.id


async def balances(client: Client, holder_id: str) -> pb.GetHolderBalancesResponse:
    request = pb.GetHolderBalancesRequest(holder_id=holder_id)
    return await client.holders.GetHolderBalances(request, metadata=client.md)


async def test_create_get_list_and_update(api: Api) -> None:
    ada = await create(api.a, "h1", "seller-ada", name="Ada", metadata={"tier": "gold"})
    assert ada.holder_id.startswith("hld_")
    assert len(ada.holder_id) == 30
    assert (ada.external_id, ada.name, dict(ada.metadata)) == (
        "seller-ada",
        "Ada",
        {"tier": "gold"},
    )
    assert (ada.state, ada.version) == (State.STATE_ACTIVE, 1)
    # A repeat of the request answers its outcome; another request for the same external
    # id is refused, naming the holder that has it.
    assert await create(api.a, "h1", "seller-ada", name="Ada", metadata={"tier": "gold"}) == ada
    taken = await failure(create(api.a, "h1b", "seller-ada"))
    assert (taken.code, taken.reason) == (Code.ALREADY_EXISTS, "HOLDER_EXTERNAL_ID_TAKEN")
    assert taken.metadata == {"external_id": "seller-ada", "holder_id": ada.holder_id}
    got = await api.a.holders.GetHolder(
        pb.GetHolderRequest(holder_id=ada.holder_id), metadata=api.a.md
    )
    assert got.holder == ada

    bob = await create(api.a, "h2", "seller-bob", metadata={"tier": "silver"})
    cy = await create(api.a, "h3", "seller-cy", metadata={"tier": "gold"})
    everyone = await listed(api.a)
    assert [h.holder_id for h in everyone] == [cy.holder_id, bob.holder_id, ada.holder_id]
    assert await listed(api.a, page_size=1) == everyone  # pages of one walk the same list
    gold = await listed(api.a, page_size=1, metadata={"tier": "gold"})
    assert [h.holder_id for h in gold] == [cy.holder_id, ada.holder_id]
    assert [h.holder_id for h in await listed(api.a, external_id="seller-bob")] == [bob.holder_id]
    # A token only continues the listing it came from.
    first = await api.a.holders.ListHolders(pb.ListHoldersRequest(page_size=1), metadata=api.a.md)
    bad = await failure(
        api.a.holders.ListHolders(
            pb.ListHoldersRequest(page_size=1, page_token=first.next_page_token, external_id="x"),
            metadata=api.a.md,
        )
    )
    assert (bad.code, bad.field_violations[0][0]) == (Code.INVALID_ARGUMENT, "page_token")

    renamed = await update(
        api.a, "u1", ada.holder_id, name="Ada L.", metadata={"tier": "", "x": "1"}
    )
    assert (renamed.name, dict(renamed.metadata), renamed.version) == ("Ada L.", {"x": "1"}, 2)
    assert await update(api.a, "u2", ada.holder_id, name="Ada L.") == renamed  # nothing changed
    restricted = await update(api.a, "u3", ada.holder_id, state=State.STATE_RESTRICTED)
    assert (restricted.state, restricted.version) == (State.STATE_RESTRICTED, 3)
    assert [h.holder_id for h in await listed(api.a, state=State.STATE_RESTRICTED)] == [
        ada.holder_id
    ]

    # Tenant B sees none of them, and cannot change them.
    assert await listed(api.b) == []
    for call in (
        api.b.holders.GetHolder(pb.GetHolderRequest(holder_id=ada.holder_id), metadata=api.b.md),
        update(api.b, "u1", ada.holder_id, name="mine"),
        balances(api.b, ada.holder_id),
    ):
        missing = await failure(call)
        assert (missing.code, missing.reason) == (Code.NOT_FOUND, "HOLDER_NOT_FOUND")
        assert missing.metadata == {"holder_id": ada.holder_id}

    # Both changes are told as events carrying the holder.
    events = await api.a.events.ListEvents(
        epb.ListEventsRequest(
            start=epb.EVENT_START_OLDEST,
            filter=epb.EventFilter(holder_id=ada.holder_id),
        ),
        metadata=api.a.md,
    )
    told = [(e.type, e.holder.version) for e in events.events]
    assert told == [
        (event_pb2.EVENT_TYPE_HOLDER_CREATED, 1),
        (event_pb2.EVENT_TYPE_HOLDER_UPDATED, 2),
        (event_pb2.EVENT_TYPE_HOLDER_UPDATED, 3),
    ]


async def test_accounts_opened_for_a_holder(api: Api) -> None:
    ada = await create(api.a, "h1", "seller-ada")
    account = await api.a.open("a1", holder_id=ada.holder_id)
    assert account.holder_id == ada.holder_id
    mine = await api.a.accounts.ListAccounts(
        apb.ListAccountsRequest(holder_id=ada.holder_id), metadata=api.a.md
    )
    assert [a.id for a in mine.accounts] == [account.id]
    # A free-form holder_id keeps working as before.
    assert (await api.a.open("a2", holder_id="customer-42")).holder_id == "customer-42"
    # A holder id the tenant does not have (unknown, or tenant A's for tenant B).
    unknown = "hld_" + "a" * 26
    for client, holder in ((api.a, unknown), (api.b, ada.holder_id)):
        missing = await failure(client.open("a3", holder_id=holder))
        assert (missing.code, missing.reason) == (Code.NOT_FOUND, "HOLDER_NOT_FOUND")
        assert missing.metadata == {"holder_id": holder}


async def test_a_restricted_holder_takes_money_in_and_lets_none_out(api: Api) -> None:
    ada = await create(api.a, "h1", "seller-ada")
    source = await funding(api.a, "f")
    wallet = (await api.a.open("w", holder_id=ada.holder_id)).id
    other = (await api.a.open("o")).id
    await api.a.pay("p1", source, wallet, 10_000)
    earlier = await hold(api.a, "hold-before", wallet, other, 1_000)
    tipped = (
        await api.a.movements.CreateTransfer(
            mpb.CreateTransferRequest(
                request_id="tip-before", debit_account_id=wallet, credit_account_id=other,
                amount_minor=1_000, currency_code="USD", pending=True,
                over_capture_tolerance_bps=2_000,
            ),
            metadata=api.a.md,
        )
    ).transfer.id  # fmt: skip
    external = (
        await api.a.payouts.CreateExternalAccount(
            ppb.CreateExternalAccountRequest(
                request_id="x1", rail="simulated", currency_code="USD",
                routing_reference="110000000", account_number="000123456789",
                holder_name="Ada Seller",
            ),
            metadata=api.a.md,
        )
    ).external_account.id  # fmt: skip

    await update(api.a, "r", ada.holder_id, state=State.STATE_RESTRICTED)
    expected = {"holder_id": ada.holder_id, "account_id": wallet}
    refusals = [
        api.a.pay("t1", wallet, other, 100),
        hold(api.a, "t2", wallet, other, 100),
        api.a.movements.IncrementHold(
            mpb.IncrementHoldRequest(request_id="t3", transfer_id=earlier, amount_minor=100),
            metadata=api.a.md,
        ),
        # What an over-capture takes past its hold is a new debit too.
        api.a.movements.PostTransfer(
            mpb.PostTransferRequest(request_id="t3b", transfer_id=tipped, amount_minor=1_200),
            metadata=api.a.md,
        ),
        api.a.movements.CreateTransfers(
            mpb.CreateTransfersRequest(
                request_id="t4",
                transfers=[
                    mpb.CreateTransfersRequest.Item(
                        debit_account_id=wallet,
                        credit_account_id=other,
                        amount_minor=100,
                        currency_code="USD",
                    )
                ],
            ),
            metadata=api.a.md,
        ),
        api.a.payouts.CreatePayout(
            ppb.CreatePayoutRequest(
                request_id="t5",
                account_id=wallet,
                external_account_id=external,
                amount_minor=100,
                currency_code="USD",
                method=payout_pb2.PAYOUT_METHOD_INSTANT,
            ),
            metadata=api.a.md,
        ),
    ]
    for call in refusals:
        refused = await failure(call)
        assert (refused.code, refused.reason) == (Code.FAILED_PRECONDITION, "HOLDER_RESTRICTED")
        refused.metadata.pop("item_index", None)  # the batch's item, named as every batch's
        assert refused.metadata == expected
    # Money still comes in, and the hold placed before is still captured.
    await api.a.pay("in", source, wallet, 500)
    await api.a.movements.PostTransfer(
        mpb.PostTransferRequest(request_id="cap", transfer_id=earlier), metadata=api.a.md
    )
    await api.a.movements.PostTransfer(  # within the hold: money already committed
        mpb.PostTransferRequest(request_id="cap-tip", transfer_id=tipped), metadata=api.a.md
    )
    sums = (await balances(api.a, ada.holder_id)).balances
    assert [(s.posted_minor, s.available_minor) for s in sums] == [(8_500, 8_500)]
    # Lifted: money goes out again.
    lifted = await update(api.a, "a", ada.holder_id, state=State.STATE_ACTIVE)
    assert lifted.state == State.STATE_ACTIVE
    await api.a.pay("t1-again", wallet, other, 100)


async def test_closing_needs_every_account_closed(api: Api) -> None:
    ada = await create(api.a, "h1", "seller-ada")
    first = await api.a.open("a1", holder_id=ada.holder_id)
    second = await api.a.open("a2", holder_id=ada.holder_id)
    refused = await failure(update(api.a, "c1", ada.holder_id, state=State.STATE_CLOSED))
    assert (refused.code, refused.reason) == (Code.FAILED_PRECONDITION, "HOLDER_NOT_EMPTY")
    assert refused.metadata == {"holder_id": ada.holder_id, "open_account_count": "2"}
    for n, account in enumerate((first, second)):
        await api.a.accounts.CloseAccount(
            apb.CloseAccountRequest(request_id=f"close{n}", account_id=account.id),
            metadata=api.a.md,
        )
    closed = await update(api.a, "c2", ada.holder_id, state=State.STATE_CLOSED)
    assert closed.state == State.STATE_CLOSED
    for call in (
        update(api.a, "c3", ada.holder_id, name="again"),
        api.a.open("a3", holder_id=ada.holder_id),
    ):
        gone = await failure(call)
        assert (gone.code, gone.reason) == (Code.FAILED_PRECONDITION, "HOLDER_CLOSED")
        assert gone.metadata == {"holder_id": ada.holder_id}


async def test_holder_balances_sum_its_accounts_per_currency(api: Api) -> None:
    ada = await create(api.a, "h1", "seller-ada")
    assert list((await balances(api.a, ada.holder_id)).balances) == []
    usd, eur = await funding(api.a, "fu"), await funding(api.a, "fe", "EUR")
    other = (await api.a.open("o")).id
    w1 = (await api.a.open("w1", holder_id=ada.holder_id)).id
    w2 = (await api.a.open("w2", holder_id=ada.holder_id)).id
    e1 = (await api.a.open("e1", holder_id=ada.holder_id, currency_code="EUR")).id
    not_hers = (await api.a.open("n", holder_id="free-form")).id
    await api.a.pay("p1", usd, w1, 7_000)
    await api.a.pay("p2", usd, w2, 3_000)
    await api.a.pay("p3", usd, not_hers, 99_999)
    await api.a.pay("p4", eur, e1, 1_234, currency="EUR")
    await hold(api.a, "h-out", w1, other, 1_500)  # pending outbound of w1
    await hold(api.a, "h-in", usd, w2, 250)  # pending inbound of w2

    answer = await balances(api.a, ada.holder_id)
    got = [
        (s.currency_code, s.account_count, s.posted_minor, s.pending_inbound_minor,
         s.pending_outbound_minor, s.available_minor, s.pending_availability_minor,
         s.reserved_minor)
        for s in answer.balances
    ]  # fmt: skip
    assert got == [
        ("EUR", 1, 1_234, 0, 0, 1_234, 0, 0),
        ("USD", 2, 10_000, 250, 1_500, 8_500, 0, 0),
    ]
    assert answer.as_of_time.seconds > 0
    # The sums are those of each account's own balance.
    each = [
        (
            await api.a.balances.GetBalance(bpb.GetBalanceRequest(account_id=a), metadata=api.a.md)
        ).balance.available_minor
        for a in (w1, w2)
    ]
    assert sum(each) == 8_500


async def test_no_debit_commits_after_the_restriction_returned(api: Api) -> None:
    ada = await create(api.a, "h1", "seller-ada")
    source = await funding(api.a, "f")
    wallet = (await api.a.open("w", holder_id=ada.holder_id)).id
    other = (await api.a.open("o")).id
    await api.a.pay("p", source, wallet, 1_000)

    async def debit(n: int) -> str:
        await asyncio.sleep(n * 0.002)
        try:
            await api.a.pay(f"d{n}", wallet, other, 1)
        except grpc.aio.AioRpcError as refused:
            return str(refused.code())
        return "paid"

    async def restrict() -> None:
        await asyncio.sleep(0.02)
        await update(api.a, "r", ada.holder_id, state=State.STATE_RESTRICTED)

    *outcomes, _ = await asyncio.gather(*(debit(n) for n in range(30)), restrict())
    paid = outcomes.count("paid")
    assert outcomes.count(str(Code.FAILED_PRECONDITION)) == 30 - paid, outcomes
    listed = await api.a.events.ListEvents(
        epb.ListEventsRequest(
            start=epb.EVENT_START_OLDEST,
            filter=epb.EventFilter(holder_id=ada.holder_id),
            page_size=500,
        ),
        metadata=api.a.md,
    )
    order = [
        "restricted" if e.type == event_pb2.EVENT_TYPE_HOLDER_UPDATED else "debit"
        for e in listed.events
        if e.type == event_pb2.EVENT_TYPE_HOLDER_UPDATED
        or (
            e.type == event_pb2.EVENT_TYPE_TRANSFER_CREATED
            and e.transfer.debit_account_id == wallet
        )
    ]
    # Every debit that committed comes before the restriction in the stream (commit
    # order), and every one refused was refused for it.
    assert order == ["debit"] * paid + ["restricted"]
    sums = (await balances(api.a, ada.holder_id)).balances
    assert [s.posted_minor for s in sums] == [1_000 - paid]
