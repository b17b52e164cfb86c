"""The funds sweeper: scheduled parts of credits are released exactly once, by however
many sweepers (replicas) at once, and a sweeper that dies before its commit leaves them
for the next one, never released twice and never skipped."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from moneymovement.domain.accounts import OverdraftMode
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.funds import Availability
from moneymovement.domain.transfers import TransferSpec
from moneymovement.service.funds import FundsService
from moneymovement.service.pipeline import WritePipeline
from moneymovement.service.sweeper import HoldSweeper
from moneymovement.service.transfers import TransferService
from moneymovement.service.unit_of_work import UnitOfWork
from moneymovement.storage import ledger as storage_ledger
from tests.integration.conftest import Ledger, ledger_for
from tests.ledger_checks import assert_ledger_consistent


def _replica(ledger: Ledger) -> HoldSweeper:
    """A sweeper of its own, as another replica's: its own pipeline on the same database."""
    pipeline, reads = WritePipeline(ledger.database), UnitOfWork(ledger.database)
    return HoldSweeper(
        ledger.database, TransferService(pipeline, reads), 1, FundsService(pipeline, reads)
    )


async def _credits(ledger: Ledger, count: int, delay_s: float) -> list[str]:
    """`count` shops, each credited three times with parts due in `delay_s`."""
    funding = await ledger.open(OverdraftMode.UNLIMITED, normal_balance=NormalBalance.DEBIT)
    shops = []
    for _ in range(count):
        shop = await ledger.open()
        shops.append(shop.id)
        for amount in (100, 200, 300):
            spec = TransferSpec(
                funding.id, shop.id, amount, "USD",
                availability=Availability(delay=timedelta(seconds=delay_s)),
            )  # fmt: skip
            await ledger.transfers.create(ledger.caller, uuid.uuid4().hex, spec)
    return shops


async def _available(ledger: Ledger, shop: str) -> tuple[int, int]:
    [snapshot] = await ledger.balances.get_many(ledger.caller, [shop])
    return snapshot.balances.available(
        NormalBalance.CREDIT
    ), snapshot.balances.pending_availability_minor


async def test_three_sweepers_release_every_due_part_once(ledger: Ledger, dsn: str) -> None:
    other = await ledger_for(ledger.database, "tenant-b")
    shops = [(t, s) for t in (ledger, other) for s in await _credits(t, 8, 0.3)]
    later = await _credits(ledger, 1, 3_600)  # not due: left alone
    for tenant, shop in shops:
        assert await _available(tenant, shop) == (0, 600)
    await asyncio.sleep(0.4)

    sweepers = [_replica(ledger) for _ in range(3)]
    counts = await asyncio.gather(*(s.sweep_once() for s in sweepers))
    assert sum(counts) == len(shops) == 16  # each account released by exactly one of them
    assert await sweepers[0].sweep_once() == 0  # nothing left to do
    for tenant, shop in shops:
        assert await _available(tenant, shop) == (600, 0)
    assert await _available(ledger, later[0]) == (0, 600)
    await assert_ledger_consistent(dsn)


async def test_a_sweeper_killed_before_its_commit_leaves_the_parts_to_the_next(
    ledger: Ledger, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    [shop] = await _credits(ledger, 1, 0.2)
    await asyncio.sleep(0.3)
    dying = _replica(ledger)
    original = storage_ledger.LedgerStore.write

    async def crash(*args: object, **kwargs: object) -> None:
        raise ConnectionResetError("the server died before COMMIT")

    monkeypatch.setattr(storage_ledger.LedgerStore, "write", crash)
    assert await dying.sweep_once() == 0  # its release failed: logged, nothing changed
    assert await _available(ledger, shop) == (0, 600)

    monkeypatch.setattr(storage_ledger.LedgerStore, "write", original)
    assert await _replica(ledger).sweep_once() == 1  # a restarted one finds them all
    assert await _available(ledger, shop) == (600, 0)
    assert await _replica(ledger).sweep_once() == 0
    await assert_ledger_consistent(dsn)
