"""Repositories: tenant-scoped reads and writes, one named query per method.

Every method of the tenant-owned tables passes the session's tenant id as `$1`; there is
no query here that can reach another tenant's rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from moneymovement.domain.accounts import Account
from moneymovement.domain.balances import Balances, BalanceSnapshot, NormalBalance
from moneymovement.domain.queries import AccountQuery, TransferQuery
from moneymovement.domain.transfers import Entry, Transfer
from moneymovement.storage.queries import query
from moneymovement.storage.rows import account_from_row, balances_from_row, transfer_from_row

# Timestamps of new rows come from the database (the transaction time); a domain object
# drafted before its insert carries this value until the insert returns the real one.
NOT_WRITTEN = datetime.min.replace(tzinfo=UTC)

# A keyset cursor: the (created_at, id) of the last row of the previous page.
Cursor = tuple[datetime, str]


@dataclass(frozen=True)
class NewTransfer:
    """A transfer row to insert, as decided by the domain."""

    transfer: Transfer
    batch_index: int


class Accounts:
    """The `accounts` table, for one tenant."""

    def __init__(self, connection: asyncpg.Connection, tenant_id: str) -> None:
        self._db = connection
        self._tenant = tenant_id

    async def insert(self, account: Account) -> Account | None:
        """Inserts a new account; None when its external id is taken."""
        row = await self._db.fetchrow(
            query("insert_account"),
            self._tenant,
            account.id,
            account.external_id,
            account.name,
            account.currency_code,
            account.normal_balance.value,
            account.overdraft_mode.value,
            account.overdraft_limit_minor,
            account.holder_id,
            dict(account.metadata),
        )
        return None if row is None else account_from_row(row)

    async def get(self, account_id: str) -> Account | None:
        """One account, unlocked."""
        row = await self._db.fetchrow(query("get_account"), self._tenant, account_id)
        return None if row is None else account_from_row(row)

    async def lock(self, account_ids: Iterable[str]) -> dict[str, Account]:
        """Locks the existing accounts among `account_ids` (in id order) and returns them."""
        rows = await self._db.fetch(query("lock_accounts"), self._tenant, sorted(set(account_ids)))
        return {row["account_id"]: account_from_row(row) for row in rows}

    async def save(self, account: Account) -> Account:
        """Stores name, metadata, policy, state and version (not balances)."""
        row = await self._db.fetchrow(
            query("update_account"),
            self._tenant,
            account.id,
            account.name,
            dict(account.metadata),
            account.overdraft_mode.value,
            account.overdraft_limit_minor,
            account.state.value,
            account.version,
        )
        assert row is not None, "save() follows lock() in the same transaction"
        return account_from_row(row)

    async def list(self, where: AccountQuery, after: Cursor | None, limit: int) -> list[Account]:
        """A page of accounts, newest first."""
        rows = await self._db.fetch(
            query("list_accounts"),
            self._tenant,
            where.currency_code,
            where.state,
            where.holder_id,
            where.external_id,
            dict(where.metadata or {}),
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [account_from_row(row) for row in rows]

    async def balances(self, account_ids: Sequence[str]) -> dict[str, BalanceSnapshot]:
        """Current balances of the existing accounts among `account_ids`, in one snapshot."""
        rows = await self._db.fetch(query("get_balances"), self._tenant, list(set(account_ids)))
        return {row["account_id"]: _snapshot(row) for row in rows}


def _snapshot(row: Any) -> BalanceSnapshot:
    return BalanceSnapshot(
        account_id=row["account_id"],
        currency_code=row["currency_code"],
        normal_balance=NormalBalance(row["normal_balance"]),
        balances=balances_from_row(row),
        version=row["version"],
        as_of=row["as_of"],
    )


class Transfers:
    """The `transfers` and `entries` tables, for one tenant."""

    def __init__(self, connection: asyncpg.Connection, tenant_id: str) -> None:
        self._db = connection
        self._tenant = tenant_id

    async def write(
        self,
        accounts: Sequence[Account],
        transfers: Sequence[NewTransfer],
        entries: Sequence[Entry],
    ) -> datetime:
        """Writes new transfers, their entries and the accounts' new totals in one statement.

        Returns the transaction time, which is every new row's created_at.
        """
        b = [a.balances for a in accounts]
        t = [n.transfer for n in transfers]
        e = [x.balances_after for x in entries]
        row = await self._db.fetchrow(
            query("write_postings"),
            self._tenant,
            [a.id for a in accounts],
            *_totals(b),
            [a.version for a in accounts],
            [x.id for x in t],
            [x.request_id for x in t],
            [n.batch_index for n in transfers],
            [x.batch_id for x in t],
            [x.debit_account_id for x in t],
            [x.credit_account_id for x in t],
            [x.currency_code for x in t],
            [x.amount_minor for x in t],
            [x.state.value for x in t],
            [x.posted_amount_minor for x in t],
            [x.description for x in t],
            [dict(x.metadata) for x in t],
            [x.expires_at for x in t],
            [x.trace_id for x in t],
            [x.account_id for x in entries],
            [x.account_version for x in entries],
            [x.transfer_id for x in entries],
            [x.direction.value for x in entries],
            [x.kind.value for x in entries],
            [x.amount_minor for x in entries],
            *_totals(e),
        )
        assert row is not None
        # The domain decided on exactly these rows; anything else is a bug, not a retry.
        if (row["accounts_moved"], row["transfers_created"], row["entries_written"]) != (
            len(accounts),
            len(transfers),
            len(entries),
        ):
            raise RuntimeError(f"write_postings wrote an unexpected number of rows: {dict(row)}")
        written_at: datetime = row["written_at"]
        return written_at

    async def get(self, transfer_id: str) -> Transfer | None:
        """One transfer with its reversal ids."""
        row = await self._db.fetchrow(query("get_transfer"), self._tenant, transfer_id)
        return None if row is None else transfer_from_row(row)

    async def list(self, where: TransferQuery, after: Cursor | None, limit: int) -> list[Transfer]:
        """A page of transfers, newest first."""
        rows = await self._db.fetch(
            query("list_transfers"),
            self._tenant,
            where.account_id,
            where.state,
            where.start_time,
            where.end_time,
            dict(where.metadata or {}),
            where.batch_id,
            where.trace_id,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [transfer_from_row(row) for row in rows]


def _totals(balances: Sequence[Balances]) -> list[list[int]]:
    return [
        [b.posted_debits_minor for b in balances],
        [b.posted_credits_minor for b in balances],
        [b.pending_debits_minor for b in balances],
        [b.pending_credits_minor for b in balances],
    ]


@dataclass(frozen=True)
class StoredOutcome:
    """What a request id was first used for and what came of it."""

    fingerprint: bytes
    outcome: dict[str, Any]


class RequestOutcomes:
    """The `request_outcomes` table, for one tenant."""

    def __init__(self, connection: asyncpg.Connection, tenant_id: str) -> None:
        self._db = connection
        self._tenant = tenant_id

    async def find(self, request_id: str) -> StoredOutcome | None:
        """The recorded outcome of a request id, if any."""
        row = await self._db.fetchrow(query("find_outcome"), self._tenant, request_id)
        return None if row is None else StoredOutcome(bytes(row["fingerprint"]), row["outcome"])

    async def save(self, request_id: str, fingerprint: bytes, outcome: dict[str, Any]) -> None:
        """Records an outcome; a concurrent duplicate makes this raise a unique violation."""
        await self._db.execute(
            query("save_outcome"), self._tenant, request_id, fingerprint, outcome
        )


class Tenants:
    """The `tenants` and `api_tokens` tables (not tenant-scoped: this is the directory)."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._db = connection

    async def create(self, tenant_id: str, name: str) -> str:
        """Creates a tenant, or returns the id of the existing one with that name."""
        created = await self._db.fetchval(query("insert_tenant"), tenant_id, name)
        if created is not None:
            return str(created)
        return str(await self._db.fetchval(query("find_tenant_by_name"), name))

    async def find_by_name(self, name: str) -> str | None:
        """The id of the tenant with this name."""
        found = await self._db.fetchval(query("find_tenant_by_name"), name)
        return None if found is None else str(found)

    async def list(self) -> list[dict[str, Any]]:
        """All tenants with their number of active tokens."""
        return [dict(row) for row in await self._db.fetch(query("list_tenants"))]

    async def add_token(self, token_id: str, tenant_id: str, token: str) -> None:
        """Stores a token's digest, never the token."""
        await self._db.execute(query("insert_token"), token_id, tenant_id, token_digest(token))

    async def tenant_of_token(self, token: str) -> str | None:
        """The tenant a live token belongs to."""
        found = await self._db.fetchval(query("find_tenant_by_token"), token_digest(token))
        return None if found is None else str(found)


def token_digest(token: str) -> bytes:
    """SHA-256 of a token. Tokens are 256-bit random, so a plain hash suffices (no salt
    or stretching is needed against guessing), and lookup by digest compares no secret."""
    return hashlib.sha256(token.encode("utf-8")).digest()
