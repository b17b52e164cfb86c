"""Tenant assets as rows of their table (migration 0011) and as JSON documents (in
recorded outcomes): one form of each, by column name."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from moneymovement.domain.assets import Asset

ASSET_COLUMNS = (
    "tenant_id", "code", "exponent", "name", "description", "request_id", "created_at",
)  # fmt: skip


def asset_row(tenant_id: str, asset: Asset) -> tuple[Any, ...]:
    """The asset as a row of `assets`, in the table's column order."""
    return (
        tenant_id, asset.code, asset.exponent, asset.name, asset.description,
        asset.request_id, asset.created_at,
    )  # fmt: skip


def asset_from_row(row: Mapping[str, Any]) -> Asset:
    """A row of `assets` (or its document) as the asset."""
    created_at = row["created_at"]
    return Asset(
        code=row["code"],
        exponent=int(row["exponent"]),
        name=row["name"],
        description=row["description"],
        request_id=row["request_id"],
        created_at=datetime.fromisoformat(created_at)
        if isinstance(created_at, str)
        else created_at,
    )


def asset_document(asset: Asset) -> dict[str, Any]:
    """The asset as JSON: its row by column name, the time in ISO 8601."""
    return {
        column: value.isoformat() if isinstance(value, datetime) else value
        for column, value in zip(ASSET_COLUMNS, asset_row("", asset), strict=True)
        if column != "tenant_id"
    }
