"""Immediate transfers through the service layer on real PostgreSQL, including races."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from moneymovement.domain.accounts import Account, OverdraftMode
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.commands import FreezeAccount
from moneymovement.domain.errors import DomainError, Reason, Rejected
from moneymovement.domain.transfers import TransferSpec, TransferState
from tests.integration.conftest import Ledger, ledger_for
from tests.ledger_checks import assert_ledger_consistent


def spec(debit: Account, credit: Account, amount: int, currency: str = "USD") -> TransferSpec:
    return TransferSpec(debit.id, credit.id, amount, currency)


async def funded(ledger: Ledger, amount: int) -> tuple[Account, Account]:
    """A customer account holding `amount`, and the funding account it came from."""
    funding = await ledger.open(OverdraftMode.UNLIMITED, normal_balance=NormalBalance.DEBIT)
    customer = await ledger.open()
    await ledger.transfers.create(ledger.caller, uuid.uuid4().hex, spec(funding, customer, amount))
    return customer, funding


async def available(ledger: Ledger, account: Account) -> int:
    [snapshot] = await ledger.balances.get_many(ledger.caller, [account.id])
    return snapshot.balances.available(snapshot.normal_balance)


async def test_a_transfer_moves_money_and_writes_balanced_entries(ledger: Ledger, dsn: str) -> None:
    customer, funding = await funded(ledger, 10_000)
    merchant = await ledger.open()
    transfer = await ledger.transfers.create(
        ledger.caller, "pay-1", spec(customer, merchant, 2_500)
    )
    assert transfer.state is TransferState.POSTED
    assert transfer.posted_amount_minor == 2_500
    assert await available(ledger, customer) == 7_500
    assert await available(ledger, merchant) == 2_500
    assert await available(ledger, funding) == 10_000  # DEBIT-normal: money handed out
    assert (await ledger.transfers.get(ledger.caller, transfer.id)) == transfer
    await assert_ledger_consistent(dsn)


async def test_rejections_change_nothing(ledger: Ledger, dsn: str) -> None:
    customer, _ = await funded(ledger, 100)
    euro = await ledger.open(currency_code="EUR")
    other = await ledger.open()
    cases = [
        (spec(customer, other, 101), Reason.INSUFFICIENT_FUNDS),
        (spec(customer, euro, 1), Reason.CURRENCY_MISMATCH),
        (TransferSpec(customer.id, "acct_" + "a" * 26, 1, "USD"), Reason.ACCOUNT_NOT_FOUND),
    ]
    for bad, reason in cases:
        with pytest.raises(Rejected) as rejected:
            await ledger.transfers.create(ledger.caller, uuid.uuid4().hex, bad)
        assert rejected.value.reason is reason
    assert await available(ledger, customer) == 100
    assert await available(ledger, other) == 0
    await assert_ledger_consistent(dsn)


async def test_frozen_and_closed_accounts_refuse_transfers(ledger: Ledger) -> None:
    customer, _ = await funded(ledger, 100)
    frozen = await ledger.open()
    await ledger.accounts.freeze(ledger.caller, "f1", FreezeAccount(frozen.id))
    closed = await ledger.open()
    await ledger.accounts.close(ledger.caller, "c1", closed.id, None)
    for target, reason in ((frozen, Reason.ACCOUNT_FROZEN), (closed, Reason.ACCOUNT_CLOSED)):
        for pair in (spec(customer, target, 1), spec(target, customer, 1)):
            with pytest.raises(Rejected) as rejected:
                await ledger.transfers.create(ledger.caller, uuid.uuid4().hex, pair)
            assert rejected.value.reason is reason


async def test_overdraft_limit_allows_going_negative_down_to_the_limit(ledger: Ledger) -> None:
    limited = await ledger.open(OverdraftMode.LIMITED, overdraft_limit_minor=500)
    other = await ledger.open()
    await ledger.transfers.create(ledger.caller, "t1", spec(limited, other, 500))
    assert await available(ledger, limited) == -500
    with pytest.raises(Rejected) as rejected:
        await ledger.transfers.create(ledger.caller, "t2", spec(limited, other, 1))
    assert rejected.value.reason is Reason.INSUFFICIENT_FUNDS


async def test_two_concurrent_transfers_that_together_overdraw_exactly_one_succeeds(
    ledger: Ledger, dsn: str
) -> None:
    for _ in range(5):  # several rounds: the race must never go the wrong way
        customer, _ = await funded(ledger, 100)
        a, b = await ledger.open(), await ledger.open()
        results = await asyncio.gather(
            ledger.transfers.create(ledger.caller, uuid.uuid4().hex, spec(customer, a, 70)),
            ledger.transfers.create(ledger.caller, uuid.uuid4().hex, spec(customer, b, 70)),
            return_exceptions=True,
        )
        ok = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, Rejected)]
        assert len(ok) == 1, results
        assert len(refused) == 1, results
        assert refused[0].reason is Reason.INSUFFICIENT_FUNDS
        assert await available(ledger, customer) == 30
    await assert_ledger_consistent(dsn)


async def test_many_concurrent_debits_never_overdraw(ledger: Ledger, dsn: str) -> None:
    customer, _ = await funded(ledger, 1_000)
    sinks = [await ledger.open() for _ in range(4)]
    results = await asyncio.gather(
        *(
            ledger.transfers.create(
                ledger.caller, uuid.uuid4().hex, spec(customer, sinks[i % 4], 100)
            )
            for i in range(16)
        ),
        return_exceptions=True,
    )
    ok = [r for r in results if not isinstance(r, BaseException)]
    unexpected = [
        r for r in results if isinstance(r, BaseException) and not isinstance(r, Rejected)
    ]
    assert not unexpected, unexpected
    assert len(ok) == 10
    assert await available(ledger, customer) == 0
    await assert_ledger_consistent(dsn)


async def test_twenty_concurrent_calls_with_one_request_id_make_one_transfer(
    ledger: Ledger, dsn: str
) -> None:
    customer, _ = await funded(ledger, 1_000)
    merchant = await ledger.open()
    results = await asyncio.gather(
        *(
            ledger.transfers.create(ledger.caller, "once", spec(customer, merchant, 10))
            for _ in range(20)
        ),
        return_exceptions=True,
    )
    transfers = [r for r in results if not isinstance(r, BaseException)]
    others = [r for r in results if isinstance(r, BaseException)]
    # Each duplicate either waits and replays, or is told the first is still in progress.
    assert all(
        isinstance(e, DomainError) and e.reason is Reason.REQUEST_IN_PROGRESS for e in others
    )
    assert transfers
    assert len({t.id for t in transfers}) == 1
    assert await available(ledger, merchant) == 10
    connection = await asyncpg.connect(dsn)
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM transfers WHERE request_id = 'once'"
        )
    finally:
        await connection.close()
    assert count == 1
    await assert_ledger_consistent(dsn)


async def test_a_replay_returns_the_original_and_a_changed_request_is_refused(
    ledger: Ledger,
) -> None:
    customer, _ = await funded(ledger, 1_000)
    merchant = await ledger.open()
    first = await ledger.transfers.create(ledger.caller, "r1", spec(customer, merchant, 10))
    again = await ledger.transfers.create(ledger.caller, "r1", spec(customer, merchant, 10))
    assert again == first
    with pytest.raises(DomainError) as reused:
        await ledger.transfers.create(ledger.caller, "r1", spec(customer, merchant, 11))
    assert reused.value.reason is Reason.REQUEST_ID_REUSED
    assert await available(ledger, merchant) == 10


async def test_a_rejection_is_replayed_even_after_the_state_changed(ledger: Ledger) -> None:
    customer, funding = await funded(ledger, 5)
    merchant = await ledger.open()
    for _ in range(2):
        with pytest.raises(Rejected) as rejected:
            await ledger.transfers.create(ledger.caller, "big", spec(customer, merchant, 50))
        assert rejected.value.reason is Reason.INSUFFICIENT_FUNDS
        # Funds arrive, but the same request keeps its original outcome.
        await ledger.transfers.create(ledger.caller, uuid.uuid4().hex, spec(funding, customer, 100))
    assert await available(ledger, merchant) == 0


async def test_tenants_cannot_see_or_touch_each_other(ledger: Ledger, database: object) -> None:
    other = await ledger_for(ledger.database, "tenant-b")
    mine, _ = await funded(ledger, 100)
    theirs, _ = await funded(other, 100)
    with pytest.raises(Rejected) as read:
        await ledger.accounts.get(ledger.caller, theirs.id)
    assert read.value.reason is Reason.ACCOUNT_NOT_FOUND
    with pytest.raises(Rejected) as moved:
        await ledger.transfers.create(ledger.caller, uuid.uuid4().hex, spec(mine, theirs, 1))
    assert moved.value.reason is Reason.ACCOUNT_NOT_FOUND
    with pytest.raises(Rejected):
        await ledger.balances.get_many(ledger.caller, [theirs.id])
    # The same request id in two tenants is two different requests.
    a = await ledger.transfers.create(
        ledger.caller, "shared-id", spec(mine, await ledger.open(), 1)
    )
    b = await other.transfers.create(other.caller, "shared-id", spec(theirs, await other.open(), 1))
    assert a.id != b.id
    assert await available(other, theirs) == 99


async def test_deadline_bounds_the_wait_for_a_locked_account(ledger: Ledger, dsn: str) -> None:
    customer, _ = await funded(ledger, 100)
    merchant = await ledger.open()
    blocker = await asyncpg.connect(dsn)
    try:
        async with blocker.transaction():
            await blocker.execute(
                "SELECT 1 FROM accounts WHERE account_id = $1 FOR UPDATE", customer.id
            )
            loop = asyncio.get_running_loop()
            hurried = type(ledger.caller)(ledger.caller.tenant_id, deadline=loop.time() + 0.3)
            with pytest.raises(DomainError) as late:
                await ledger.transfers.create(hurried, "late", spec(customer, merchant, 1))
            assert late.value.reason is Reason.DEADLINE_EXCEEDED
    finally:
        await blocker.close()
    assert await available(ledger, merchant) == 0
    # The abandoned attempt left no transaction or lock behind: the retry goes through.
    done = await ledger.transfers.create(ledger.caller, "late", spec(customer, merchant, 1))
    assert done.amount_minor == 1
