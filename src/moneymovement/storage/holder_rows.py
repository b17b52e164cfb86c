"""Holders as rows of their table (migration 0013) and as JSON documents (in recorded
outcomes and events): one form of each, by column name."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from moneymovement.domain.holders import Holder, HolderBalance, HolderState

HOLDER_COLUMNS = (
    "tenant_id", "holder_id", "external_id", "name", "metadata", "state", "version",
    "created_at", "updated_at",
)  # fmt: skip
_TIMES = ("created_at", "updated_at")


def holder_row(tenant_id: str, holder: Holder) -> tuple[Any, ...]:
    """The holder as a row of `holders`, in the table's column order."""
    return (
        tenant_id, holder.id, holder.external_id, holder.name, dict(holder.metadata),
        holder.state.value, holder.version, holder.created_at, holder.updated_at,
    )  # fmt: skip


def holder_from_row(row: Mapping[str, Any]) -> Holder:
    """A row of `holders` (or its document) as the holder."""
    times = {
        t: datetime.fromisoformat(row[t]) if isinstance(row[t], str) else row[t] for t in _TIMES
    }
    return Holder(
        id=row["holder_id"],
        external_id=row["external_id"],
        name=row["name"],
        metadata=dict(row["metadata"]),
        state=HolderState(row["state"]),
        version=int(row["version"]),
        created_at=times["created_at"],
        updated_at=times["updated_at"],
    )


def holder_document(holder: Holder) -> dict[str, Any]:
    """The holder as JSON: its row by column name, the times in ISO 8601."""
    return {
        column: value.isoformat() if isinstance(value, datetime) else value
        for column, value in zip(HOLDER_COLUMNS, holder_row("", holder), strict=True)
        if column != "tenant_id"
    }


def holder_balance_from_row(row: Mapping[str, Any]) -> HolderBalance:
    """A row of holder_balances (sql/holders.sql) as one currency's sums."""
    return HolderBalance(
        currency_code=row["currency_code"],
        account_count=int(row["account_count"]),
        posted_minor=int(row["posted_minor"]),
        pending_inbound_minor=int(row["pending_inbound_minor"]),
        pending_outbound_minor=int(row["pending_outbound_minor"]),
        available_minor=int(row["available_minor"]),
        pending_availability_minor=int(row["pending_availability_minor"]),
        reserved_minor=int(row["reserved_minor"]),
    )
