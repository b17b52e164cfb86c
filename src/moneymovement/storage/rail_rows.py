"""External accounts, payouts and inbound transfers as rows of their tables (migration
0008) and as JSON documents (in events' payloads and recorded outcomes): one form of
each, by column name. Each dataclass field is the column of the same name, but `id`,
which is the table's own id column, and the enums, which are their values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from moneymovement.domain.payouts import (
    ExternalAccount,
    ExternalAccountState,
    InboundState,
    InboundTransfer,
    Payout,
    PayoutMethod,
    PayoutState,
)

T = TypeVar("T", ExternalAccount, Payout, InboundTransfer)

EXTERNAL_ACCOUNT_COLUMNS = (
    "tenant_id", "external_account_id", "rail", "currency_code", "routing_reference", "last4",
    "fingerprint", "holder_name", "metadata", "state", "request_id", "created_at", "updated_at",
)  # fmt: skip
PAYOUT_COLUMNS = (
    "tenant_id", "payout_id", "request_id", "account_id", "external_account_id",
    "settlement_account_id", "rail", "amount_minor", "currency_code", "method", "description",
    "metadata", "state", "hold_transfer_id", "fee_minor", "fee_account_id", "fee_transfer_id",
    "return_transfer_id", "failure_reason", "return_reason", "submit_after", "trace_id",
    "created_at", "updated_at", "processing_at", "settled_at", "returned_at",
)  # fmt: skip
INBOUND_COLUMNS = (
    "tenant_id", "inbound_id", "request_id", "rail", "rail_reference", "account_id",
    "settlement_account_id", "amount_minor", "currency_code", "description", "state",
    "transfer_id", "return_transfer_id", "return_reason", "trace_id", "created_at",
    "updated_at", "returned_at",
)  # fmt: skip

# Per type: its table's columns, its id column, the column that is a method's field name
# when it differs, and how its enum columns are read back.
_SHAPES: dict[type[Any], tuple[tuple[str, ...], str, dict[str, type[Enum]]]] = {
    ExternalAccount: (EXTERNAL_ACCOUNT_COLUMNS, "external_account_id",
                      {"state": ExternalAccountState}),
    Payout: (PAYOUT_COLUMNS, "payout_id", {"state": PayoutState, "method": PayoutMethod}),
    InboundTransfer: (INBOUND_COLUMNS, "inbound_id", {"state": InboundState}),
}  # fmt: skip
_TIMES = frozenset(
    {"created_at", "updated_at", "submit_after", "processing_at", "settled_at", "returned_at"}
)


def record_row(
    tenant_id: str, record: ExternalAccount | Payout | InboundTransfer
) -> tuple[Any, ...]:
    """The record as a row of its table, in the table's column order."""
    columns, id_column, _ = _SHAPES[type(record)]
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    values[id_column] = values.pop("id")
    values["tenant_id"] = tenant_id
    values["metadata"] = dict(values.get("metadata") or {}) if "metadata" in columns else None
    return tuple(_plain(values[c]) for c in columns)


def record_from_row(kind: type[T], row: Mapping[str, Any]) -> T:
    """A row of `kind`'s table (or its document) as the record."""
    columns, id_column, enums = _SHAPES[kind]
    values: dict[str, Any] = {}
    for column in columns:
        if column == "tenant_id":
            continue
        value = row.get(column)
        if column in enums and value is not None:
            value = enums[column](value)
        elif column in _TIMES and isinstance(value, str):
            value = datetime.fromisoformat(value)
        values["id" if column == id_column else column] = value
    if "metadata" in values:
        values["metadata"] = dict(values["metadata"] or {})
    return kind(**values)


def record_document(record: ExternalAccount | Payout | InboundTransfer) -> dict[str, Any]:
    """The record as JSON: its row by column name, times in ISO 8601."""
    columns = _SHAPES[type(record)][0]
    return {
        column: value.isoformat() if isinstance(value, datetime) else value
        for column, value in zip(columns, record_row("", record), strict=True)
        if column != "tenant_id"
    }


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value
