"""The write pipeline's storage: lock what a batch touches, then write what it decided.

Two statements per transaction whatever the batch's size (sql/ledger.sql): `lock` reads
and locks everything the commands need in one round trip, `write` sends every row they
produced in another.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from moneymovement.domain.accounts import Account
from moneymovement.domain.assets import Asset
from moneymovement.domain.funds import DebitUsage, LimitWindow, ScheduledFunds
from moneymovement.domain.holders import HolderReads
from moneymovement.domain.ledger import Writes
from moneymovement.domain.monitors import BalanceMonitor
from moneymovement.domain.payouts import ExternalAccount, InboundTransfer, Payout
from moneymovement.domain.transfers import Transfer
from moneymovement.storage.asset_rows import asset_from_row, asset_row
from moneymovement.storage.holder_rows import holder_from_row, holder_row
from moneymovement.storage.queries import query
from moneymovement.storage.rail_rows import record_from_row, record_row
from moneymovement.storage.rows import (
    account_from_row,
    account_row,
    entry_row,
    event_row,
    funds_from_row,
    funds_row,
    monitor_from_row,
    monitor_row,
    outcome_row,
    policy_change_row,
    transfer_from_row,
    transfer_row,
)


@dataclass(frozen=True)
class StoredOutcome:
    """What a request id was first used for and what came of it."""

    fingerprint: bytes
    outcome: dict[str, Any]


@dataclass(frozen=True)
class NewOutcome:
    """An outcome to record: the request id, what it asked for and what came of it."""

    request_id: str
    fingerprint: bytes
    outcome: dict[str, Any]


@dataclass(frozen=True)
class Snapshot:
    """What a batch's transaction locked and read, at the transaction's time `now`."""

    now: datetime
    accounts: dict[str, Account]
    transfers: dict[str, Transfer]
    taken_external_ids: dict[str, str]  # external id -> the account that has it
    funds: list[ScheduledFunds]
    monitors: list[BalanceMonitor]
    debit_usage: dict[str, DebitUsage]
    records: list[ExternalAccount | Payout | InboundTransfer]
    assets: list[Asset]
    asset_count: int  # how many assets the tenant has (0 unless asked)
    holders: HolderReads
    # Reserve account -> what accounts owe it (only for accounts a command closes).
    reserve_debts_owed: dict[str, int] = field(default_factory=dict)


class LedgerStore:
    """Locks and writes for the write pipeline, in one tenant's transaction."""

    def __init__(self, connection: asyncpg.Connection, tenant_id: str) -> None:
        self._db = connection
        self._tenant = tenant_id

    async def outcomes(self, request_ids: Collection[str]) -> dict[str, StoredOutcome]:
        """The recorded outcomes of `request_ids`, read before the transaction begins
        (sql/ledger.sql, find_outcomes, says why)."""
        if not request_ids:
            return {}
        rows = await self._db.fetch(query("find_outcomes"), self._tenant, list(request_ids))
        return {r["request_id"]: StoredOutcome(bytes(r["fingerprint"]), r["outcome"]) for r in rows}

    async def lock(
        self,
        account_ids: Collection[str],
        transfer_ids: Collection[str],
        external_ids: Collection[str],
        funds_account_ids: Collection[str] = (),
        funds_ids: Collection[str] = (),
        monitor_ids: Collection[str] = (),
        record_ids: Collection[str] = (),
        asset_codes: Collection[str] = (),
        count_assets: bool = False,
        holder_ids: Collection[str] = (),
        holder_external_ids: Collection[str] = (),
        counted_holder_ids: Collection[str] = (),
        closed_account_ids: Collection[str] = (),
    ) -> Snapshot:
        """Locks the transfers, then the accounts (those named and those of the
        transfers), and reads which of `external_ids` are taken, the scheduled funds and
        monitors the commands need, the locked accounts' debit usage, the tenant's
        assets of `asset_codes` and, with `count_assets`, how many assets it has, the
        holders named (locked) and those of the locked accounts, which holder external
        ids are taken, the open accounts of `counted_holder_ids`, and what accounts owe
        each of `closed_account_ids` as their reserve (sql/ledger.sql, lock_batch). Ids
        that do not exist are simply absent."""
        row = await self._db.fetchrow(
            query("lock_batch"),
            self._tenant,
            sorted(account_ids),
            sorted(transfer_ids),
            list(external_ids),
            list(funds_account_ids),
            list(funds_ids),
            list(monitor_ids),
            list(record_ids),
            sorted(asset_codes),
            count_assets,
            sorted(holder_ids),
            list(holder_external_ids),
            list(counted_holder_ids),
            list(closed_account_ids),
        )
        assert row is not None
        transfers = [
            transfer_from_row(t, reversals)
            for t, reversals in zip(row["transfers"], row["reversals"], strict=True)
        ]
        return Snapshot(
            now=row["db_now"],
            accounts={a["account_id"]: account_from_row(a) for a in row["accounts"]},
            transfers={t.id: t for t in transfers},
            taken_external_ids={ext: account for ext, account in row["taken_external_ids"]},
            funds=[funds_from_row(f) for f in row["funds"]],
            monitors=[monitor_from_row(m) for m in row["monitors"]],
            debit_usage={
                u["account_id"]: DebitUsage({w: tuple(u[w.value]) for w in LimitWindow})
                for u in row["debit_usage"]
            },
            records=[
                *(record_from_row(ExternalAccount, x) for x in row["external_accounts"]),
                *(record_from_row(Payout, p) for p in row["payouts"]),
                *(record_from_row(InboundTransfer, i) for i in row["inbound"]),
            ],
            assets=[asset_from_row(a) for a in row["assets"]],
            asset_count=row["asset_count"],
            holders=HolderReads(
                holders=[holder_from_row(h) for h in row["holders"]],
                taken_external_ids={e: h for e, h in row["taken_holder_external_ids"]},
                open_accounts={h: int(n) for h, n in row["holder_open_accounts"]},
            ),
            reserve_debts_owed={r: int(n) for r, n in row["reserve_debts_owed"]},
        )

    async def write(self, writes: Writes, outcomes: Sequence[NewOutcome], now: datetime) -> None:
        """Writes everything decided, and the outcomes, in one statement.

        Raises:
            RuntimeError: the statement wrote other rows than the domain decided on (a
                bug, never a reason to retry).
        """
        tenant = self._tenant
        row = await self._db.fetchrow(
            query("write_batch"),
            tenant,
            [account_row(tenant, a) for a in writes.new_accounts],
            [account_row(tenant, a) for a in writes.changed_accounts],
            [transfer_row(tenant, t, index) for t, index in _batch_indexes(writes.new_transfers)],
            [transfer_row(tenant, t) for t in writes.changed_transfers],
            [entry_row(tenant, e) for e in writes.entries],
            [outcome_row(tenant, o.request_id, o.fingerprint, o.outcome, now) for o in outcomes],
            [event_row(tenant, e) for e in writes.events],
            [funds_row(tenant, f) for f in writes.new_funds],
            [funds_row(tenant, f) for f in writes.ended_funds],
            [monitor_row(tenant, m) for m in writes.monitors],
            [policy_change_row(tenant, c) for c in writes.policy_changes],
            [record_row(tenant, x) for x in writes.external_accounts],
            [record_row(tenant, p) for p in writes.payouts],
            [record_row(tenant, i) for i in writes.inbound],
            [asset_row(tenant, a) for a in writes.assets],
            [holder_row(tenant, h) for h in writes.holders],
        )
        assert row is not None
        written = tuple(row.values())
        expected = (
            len(writes.new_accounts),
            len(writes.changed_accounts),
            len(writes.new_transfers),
            len(writes.changed_transfers),
            len(writes.entries),
            len(outcomes),
            len(writes.events),
            1 if writes.events else 0,
            len(writes.new_funds),
            len(writes.ended_funds),
            len(writes.monitors),
            len(writes.policy_changes),
            len(writes.external_accounts),
            len(writes.payouts),
            len(writes.inbound),
            len(writes.assets),
            len(writes.holders),
        )
        if written != expected:
            raise RuntimeError(f"write_batch wrote {dict(row)}; the domain decided {expected}")


def _batch_indexes(transfers: Sequence[Transfer]) -> list[tuple[Transfer, int]]:
    """Each new transfer with its position among the new transfers of its request (0
    alone): the items of a CreateTransfers batch, or a payout's amount and fee holds,
    share their request id and are told apart by it."""
    seen: dict[str, int] = {}
    indexed = []
    for transfer in transfers:
        index = seen.get(transfer.request_id, 0)
        seen[transfer.request_id] = index + 1
        indexed.append((transfer, index))
    return indexed
