"""Row-level security on its own: what the service's database role can see and write,
with no help from the tenant filter in the queries (migrations/0003)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from moneymovement.domain import ids
from moneymovement.domain.accounts import OverdraftMode
from moneymovement.domain.commands import CreateBalanceMonitor
from moneymovement.domain.funds import Availability, FundsPolicy
from moneymovement.domain.monitors import MonitorField, MonitorOperator
from moneymovement.domain.transfers import TransferSpec
from moneymovement.storage.errors import DatabaseUnavailable
from moneymovement.storage.session import Database, begin_statement
from moneymovement.storage.verify import verify_ledger
from tests.integration.conftest import Ledger, ledger_for

LEDGER_TABLES = (
    "accounts",
    "transfers",
    "entries",
    "request_outcomes",
    "events",
    "event_horizons",
    "scheduled_funds",
    "balance_monitors",
    "account_policy_changes",
)


async def _two_tenants(database: Database) -> tuple[Ledger, Ledger]:
    a, b = await ledger_for(database, "rls-a"), await ledger_for(database, "rls-b")
    for ledger in (a, b):
        funding = await ledger.open(OverdraftMode.UNLIMITED)
        # A funds policy (an audited change), a credit not available yet (a scheduled
        # part) and a balance monitor: a row in each table of funds accessibility.
        wallet = await ledger.open(funds_policy=FundsPolicy(early_release_allowed=True))
        await ledger.transfers.create(ledger.caller, "pay-1", _spec(funding.id, wallet.id))
        monitor = CreateBalanceMonitor(wallet.id, MonitorField.POSTED, MonitorOperator.ABOVE, 0)
        await ledger.accounts._pipeline.submit(ledger.caller, "monitor-1", monitor)
    return a, b


def _spec(debit: str, credit: str) -> TransferSpec:
    return TransferSpec(debit_account_id=debit, credit_account_id=credit, amount_minor=500,
                        currency_code="USD",
                        availability=Availability(delay=timedelta(days=1)))  # fmt: skip


async def _counts(connection: asyncpg.Connection) -> dict[str, int]:
    # Our own table names, not input.
    counts = ", ".join(f"(SELECT count(*) FROM {t}) AS {t}" for t in LEDGER_TABLES)  # noqa: S608
    row = await connection.fetchrow(f"SELECT {counts}")
    assert row is not None
    return dict(row)


async def test_a_transaction_sees_only_the_tenant_it_declared(database: Database) -> None:
    a, _ = await _two_tenants(database)
    async with database.session(a.caller.tenant_id, write=False) as session:
        connection = session.accounts._db  # raw SQL, no tenant filter at all
        role = await connection.fetchval("SELECT name FROM service_role")
        assert role.startswith("mm_service_")
        assert await connection.fetchval("SELECT current_user") == role
        tenants = await connection.fetch("SELECT DISTINCT tenant_id FROM accounts")
        assert [row["tenant_id"] for row in tenants] == [a.caller.tenant_id]
        # Two accounts, one transfer, two entries, the outcomes of four requests, four
        # events (two accounts, the transfer, the monitor triggered at once), one part,
        # one monitor, one policy change.
        assert await _counts(connection) == {
            "accounts": 2, "transfers": 1, "entries": 2, "request_outcomes": 4, "events": 4,
            "event_horizons": 0, "scheduled_funds": 1, "balance_monitors": 1,
            "account_policy_changes": 1,
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
        role = await connection.fetchval("SELECT name FROM service_role")
        found = await connection.fetchrow(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", role
        )
        assert (found["rolsuper"], found["rolbypassrls"]) == (False, False)
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
            assert table["owner"] != role, table["relname"]
        # The server-wide role of migration 0003 keeps nothing in this database: another
        # database's owner who is a member of it gets nothing here.
        for table in LEDGER_TABLES:
            granted = await connection.fetchval(
                "SELECT has_table_privilege('moneymovement_service', $1, 'SELECT')", table
            )
            assert granted is False, table
    finally:
        await connection.close()


async def _login(dsn: str, name: str, *, member_of_service_role: bool) -> str:
    """A new login role (trusted locally) and its DSN to the same database."""
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE ROLE "{name}" LOGIN')
        if member_of_service_role:
            role = await admin.fetchval("SELECT name FROM service_role")
            await admin.execute(f'GRANT "{role}" TO "{name}"')
    finally:
        await admin.close()
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{name}@{parts.hostname}:{parts.port}"))


async def test_verify_refuses_to_pass_a_ledger_it_cannot_see(dsn: str) -> None:
    database = await Database.connect(dsn, max_size=2)
    try:
        await _two_tenants(database)
    finally:
        await database.close()
    as_owner = await verify_ledger(dsn)
    assert as_owner.ok, as_owner
    # The service's login sees no row without a tenant: every other check would pass.
    reader = await _login(dsn, f"reader_{secrets.token_hex(4)}", member_of_service_role=True)
    as_reader = await verify_ledger(reader)
    assert not as_reader.ok
    [refused] = [check for check in as_reader.checks if not check.ok]
    assert refused.name == "verify_reader_sees_every_tenant"
    assert {row["table_name"] for row in refused.violations} == set(LEDGER_TABLES)


async def test_a_login_that_cannot_take_the_service_role_is_refused(dsn: str) -> None:
    stranger = await _login(dsn, f"stranger_{secrets.token_hex(4)}", member_of_service_role=False)
    database = await Database.connect(stranger, max_size=2)
    try:
        with pytest.raises(DatabaseUnavailable, match="cannot switch to the service's role"):
            async with database.session(ids.new_id(ids.TENANT), write=False):
                pass
        with pytest.raises(DatabaseUnavailable):
            await database.ping()  # so readiness reports it too
    finally:
        await database.close()


def test_only_a_tenant_id_can_be_declared() -> None:
    with pytest.raises(ValueError, match="not a tenant id"):
        begin_statement("begin_write", "ten_x'); DROP TABLE accounts; --")
