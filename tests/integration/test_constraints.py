"""The database itself refuses what would break an invariant, even if the code let it by."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from moneymovement.domain import ids


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn)
    await connection.execute("INSERT INTO tenants (tenant_id, name) VALUES ('ten_a', 'a')")
    await connection.execute("INSERT INTO tenants (tenant_id, name) VALUES ('ten_b', 'b')")
    yield connection
    await connection.close()


async def _account(
    db: asyncpg.Connection, tenant: str = "ten_a", currency: str = "USD", **columns: object
) -> str:
    account_id = ids.new_id(ids.ACCOUNT)
    values = {
        "tenant_id": tenant,
        "account_id": account_id,
        "currency_code": currency,
        "normal_balance": "CREDIT",
        "overdraft_mode": "NONE",
        "state": "ACTIVE",
        **columns,
    }
    names = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await db.execute(f"INSERT INTO accounts ({names}) VALUES ({params})", *values.values())  # noqa: S608
    return account_id


async def _transfer(
    db: asyncpg.Connection, debit: str, credit: str, amount: int, currency: str = "USD",
    tenant: str = "ten_a",
) -> None:  # fmt: skip
    await db.execute(
        "INSERT INTO transfers (tenant_id, transfer_id, request_id, debit_account_id,"
        " credit_account_id, currency_code, amount_minor, state, posted_amount_minor)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, 'POSTED', $7)",
        tenant, ids.new_id(ids.TRANSFER), ids.new_id("req"), debit, credit, currency, amount,
    )  # fmt: skip


async def test_amounts_must_be_positive(db: asyncpg.Connection) -> None:
    a, b = await _account(db), await _account(db)
    for amount in (0, -5):
        with pytest.raises(asyncpg.CheckViolationError):
            await _transfer(db, a, b, amount)


async def test_debit_and_credit_accounts_must_differ(db: asyncpg.Connection) -> None:
    a = await _account(db)
    with pytest.raises(asyncpg.CheckViolationError):
        await _transfer(db, a, a, 10)


async def test_transfer_currency_must_match_both_accounts(db: asyncpg.Connection) -> None:
    usd, eur = await _account(db), await _account(db, currency="EUR")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await _transfer(db, usd, eur, 10)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await _transfer(db, usd, await _account(db), 10, currency="EUR")


async def test_transfer_cannot_reach_another_tenants_account(db: asyncpg.Connection) -> None:
    mine, theirs = await _account(db), await _account(db, tenant="ten_b")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await _transfer(db, mine, theirs, 10)


async def test_balance_cannot_go_below_the_overdraft_policy(db: asyncpg.Connection) -> None:
    plain = await _account(db)
    with pytest.raises(asyncpg.CheckViolationError, match="accounts_within_overdraft_policy"):
        await db.execute("UPDATE accounts SET posted_debits_minor = 1 WHERE account_id = $1", plain)
    limited = await _account(db, overdraft_mode="LIMITED", overdraft_limit_minor=100)
    await db.execute("UPDATE accounts SET posted_debits_minor = 100 WHERE account_id = $1", limited)
    with pytest.raises(asyncpg.CheckViolationError, match="accounts_within_overdraft_policy"):
        await db.execute(
            "UPDATE accounts SET pending_debits_minor = 1 WHERE account_id = $1", limited
        )
    unlimited = await _account(db, overdraft_mode="UNLIMITED")
    await db.execute(
        "UPDATE accounts SET posted_debits_minor = 9223372036854775807 WHERE account_id = $1",
        unlimited,
    )


async def test_a_closed_account_must_be_empty(db: asyncpg.Connection) -> None:
    account = await _account(db, posted_credits_minor=5)
    with pytest.raises(asyncpg.CheckViolationError, match="accounts_closed_only_when_empty"):
        await db.execute("UPDATE accounts SET state = 'CLOSED' WHERE account_id = $1", account)


async def test_a_request_id_creates_one_transfer_forever(db: asyncpg.Connection) -> None:
    a, b = await _account(db, overdraft_mode="UNLIMITED"), await _account(db)
    insert = (
        "INSERT INTO transfers (tenant_id, transfer_id, request_id, debit_account_id,"
        " credit_account_id, currency_code, amount_minor, state, posted_amount_minor)"
        " VALUES ('ten_a', $1, 'same', $2, $3, 'USD', 1, 'POSTED', 1)"
    )
    await db.execute(insert, ids.new_id(ids.TRANSFER), a, b)
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(insert, ids.new_id(ids.TRANSFER), a, b)


async def _asset(db: asyncpg.Connection, tenant: str, code: str, exponent: int = 2) -> None:
    await db.execute(
        "INSERT INTO assets (tenant_id, code, exponent, name, request_id, created_at)"
        " VALUES ($1, $2, $3, 'an asset', 'req', now())",
        tenant, code, exponent,
    )  # fmt: skip


async def test_an_account_in_an_asset_needs_its_tenants_registration(
    db: asyncpg.Connection,
) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await _account(db, currency="POINTS")
    await _asset(db, "ten_b", "POINTS")  # another tenant's registration does not count
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await _account(db, currency="POINTS")
    await _asset(db, "ten_a", "POINTS")
    await _account(db, currency="POINTS")
    for malformed in ("usd", "1COIN", "US", "ABCDEFGHIJKLM"):
        with pytest.raises(asyncpg.CheckViolationError):
            await _account(db, currency=malformed)


async def test_assets_keep_their_shape_and_exponent_bounds(db: asyncpg.Connection) -> None:
    for code, exponent in (("EU", 2), ("coin", 2), ("COIN", 19), ("COIN", -1)):
        with pytest.raises(asyncpg.CheckViolationError):
            await _asset(db, "ten_a", code, exponent)
    await _asset(db, "ten_a", "COIN", 18)
    with pytest.raises(asyncpg.UniqueViolationError):
        await _asset(db, "ten_a", "COIN", 2)


async def _holder(db: asyncpg.Connection, tenant: str, external_id: str) -> str:
    holder_id = ids.new_id(ids.HOLDER)
    await db.execute(
        "INSERT INTO holders (tenant_id, holder_id, external_id, state, version, created_at,"
        " updated_at) VALUES ($1, $2, $3, 'ACTIVE', 1, now(), now())",
        tenant, holder_id, external_id,
    )  # fmt: skip
    return holder_id


async def test_an_accounts_holder_reference_is_its_tenants_holder(db: asyncpg.Connection) -> None:
    mine, theirs = await _holder(db, "ten_a", "seller-1"), await _holder(db, "ten_b", "seller-1")
    await _account(db, holder_id=mine, holder_ref=mine)
    # A free-form holder_id, even one shaped like a holder's id, references nothing.
    await _account(db, holder_id=ids.new_id(ids.HOLDER))
    for ref in (ids.new_id(ids.HOLDER), theirs):  # nobody's, or another tenant's
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await _account(db, holder_id=ref, holder_ref=ref)
    with pytest.raises(asyncpg.CheckViolationError):  # the reference is the holder_id
        await _account(db, holder_id="seller-1", holder_ref=mine)
    with pytest.raises(asyncpg.UniqueViolationError):  # one external id per tenant
        await _holder(db, "ten_a", "seller-1")
    with pytest.raises(asyncpg.CheckViolationError):
        await _holder(db, "ten_a", "")
