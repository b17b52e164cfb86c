"""A hot account's queued transfers written as one group (service/hot_accounts.py):
each request keeps its own answer and outcome, exactly as if it had run alone."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from dataclasses import replace

import asyncpg
import pytest

from moneymovement.domain.accounts import Account, OverdraftMode
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.errors import Reason, Rejected
from moneymovement.domain.transfers import Transfer, TransferState
from moneymovement.storage.session import Database
from tests.integration.conftest import Ledger, ledger_for
from tests.integration.test_transfers import available, funded, spec
from tests.ledger_checks import assert_ledger_consistent


async def _funding_accounts(ledger: Ledger, count: int) -> list[Account]:
    return [
        await ledger.open(OverdraftMode.UNLIMITED, normal_balance=NormalBalance.DEBIT)
        for _ in range(count)
    ]


def _grouped(ledger: Ledger) -> int:
    return ledger.transfers._hot.groups_written


async def test_many_transfers_into_one_account_are_written_in_groups(
    ledger: Ledger, dsn: str
) -> None:
    hot = await ledger.open()
    payers = await _funding_accounts(ledger, 10)
    moves = [
        ledger.transfers.create(ledger.caller, f"pay-{i}", spec(payers[i % 10], hot, i + 1))
        for i in range(80)
    ]
    transfers = await asyncio.gather(*moves)
    assert len({t.id for t in transfers}) == 80
    assert await available(ledger, hot) == sum(range(1, 81))
    assert _grouped(ledger) > 0, "nothing was grouped: the test does not test groups"
    # Every request replays its own transfer, grouped or not.
    for i, transfer in enumerate(transfers):
        again = await ledger.transfers.create(
            ledger.caller, f"pay-{i}", spec(payers[i % 10], hot, i + 1)
        )
        assert again.id == transfer.id
    assert await available(ledger, hot) == sum(range(1, 81))
    await assert_ledger_consistent(dsn)


async def test_a_refusal_in_a_group_refuses_only_its_own_transfer(ledger: Ledger, dsn: str) -> None:
    wallet, funding = await funded(ledger, 23)  # 64 debits of 1 from it: the wallet is hot
    payees = [await ledger.open() for _ in range(4)]

    async def pay(i: int) -> Transfer | Rejected:
        try:
            return await ledger.transfers.create(
                ledger.caller, f"debit-{i}", spec(wallet, payees[i % 4], 1)
            )
        except Rejected as refusal:
            return refusal

    results = await asyncio.gather(*(pay(i) for i in range(64)))
    moved = [r for r in results if isinstance(r, Transfer)]
    refused = [r for r in results if isinstance(r, Rejected)]
    assert len(moved) == 23
    assert {r.reason for r in refused} == {Reason.INSUFFICIENT_FUNDS}
    assert await available(ledger, wallet) == 0
    assert _grouped(ledger) > 0, "nothing was grouped: the test does not test groups"
    # A refused request replays its refusal even once the money is there.
    await ledger.transfers.create(ledger.caller, "top-up", spec(funding, wallet, 100))
    first_refused = next(i for i, r in enumerate(results) if isinstance(r, Rejected))
    with pytest.raises(Rejected) as replayed:
        await pay_again(ledger, wallet, payees, first_refused)
    assert replayed.value.reason is Reason.INSUFFICIENT_FUNDS
    assert await available(ledger, wallet) == 100
    await assert_ledger_consistent(dsn)


async def pay_again(ledger: Ledger, wallet: Account, payees: list[Account], i: int) -> None:
    await ledger.transfers.create(ledger.caller, f"debit-{i}", spec(wallet, payees[i % 4], 1))


async def test_a_repeat_inside_a_group_moves_nothing_twice(ledger: Ledger, dsn: str) -> None:
    hot = await ledger.open()
    payers = await _funding_accounts(ledger, 8)
    earlier = await ledger.transfers.create(ledger.caller, "early", spec(payers[0], hot, 1000))
    # The same request again, twice, among new ones, while the account is hot: the group
    # that holds a repeat rolls back and its members run alone; nothing moves twice.
    moves = [
        ledger.transfers.create(ledger.caller, f"new-{i}", spec(payers[i % 8], hot, 1))
        for i in range(40)
    ]
    for position, request_id, payer, amount in (
        (10, "early", payers[0], 1000),
        (20, "twin", payers[1], 7),
        (30, "early", payers[0], 1000),
        (41, "twin", payers[1], 7),
    ):
        moves.insert(
            position, ledger.transfers.create(ledger.caller, request_id, spec(payer, hot, amount))
        )
    results = await asyncio.gather(*moves)
    assert [t.id for t in results if t.request_id == "early"] == [earlier.id, earlier.id]
    twins = {t.id for t in results if t.request_id == "twin"}
    assert len(twins) == 1
    assert await available(ledger, hot) == 1000 + 40 + 7
    await assert_ledger_consistent(dsn)


async def test_transfers_of_a_group_keep_their_own_trace_ids(ledger: Ledger) -> None:
    hot = await ledger.open()
    payers = await _funding_accounts(ledger, 4)
    callers = [
        type(ledger.caller)(ledger.caller.tenant_id, None, uuid.uuid4().hex) for _ in range(30)
    ]
    transfers = await asyncio.gather(
        *(
            ledger.transfers.create(caller, f"traced-{i}", spec(payers[i % 4], hot, 1))
            for i, caller in enumerate(callers)
        )
    )
    assert [t.trace_id for t in transfers] == [c.trace_id for c in callers]
    assert _grouped(ledger) > 0, "nothing was grouped: the test does not test groups"


async def test_holds_placed_in_a_group_reserve_and_capture_exactly(
    ledger: Ledger, dsn: str
) -> None:
    hot = await ledger.open()
    payers = await _funding_accounts(ledger, 5)
    holds = await asyncio.gather(
        *(
            ledger.transfers.create(
                ledger.caller, f"hold-{i}", replace(spec(payers[i % 5], hot, i + 1), pending=True)
            )
            for i in range(40)
        )
    )
    assert _grouped(ledger) > 0, "nothing was grouped: the test does not test groups"
    assert {h.state for h in holds} == {TransferState.PENDING}
    assert await available(ledger, hot) == 0  # reserved, not yet available
    for hold in holds[:20]:
        await ledger.transfers.post(ledger.caller, f"post-{hold.id}", hold.id, 0)
    for hold in holds[20:]:
        await ledger.transfers.void(ledger.caller, f"void-{hold.id}", hold.id)
    assert await available(ledger, hot) == sum(range(1, 21))
    await assert_ledger_consistent(dsn)


async def test_another_tenant_naming_a_hot_account_never_joins_its_group(
    database: Database, dsn: str
) -> None:
    # B's account is hot; A names it (a foreign id) while B's transfers queue on it. A
    # must be answered as for a made-up account, and nothing of A's may be written in
    # B's ledger, not even a refusal under A's request id.
    owner = await ledger_for(database, "owner")
    # The same services (one queue, one set of groups), as in one server process.
    other = await ledger_for(database, "stranger")
    stranger = dataclasses.replace(owner, caller=other.caller)
    hot = await owner.open()
    payers = await _funding_accounts(owner, 4)
    stranger_payer = (await _funding_accounts(stranger, 1))[0]

    async def strange(i: int) -> Rejected | Transfer:
        try:
            return await stranger.transfers.create(
                stranger.caller, f"stranger-{i}", spec(stranger_payer, hot, 5)
            )
        except Rejected as refusal:
            return refusal

    owners = [
        owner.transfers.create(owner.caller, f"owner-{i}", spec(payers[i % 4], hot, 1))
        for i in range(60)
    ]
    results = await asyncio.gather(*owners, *(strange(i) for i in range(20)))
    strangers = results[60:]
    assert all(isinstance(r, Rejected) and r.reason is Reason.ACCOUNT_NOT_FOUND for r in strangers)
    assert _grouped(owner) > 0, "nothing was grouped: the test does not test groups"
    assert await available(owner, hot) == 60
    connection = await asyncpg.connect(dsn)  # as the owner of the tables: every tenant
    try:
        leaked = await connection.fetchval(
            "SELECT count(*) FROM request_outcomes WHERE tenant_id = $1 "
            "AND request_id LIKE 'stranger-%'",
            owner.caller.tenant_id,
        )
    finally:
        await connection.close()
    assert leaked == 0
    await assert_ledger_consistent(dsn)
