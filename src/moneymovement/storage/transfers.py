"""The `transfers` and `entries` tables, for one tenant."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from moneymovement.domain.balances import Balances
from moneymovement.domain.queries import TransferQuery
from moneymovement.domain.transfers import Entry, Postings, Transfer
from moneymovement.storage.accounts import Cursor
from moneymovement.storage.outcomes import NewOutcome
from moneymovement.storage.queries import query
from moneymovement.storage.rows import entry_from_row, transfer_from_row


class Transfers:
    """Reads and writes transfers and entries of one tenant.

    A use case's postings are staged by `write` and sent by `flush`, in one statement
    together with the request's outcome: one round trip for both, on every mutation.
    The session flushes before it commits, so nothing staged is ever left behind.
    """

    def __init__(self, connection: asyncpg.Connection, tenant_id: str) -> None:
        self._db = connection
        self._tenant = tenant_id
        self._staged: Postings | None = None

    async def write(self, postings: Postings) -> None:
        """Stages everything a use case decided; the last thing a use case does."""
        if self._staged is not None:
            raise RuntimeError("a transaction writes its postings once")
        self._staged = postings

    def discard(self) -> None:
        """Drops staged postings: a refused request writes nothing but its outcome."""
        self._staged = None

    @property
    def staged(self) -> bool:
        """Whether postings wait to be flushed."""
        return self._staged is not None

    async def flush(self, outcomes: Sequence[NewOutcome] = ()) -> None:
        """Writes the staged postings, and `outcomes` with them, in one statement."""
        postings, self._staged = self._staged, None
        if postings is None:
            raise RuntimeError("nothing staged to flush")
        accounts, new = postings.accounts, postings.new_transfers
        changed, entries = postings.changed_transfers, postings.entries
        row = await self._db.fetchrow(
            query("write_postings"),
            self._tenant,
            [a.id for a in accounts],
            *_totals([a.balances for a in accounts]),
            [a.version for a in accounts],
            [t.id for t in new],
            [t.request_id for t in new],
            # Items of a batch share its request id and are told apart by their position.
            [index if t.batch_id else 0 for index, t in enumerate(new)],
            [t.batch_id for t in new],
            [t.debit_account_id for t in new],
            [t.credit_account_id for t in new],
            [t.currency_code for t in new],
            [t.amount_minor for t in new],
            [t.state.value for t in new],
            [t.posted_amount_minor for t in new],
            [t.description for t in new],
            [dict(t.metadata) for t in new],
            [t.expires_at for t in new],
            [t.trace_id for t in new],
            [e.account_id for e in entries],
            [e.account_version for e in entries],
            [e.transfer_id for e in entries],
            [e.direction.value for e in entries],
            [e.kind.value for e in entries],
            [e.amount_minor for e in entries],
            *_totals([e.balances_after for e in entries]),
            [t.id for t in changed],
            [t.state.value for t in changed],
            [t.posted_amount_minor for t in changed],
            [t.reversed_amount_minor for t in changed],
            [t.history[-1].request_id or None for t in changed],
            [t.reversal_of_id for t in new],
            [o.request_id for o in outcomes],
            [o.fingerprint for o in outcomes],
            [o.outcome for o in outcomes],
        )
        assert row is not None
        written = (
            row["accounts_moved"],
            row["transfers_created"],
            row["transfers_changed"],
            row["entries_written"],
            row["outcomes_recorded"],
        )
        # The domain decided on exactly these rows; anything else is a bug, not a retry.
        expected = (len(accounts), len(new), len(changed), len(entries), len(outcomes))
        if written != expected:
            raise RuntimeError(f"write_postings wrote an unexpected number of rows: {dict(row)}")

    async def get(self, transfer_id: str) -> Transfer | None:
        """One transfer with its history."""
        row = await self._db.fetchrow(query("get_transfer"), self._tenant, transfer_id)
        return None if row is None else transfer_from_row(row)

    async def lock(self, transfer_id: str) -> tuple[Transfer | None, datetime | None]:
        """Locks one transfer for a state change; returns it with the transaction time."""
        row = await self._db.fetchrow(query("lock_transfer"), self._tenant, transfer_id)
        if row is None:
            return None, None
        return transfer_from_row(row), row["db_now"]

    async def search(
        self, where: TransferQuery, after: Cursor | None, limit: int
    ) -> list[Transfer]:
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

    async def entries(
        self,
        account_id: str,
        *,
        start: datetime | None,
        end: datetime | None,
        oldest_first: bool,
        after_version: int | None,
        limit: int,
    ) -> list[Entry]:
        """A page of an account's statement, ordered by account version."""
        name = "list_entries_oldest_first" if oldest_first else "list_entries_newest_first"
        rows = await self._db.fetch(
            query(name), self._tenant, account_id, start, end, after_version, limit
        )
        return [entry_from_row(row) for row in rows]


def _totals(balances: list[Balances]) -> list[list[int]]:
    return [
        [b.posted_debits_minor for b in balances],
        [b.posted_credits_minor for b in balances],
        [b.pending_debits_minor for b in balances],
        [b.pending_credits_minor for b in balances],
    ]
