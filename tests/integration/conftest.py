"""Service-layer fixtures on a fresh real database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from moneymovement.domain.accounts import Account, OverdraftMode
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.commands import CreateAccount
from moneymovement.service.accounts import AccountService
from moneymovement.service.balances import BalanceService
from moneymovement.service.pipeline import WritePipeline
from moneymovement.service.tenants import TenantDirectory
from moneymovement.service.transfers import TransferService
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.session import Database


@dataclass
class Ledger:
    """The use cases of one tenant, as the servicers call them."""

    caller: Caller
    accounts: AccountService
    balances: BalanceService
    transfers: TransferService
    database: Database

    async def open(self, mode: OverdraftMode = OverdraftMode.NONE, **fields: object) -> Account:
        new = CreateAccount(
            currency_code=str(fields.pop("currency_code", "USD")),
            normal_balance=fields.pop("normal_balance", NormalBalance.CREDIT),  # type: ignore[arg-type]
            overdraft_mode=mode,
            **fields,  # type: ignore[arg-type]
        )
        return await self.accounts.create(self.caller, uuid.uuid4().hex, new)


@pytest.fixture
async def database(dsn: str) -> AsyncIterator[Database]:
    db = await Database.connect(dsn, max_size=40)
    yield db
    await db.close()


async def ledger_for(database: Database, name: str) -> Ledger:
    issued = await TenantDirectory(database).create_tenant(name)
    uow = UnitOfWork(database)
    pipeline = WritePipeline(database)
    return Ledger(
        caller=Caller(tenant_id=issued.tenant_id),
        accounts=AccountService(pipeline, uow),
        balances=BalanceService(uow),
        transfers=TransferService(pipeline, uow),
        database=database,
    )


@pytest.fixture
async def ledger(database: Database) -> Ledger:
    return await ledger_for(database, "tenant-a")
