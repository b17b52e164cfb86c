"""Expired holds are released once, however many sweepers run at the same time."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from moneymovement.domain.accounts import OverdraftMode
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.errors import DomainError, Reason
from moneymovement.domain.transfers import TransferSpec, TransferState
from moneymovement.service.pipeline import WritePipeline
from moneymovement.service.sweeper import HoldSweeper
from moneymovement.service.transfers import TransferService
from moneymovement.service.unit_of_work import UnitOfWork
from tests.integration.conftest import Ledger, ledger_for
from tests.ledger_checks import assert_ledger_consistent


async def test_two_sweepers_release_each_expired_hold_once(ledger: Ledger, dsn: str) -> None:
    other = await ledger_for(ledger.database, "tenant-b")
    holds = []
    for tenant in (ledger, other):
        funding = await tenant.open(OverdraftMode.UNLIMITED, normal_balance=NormalBalance.DEBIT)
        wallet, shop = await tenant.open(), await tenant.open()
        fund = TransferSpec(funding.id, wallet.id, 10_000, "USD")
        await tenant.transfers.create(tenant.caller, uuid.uuid4().hex, fund)
        for _ in range(15):
            spec = TransferSpec(wallet.id, shop.id, 100, "USD", pending=True, hold_timeout_s=0.2)
            holds.append(
                (tenant, await tenant.transfers.create(tenant.caller, uuid.uuid4().hex, spec))
            )
    await asyncio.sleep(0.3)

    sweepers = [HoldSweeper(ledger.database, _service(ledger), interval_s=1) for _ in range(3)]
    counts = await asyncio.gather(*(s.sweep_once() for s in sweepers))
    assert sum(counts) == len(holds) == 30
    assert await sweepers[0].sweep_once() == 0  # nothing left to do
    for tenant, held in holds:
        final = await tenant.transfers.get(tenant.caller, held.id)
        assert final.state is TransferState.EXPIRED
        assert [e.kind.value for e in final.history] == ["CREATED", "EXPIRED"]
    await assert_ledger_consistent(dsn)


async def test_a_hold_not_yet_due_is_left_alone(ledger: Ledger) -> None:
    funding = await ledger.open(OverdraftMode.UNLIMITED, normal_balance=NormalBalance.DEBIT)
    shop = await ledger.open()
    spec = TransferSpec(funding.id, shop.id, 5, "USD", pending=True, hold_timeout_s=3600)
    held = await ledger.transfers.create(ledger.caller, "h", spec)
    sweeper = HoldSweeper(ledger.database, ledger.transfers, interval_s=1)
    assert await sweeper.sweep_once() == 0
    assert await ledger.transfers.expire(ledger.caller, held.id) is None
    assert (await ledger.transfers.get(ledger.caller, held.id)).state is TransferState.PENDING


async def test_a_hold_that_fails_to_expire_does_not_stop_the_others(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    funding = await ledger.open(OverdraftMode.UNLIMITED, normal_balance=NormalBalance.DEBIT)
    shop = await ledger.open()
    held = []
    for _ in range(5):
        spec = TransferSpec(funding.id, shop.id, 5, "USD", pending=True, hold_timeout_s=0.1)
        held.append(await ledger.transfers.create(ledger.caller, uuid.uuid4().hex, spec))
    await asyncio.sleep(0.2)
    stuck = held[0].id
    service = _service(ledger)
    original = service.expire

    async def flaky(caller: object, transfer_id: str) -> object:
        if transfer_id == stuck:
            raise DomainError(Reason.CONCURRENCY_CONFLICT, "a hot account, say")
        return await original(caller, transfer_id)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "expire", flaky)
    assert await HoldSweeper(ledger.database, service, interval_s=1).sweep_once() == 4
    states = [(await ledger.transfers.get(ledger.caller, h.id)).state for h in held]
    assert states == [TransferState.PENDING] + [TransferState.EXPIRED] * 4


def _service(ledger: Ledger) -> TransferService:
    """A service of its own, as another replica's: its own pipeline on the same database."""
    return TransferService(WritePipeline(ledger.database), UnitOfWork(ledger.database))
