"""The `accounts` table, for one tenant: every query passes the tenant id as `$1`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from moneymovement.domain.accounts import Account
from moneymovement.domain.balances import BalanceSnapshot, NormalBalance
from moneymovement.domain.funds import FundsKind, Part
from moneymovement.domain.queries import AccountQuery
from moneymovement.storage.queries import query
from moneymovement.storage.rows import account_from_row, balances_from_row

# A keyset cursor: the (created_at, id) of the last row of the previous page.
Cursor = tuple[datetime, str]


class Accounts:
    """Reads accounts of one tenant (writes: storage/ledger.py)."""

    def __init__(self, connection: asyncpg.Connection, tenant_id: str) -> None:
        self._db = connection
        self._tenant = tenant_id

    async def get(self, account_id: str) -> Account | None:
        """One account, unlocked."""
        row = await self._db.fetchrow(query("get_account"), self._tenant, account_id)
        return None if row is None else account_from_row(row)

    async def holders(self, account_ids: Sequence[str]) -> dict[str, str]:
        """The holder_id of each existing account among `account_ids`."""
        rows = await self._db.fetch(query("account_holders"), self._tenant, list(set(account_ids)))
        return {row["account_id"]: row["holder_id"] for row in rows}

    async def search(self, where: AccountQuery, after: Cursor | None, limit: int) -> list[Account]:
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
            list(where.metadata_keys),
        )
        return [account_from_row(row) for row in rows]

    async def balances(self, account_ids: Sequence[str]) -> dict[str, BalanceSnapshot]:
        """Current balances of the existing accounts among `account_ids`, in one snapshot."""
        rows = await self._db.fetch(query("get_balances"), self._tenant, list(set(account_ids)))
        return {row["account_id"]: _snapshot(row) for row in rows}

    async def balances_as_of(
        self, account_ids: Sequence[str], as_of: datetime
    ) -> dict[str, BalanceSnapshot]:
        """The balances of the existing accounts among `account_ids` after each one's
        newest entry written at or before `as_of`, in one snapshot."""
        rows = await self._db.fetch(
            query("get_balances_as_of"), self._tenant, list(set(account_ids)), as_of
        )
        return {row["account_id"]: _snapshot(row) for row in rows}


def _snapshot(row: Any) -> BalanceSnapshot:
    return BalanceSnapshot(
        account_id=row["account_id"],
        currency_code=row["currency_code"],
        normal_balance=NormalBalance(row["normal_balance"]),
        balances=balances_from_row(row),
        version=row["version"],
        as_of=row["as_of"],
        minimum_reserve_minor=row["minimum_reserve_minor"],
        schedule=_schedule(row["schedule"]),
        reserve_debt_minor=row["reserve_debt_minor"],
    )


def _schedule(rows: list[Any]) -> tuple[Part, ...]:
    """The availability schedule read as [time, kind, amount] rows, already summed by
    time and kind and in order (sql/balances.sql)."""
    return tuple(
        Part(FundsKind(kind), int(amount), datetime.fromisoformat(at)) for at, kind, amount in rows
    )
