"""Concurrent balance reads coalesced into one statement (service/balance_reads.py)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from moneymovement.domain.accounts import OverdraftMode
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.errors import Reason, Rejected
from moneymovement.domain.transfers import TransferSpec
from moneymovement.storage.accounts import Accounts
from tests.integration.conftest import Ledger, ledger_for


async def test_concurrent_reads_share_statements_and_each_gets_its_own_accounts(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    funding = await ledger.open(OverdraftMode.UNLIMITED, normal_balance=NormalBalance.DEBIT)
    wallets = [await ledger.open() for _ in range(20)]
    for amount, wallet in enumerate(wallets, start=1):
        spec = TransferSpec(funding.id, wallet.id, amount, "USD")
        await ledger.transfers.create(ledger.caller, uuid.uuid4().hex, spec)
    statements = 0
    original = Accounts.balances

    async def counted(self: Accounts, account_ids: list[str]) -> object:
        nonlocal statements
        statements += 1
        return await original(self, account_ids)

    monkeypatch.setattr(Accounts, "balances", counted)
    asks = [[w.id] for w in wallets for _ in range(10)] + [[w.id for w in wallets[:5]]]
    answers = await asyncio.gather(*(ledger.balances.get_many(ledger.caller, ids) for ids in asks))
    for ids, snapshots in zip(asks, answers, strict=True):
        assert [s.account_id for s in snapshots] == ids
        for snapshot in snapshots:
            amount = wallets.index(next(w for w in wallets if w.id == snapshot.account_id)) + 1
            assert snapshot.balances.posted_credits_minor == amount
    assert statements < len(asks) / 10, statements  # 201 reads, a handful of statements


async def test_a_read_sees_every_write_committed_before_it_was_asked(ledger: Ledger) -> None:
    funding = await ledger.open(OverdraftMode.UNLIMITED, normal_balance=NormalBalance.DEBIT)
    wallet = await ledger.open()
    for n in range(1, 30):
        spec = TransferSpec(funding.id, wallet.id, 1, "USD")
        await ledger.transfers.create(ledger.caller, uuid.uuid4().hex, spec)
        # Readers already waiting may see older totals; a read asked now must see n.
        background = [
            asyncio.create_task(ledger.balances.get_many(ledger.caller, [wallet.id]))
            for _ in range(3)
        ]
        [now] = await ledger.balances.get_many(ledger.caller, [wallet.id])
        assert now.balances.posted_credits_minor == n
        await asyncio.gather(*background)


async def test_a_tenant_never_gets_another_tenants_balance_in_a_shared_moment(
    ledger: Ledger,
) -> None:
    other = await ledger_for(ledger.database, "tenant-b")
    theirs = await other.open()
    mine = await ledger.open()
    results = await asyncio.gather(
        ledger.balances.get_many(ledger.caller, [theirs.id]),
        other.balances.get_many(other.caller, [theirs.id]),
        ledger.balances.get_many(ledger.caller, [mine.id]),
        return_exceptions=True,
    )
    assert isinstance(results[0], Rejected)
    assert results[0].reason is Reason.ACCOUNT_NOT_FOUND
    assert [s.account_id for s in results[1]] == [theirs.id]  # type: ignore[union-attr]
    assert [s.account_id for s in results[2]] == [mine.id]  # type: ignore[union-attr]
