"""Row-level security on its own: what the service's database role can see and write,
with no help from the tenant filter in the queries (migrations/0003)."""

from __future__ import annotations

import asyncpg
import pytest

from moneymovement.domain.accounts import OverdraftMode
from moneymovement.domain.transfers import TransferSpec
from moneymovement.storage.session import Database, begin_statement
from tests.integration.conftest import Ledger, ledger_for

LEDGER_TABLES = ("accounts", "transfers", "entries", "request_outcomes")


async def _two_tenants(database: Database) -> tuple[Ledger, Ledger]:
    a, b = await ledger_for(database, "rls-a"), await ledger_for(database, "rls-b")
    for ledger in (a, b):
        funding = await ledger.open(OverdraftMode.UNLIMITED)
        wallet = await ledger.open()
        await ledger.transfers.create(ledger.caller, "pay-1", _spec(funding.id, wallet.id))
    return a, b


def _spec(debit: str, credit: str) -> TransferSpec:
    return TransferSpec(debit_account_id=debit, credit_account_id=credit, amount_minor=500,
                        currency_code="USD")  # fmt: skip


async def _counts(connection: asyncpg.Connection) -> dict[str, int]:
    row = await connection.fetchrow(
        "SELECT (SELECT count(*) FROM accounts) AS accounts,"
        " (SELECT count(*) FROM transfers) AS transfers,"
        " (SELECT count(*) FROM entries) AS entries,"
        " (SELECT count(*) FROM request_outcomes) AS request_outcomes"
    )
    assert row is not None
    return dict(row)


async def test_a_transaction_sees_only_the_tenant_it_declared(database: Database) -> None:
    a, _ = await _two_tenants(database)
    async with database.session(a.caller.tenant_id, write=False) as session:
        connection = session.accounts._db  # raw SQL, no tenant filter at all
        assert await connection.fetchval("SELECT current_user") == "moneymovement_service"
        tenants = await connection.fetch("SELECT DISTINCT tenant_id FROM accounts")
        assert [row["tenant_id"] for row in tenants] == [a.caller.tenant_id]
        # Two accounts, one transfer, two entries, and the outcomes of three requests.
        assert await _counts(connection) == {
            "accounts": 2, "transfers": 1, "entries": 2, "request_outcomes": 3,
        }  # fmt: skip


async def test_without_a_declared_tenant_nothing_is_visible(database: Database) -> None:
    await _two_tenants(database)
    async with database._pool.acquire() as connection:  # a bare pool connection
        assert await _counts(connection) == dict.fromkeys(LEDGER_TABLES, 0)


async def test_another_tenants_rows_cannot_be_written(database: Database) -> None:
    a, b = await _two_tenants(database)
    async with database._pool.acquire() as connection:
        await connection.execute(begin_statement("begin_write", a.caller.tenant_id))
        try:
            # An update naming B's tenant matches nothing: B's rows are invisible.
            moved = await connection.execute(
                "UPDATE accounts SET posted_credits_minor = posted_credits_minor + 1 "
                "WHERE tenant_id = $1",
                b.caller.tenant_id,
            )
            assert moved == "UPDATE 0"
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                await connection.execute(
                    "INSERT INTO accounts (tenant_id, account_id, currency_code, "
                    "normal_balance, overdraft_mode, state) "
                    "VALUES ($1, 'acct_planted', 'USD', 'CREDIT', 'NONE', 'ACTIVE')",
                    b.caller.tenant_id,
                )
        finally:
            await connection.execute("ROLLBACK")


async def test_the_service_role_can_neither_bypass_nor_own(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        role = await connection.fetchrow(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'moneymovement_service'"
        )
        assert (role["rolsuper"], role["rolbypassrls"]) == (False, False)
        tables = await connection.fetch(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
            "pg_get_userbyid(c.relowner) AS owner FROM pg_class AS c "
            "WHERE c.relname = ANY($1::text[]) ORDER BY c.relname",
            list(LEDGER_TABLES),
        )
        assert len(tables) == len(LEDGER_TABLES)
        for table in tables:
            assert table["relrowsecurity"], table["relname"]
            assert table["relforcerowsecurity"], table["relname"]
            assert table["owner"] != "moneymovement_service", table["relname"]
    finally:
        await connection.close()


def test_only_a_tenant_id_can_be_declared() -> None:
    with pytest.raises(ValueError, match="not a tenant id"):
        begin_statement("begin_write", "ten_x'); DROP TABLE accounts; --")
