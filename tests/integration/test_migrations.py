"""Migrations from empty give the expected schema, once, even when run concurrently."""

from __future__ import annotations

import asyncio

import asyncpg

from moneymovement.storage.asset_rows import ASSET_COLUMNS
from moneymovement.storage.holder_rows import HOLDER_COLUMNS
from moneymovement.storage.migrate import available_migrations, migrate
from moneymovement.storage.rail_rows import (
    EXTERNAL_ACCOUNT_COLUMNS,
    INBOUND_COLUMNS,
    PAYOUT_COLUMNS,
)
from tests.conftest import with_database

EXPECTED_TABLES = {
    "tenants": ["tenant_id", "name", "created_at"],
    # Which role the service switches to (migration 0004).
    "service_role": ["name", "singleton"],
    "api_tokens": [
        "token_id", "tenant_id", "token_sha256", "created_at", "revoked_at", "holder_id",
    ],
    "accounts": [
        "tenant_id", "account_id", "external_id", "name", "currency_code", "normal_balance",
        "overdraft_mode", "overdraft_limit_minor", "holder_id", "metadata", "state",
        "posted_debits_minor", "posted_credits_minor", "pending_debits_minor",
        "pending_credits_minor", "version", "created_at", "updated_at",
        # Funds accessibility (migration 0007).
        "pending_availability_minor", "reserved_minor", "funds_policy", "freeze_scope",
        "freeze_reason", "attributes_version",
        # An account's holder as a checked reference (migration 0013).
        "holder_ref", "open_to_holders",
        # The negative-balance reserve (migration 0016).
        "negative_balance_reserve_account_id", "reserve_debt_minor",
    ],
    "transfers": [
        "tenant_id", "transfer_id", "request_id", "batch_index", "batch_id",
        "debit_account_id", "credit_account_id", "currency_code", "amount_minor", "state",
        "posted_amount_minor", "reversed_amount_minor", "reversal_of_id", "description",
        "metadata", "expires_at", "finalized_at", "finalized_request_id", "trace_id",
        "created_at", "updated_at", "available_at", "availability_delay", "owner_id",
        "over_capture_bps", "hold_steps",
        # The negative-balance reserve's covers and recoveries (migration 0016).
        "reserve_movement",
    ],
    "entries": [
        "tenant_id", "account_id", "account_version", "transfer_id", "direction", "kind",
        "amount_minor", "posted_debits_minor", "posted_credits_minor",
        "pending_debits_minor", "pending_credits_minor", "created_at",
        "pending_availability_minor", "reserved_minor",
    ],
    "scheduled_funds": [
        "tenant_id", "funds_id", "account_id", "transfer_id", "kind", "amount_minor",
        "available_at", "remainder_of_id", "created_at", "ended_at", "end_kind",
        "ended_amount_minor", "end_request_id", "remainder_id",
    ],
    "balance_monitors": [
        "tenant_id", "monitor_id", "account_id", "field", "operator", "threshold_minor",
        "description", "triggered", "deleted", "created_at", "updated_at",
    ],
    "account_policy_changes": [
        "tenant_id", "account_id", "version", "before", "after", "request_id", "trace_id",
        "changed_at",
    ],
    "request_outcomes": ["tenant_id", "request_id", "fingerprint", "outcome", "created_at"],
    # The outbox (migration 0006) and how far each tenant's events were pruned.
    "events": [
        "tenant_id", "position", "type", "occurred_at", "request_id", "trace_id",
        "account_ids", "holder_ids", "transfer_ids", "payload",
    ],
    "event_horizons": ["tenant_id", "pruned_through", "pruned_until"],
    "schema_migrations": ["version", "name", "applied_at"],
    # Migration 0008: write_batch sends these tables' rows in this column order.
    "external_accounts": list(EXTERNAL_ACCOUNT_COLUMNS),
    "payouts": list(PAYOUT_COLUMNS),
    "inbound_transfers": list(INBOUND_COLUMNS),
    # Migration 0011: tenant assets, written by write_batch in this column order.
    "assets": list(ASSET_COLUMNS),
    # Migration 0013: holders, written by write_batch in this column order.
    "holders": list(HOLDER_COLUMNS),
}  # fmt: skip

# Keys lead with the tenant id: every lookup is tenant-scoped by its index.
EXPECTED_PRIMARY_KEYS = {
    "accounts": ["tenant_id", "account_id"],
    "transfers": ["tenant_id", "transfer_id"],
    "entries": ["tenant_id", "account_id", "account_version"],
    "request_outcomes": ["tenant_id", "request_id"],
    "events": ["tenant_id", "position"],
    "scheduled_funds": ["tenant_id", "funds_id"],
    "balance_monitors": ["tenant_id", "monitor_id"],
    "account_policy_changes": ["tenant_id", "account_id", "version"],
    "external_accounts": ["tenant_id", "external_account_id"],
    "payouts": ["tenant_id", "payout_id"],
    "inbound_transfers": ["tenant_id", "inbound_id"],
    "assets": ["tenant_id", "code"],
    "holders": ["tenant_id", "holder_id"],
}


async def _fresh_database(server_dsn: str, name: str) -> str:
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(server_dsn, name)


async def test_migrations_from_empty_give_the_expected_schema(server_dsn: str) -> None:
    dsn = await _fresh_database(server_dsn, "mm_migration_check")
    applied = await migrate(dsn)
    assert applied == [f"{m.version:04d}_{m.name}" for m in available_migrations()]

    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        )
        tables: dict[str, list[str]] = {}
        for row in rows:
            tables.setdefault(row["table_name"], []).append(row["column_name"])
        assert tables == EXPECTED_TABLES

        money = await connection.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name LIKE '%\\_minor'"
        )
        assert money
        assert {r["data_type"] for r in money} == {"bigint"}

        for table, columns in EXPECTED_PRIMARY_KEYS.items():
            key = await connection.fetchval(
                "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index i "
                "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                "WHERE i.indrelid = $1::regclass AND i.indisprimary",
                table,
            )
            assert key == columns, table

        checks = {
            row["conname"]
            for row in await connection.fetch(
                "SELECT conname FROM pg_constraint WHERE contype = 'c'"
            )
        }
        assert {
            "accounts_within_overdraft_policy",
            "accounts_closed_only_when_empty",
            "accounts_limit_needs_limited_mode",
            "transfers_amount_minor_check",
            "transfers_check",
            "accounts_currency_code_shape",
        } <= checks
    finally:
        await connection.close()

    assert await migrate(dsn) == [], "a second run applies nothing"


async def test_concurrent_migrations_apply_each_migration_once(server_dsn: str) -> None:
    dsn = await _fresh_database(server_dsn, "mm_migration_race")
    results = await asyncio.gather(*(migrate(dsn) for _ in range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, len(available_migrations())]
    connection = await asyncpg.connect(dsn)
    try:
        assert await connection.fetchval("SELECT count(*) FROM schema_migrations") == len(
            available_migrations()
        )
    finally:
        await connection.close()
