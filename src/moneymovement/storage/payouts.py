"""Reads of external accounts, payouts and inbound transfers, for one tenant (writes:
storage/ledger.py)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from moneymovement.domain.payouts import ExternalAccount, InboundTransfer, Payout, PayoutState
from moneymovement.storage.queries import query
from moneymovement.storage.rail_rows import record_from_row

Keyset = tuple[datetime, str] | None


class PayoutReads:
    """Rail reads inside one tenant's read transaction."""

    def __init__(self, connection: asyncpg.Connection, tenant_id: str) -> None:
        self._db = connection
        self._tenant = tenant_id

    async def external_account(self, external_account_id: str) -> ExternalAccount | None:
        row = await self._db.fetchrow(
            query("get_external_account"), self._tenant, external_account_id
        )
        return None if row is None else record_from_row(ExternalAccount, row)

    async def external_accounts(
        self, before: Keyset, fingerprint: str | None, limit: int
    ) -> list[ExternalAccount]:
        rows = await self._db.fetch(
            query("list_external_accounts"), self._tenant, *_keyset(before), fingerprint, limit
        )
        return [record_from_row(ExternalAccount, row) for row in rows]

    async def payout(self, payout_id: str) -> Payout | None:
        row = await self._db.fetchrow(query("get_payout"), self._tenant, payout_id)
        return None if row is None else record_from_row(Payout, row)

    async def payouts(
        self,
        before: Keyset,
        account_id: str | None,
        state: PayoutState | None,
        external_account_id: str | None,
        limit: int,
        holder_id: str | None = None,
    ) -> list[Payout]:
        """A page of payouts; of `holder_id`'s accounts only when given."""
        rows = await self._db.fetch(
            query("list_payouts"),
            self._tenant,
            *_keyset(before),
            account_id,
            None if state is None else state.value,
            external_account_id,
            limit,
            holder_id,
        )
        return [record_from_row(Payout, row) for row in rows]

    async def inbound(self, inbound_id: str) -> InboundTransfer | None:
        row = await self._db.fetchrow(query("get_inbound_transfer"), self._tenant, inbound_id)
        return None if row is None else record_from_row(InboundTransfer, row)

    async def inbound_by_reference(self, rail: str, reference: str) -> InboundTransfer | None:
        row = await self._db.fetchrow(query("find_inbound_transfer"), self._tenant, rail, reference)
        return None if row is None else record_from_row(InboundTransfer, row)

    async def inbound_transfers(
        self, before: Keyset, account_id: str | None, limit: int, holder_id: str | None = None
    ) -> list[InboundTransfer]:
        """A page of inbound transfers; to `holder_id`'s accounts only when given."""
        rows = await self._db.fetch(
            query("list_inbound_transfers"),
            self._tenant, *_keyset(before), account_id, limit, holder_id,
        )  # fmt: skip
        return [record_from_row(InboundTransfer, row) for row in rows]

    async def account_id_by_external_id(self, external_id: str) -> str | None:
        value = await self._db.fetchval(
            query("find_account_id_by_external_id"), self._tenant, external_id
        )
        return None if value is None else str(value)

    async def ledger_items(self, rail: str) -> list[tuple[str, str, int, str, str]]:
        """(kind, reference, amount, currency, state) of what reconciliation compares."""
        rows = await self._db.fetch(query("rail_ledger_items"), self._tenant, rail)
        return [
            (r["kind"], r["reference"], r["amount_minor"], r["currency_code"], r["state"])
            for r in rows
        ]


def _keyset(before: Keyset) -> tuple[datetime | None, str | None]:
    return (None, None) if before is None else before
