"""Database rows to domain objects. The only place that knows the column names."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from moneymovement.domain.accounts import Account, AccountState, OverdraftMode
from moneymovement.domain.balances import Balances, Direction, EntryKind, NormalBalance
from moneymovement.domain.events import Event, EventType, RecordedEvent
from moneymovement.domain.transfers import Entry, EventKind, Transfer, TransferEvent, TransferState

Row = Mapping[str, Any]


def balances_from_row(row: Row) -> Balances:
    """The four stored totals of an account or an entry row."""
    return Balances(
        posted_debits_minor=row["posted_debits_minor"],
        posted_credits_minor=row["posted_credits_minor"],
        pending_debits_minor=row["pending_debits_minor"],
        pending_credits_minor=row["pending_credits_minor"],
    )


def account_from_row(row: Row) -> Account:
    """An `accounts` row as an Account."""
    return Account(
        id=row["account_id"],
        external_id=row["external_id"],
        name=row["name"],
        currency_code=row["currency_code"],
        normal_balance=NormalBalance(row["normal_balance"]),
        overdraft_mode=OverdraftMode(row["overdraft_mode"]),
        overdraft_limit_minor=row["overdraft_limit_minor"],
        holder_id=row["holder_id"],
        metadata=row["metadata"],
        state=AccountState(row["state"]),
        version=row["version"],
        balances=balances_from_row(row),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def transfer_from_row(row: Row, reversals: list[dict[str, Any]] | None = None) -> Transfer:
    """A `transfers` row (with its reversals as JSON, in the row or given) as a Transfer
    with its history."""
    state = TransferState(row["state"])
    if reversals is None:
        reversals = row["reversals"]
    history = [
        TransferEvent(EventKind.CREATED, row["amount_minor"], row["created_at"], row["request_id"])
    ]
    if row["finalized_at"] is not None:
        posted = state is TransferState.POSTED
        history.append(
            TransferEvent(
                EventKind[state.value],
                row["posted_amount_minor"] if posted else row["amount_minor"],
                row["finalized_at"],
                row["finalized_request_id"] or "",
            )
        )
    history += [
        TransferEvent(
            EventKind.REVERSED,
            r["amount_minor"],
            datetime.fromisoformat(r["at"]),
            r["request_id"],
            r["id"],
        )
        for r in reversals
    ]
    history.sort(key=lambda event: event.at)
    return Transfer(
        id=row["transfer_id"],
        request_id=row["request_id"],
        debit_account_id=row["debit_account_id"],
        credit_account_id=row["credit_account_id"],
        amount_minor=row["amount_minor"],
        currency_code=row["currency_code"],
        state=state,
        description=row["description"],
        metadata=row["metadata"],
        expires_at=row["expires_at"],
        posted_amount_minor=row["posted_amount_minor"],
        reversed_amount_minor=row["reversed_amount_minor"],
        reversal_of_id=row["reversal_of_id"],
        reversal_ids=tuple(r["id"] for r in reversals),
        batch_id=row["batch_id"],
        trace_id=row["trace_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        history=tuple(history),
    )


def entry_from_row(row: Row) -> Entry:
    """An `entries` row as an Entry."""
    return Entry(
        account_id=row["account_id"],
        transfer_id=row["transfer_id"],
        direction=Direction(row["direction"]),
        kind=EntryKind(row["kind"]),
        amount_minor=row["amount_minor"],
        balances_after=balances_from_row(row),
        account_version=row["account_version"],
        created_at=row["created_at"],
        trace_id=row["trace_id"],
    )


# Domain objects to rows of the tables' own row types, for write_batch (sql/ledger.sql).
# Each tuple is in the table's column order, spelled out once here by name and checked
# against the database by tests/integration/test_migrations.py.
ACCOUNT_COLUMNS = (
    "tenant_id", "account_id", "external_id", "name", "currency_code", "normal_balance",
    "overdraft_mode", "overdraft_limit_minor", "holder_id", "metadata", "state",
    "posted_debits_minor", "posted_credits_minor", "pending_debits_minor",
    "pending_credits_minor", "version", "created_at", "updated_at",
)  # fmt: skip
TRANSFER_COLUMNS = (
    "tenant_id", "transfer_id", "request_id", "batch_index", "batch_id", "debit_account_id",
    "credit_account_id", "currency_code", "amount_minor", "state", "posted_amount_minor",
    "reversed_amount_minor", "reversal_of_id", "description", "metadata", "expires_at",
    "finalized_at", "finalized_request_id", "trace_id", "created_at", "updated_at",
)  # fmt: skip
ENTRY_COLUMNS = (
    "tenant_id", "account_id", "account_version", "transfer_id", "direction", "kind",
    "amount_minor", "posted_debits_minor", "posted_credits_minor", "pending_debits_minor",
    "pending_credits_minor", "created_at",
)  # fmt: skip
OUTCOME_COLUMNS = ("tenant_id", "request_id", "fingerprint", "outcome", "created_at")
EVENT_COLUMNS = (
    "tenant_id", "position", "type", "occurred_at", "request_id", "trace_id", "account_ids",
    "holder_ids", "transfer_ids", "payload",
)  # fmt: skip
_FINAL_EVENTS = (EventKind.POSTED, EventKind.VOIDED, EventKind.EXPIRED)


def _in_order(columns: tuple[str, ...], values: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(values[column] for column in columns)


def account_row(tenant_id: str, account: Account) -> tuple[Any, ...]:
    """An Account as an `accounts` row."""
    b = account.balances
    return _in_order(
        ACCOUNT_COLUMNS,
        {
            "tenant_id": tenant_id,
            "account_id": account.id,
            "external_id": account.external_id,
            "name": account.name,
            "currency_code": account.currency_code,
            "normal_balance": account.normal_balance.value,
            "overdraft_mode": account.overdraft_mode.value,
            "overdraft_limit_minor": account.overdraft_limit_minor,
            "holder_id": account.holder_id,
            "metadata": dict(account.metadata),
            "state": account.state.value,
            "posted_debits_minor": b.posted_debits_minor,
            "posted_credits_minor": b.posted_credits_minor,
            "pending_debits_minor": b.pending_debits_minor,
            "pending_credits_minor": b.pending_credits_minor,
            "version": account.version,
            "created_at": account.created_at,
            "updated_at": account.updated_at,
        },
    )


def transfer_row(tenant_id: str, transfer: Transfer, batch_index: int = 0) -> tuple[Any, ...]:
    """A Transfer as a `transfers` row; its finalisation (capture, void or expiry) is the
    last such step of its history."""
    final = next((e for e in reversed(transfer.history) if e.kind in _FINAL_EVENTS), None)
    return _in_order(
        TRANSFER_COLUMNS,
        {
            "tenant_id": tenant_id,
            "transfer_id": transfer.id,
            "request_id": transfer.request_id,
            "batch_index": batch_index,
            "batch_id": transfer.batch_id,
            "debit_account_id": transfer.debit_account_id,
            "credit_account_id": transfer.credit_account_id,
            "currency_code": transfer.currency_code,
            "amount_minor": transfer.amount_minor,
            "state": transfer.state.value,
            "posted_amount_minor": transfer.posted_amount_minor,
            "reversed_amount_minor": transfer.reversed_amount_minor,
            "reversal_of_id": transfer.reversal_of_id,
            "description": transfer.description,
            "metadata": dict(transfer.metadata),
            "expires_at": transfer.expires_at,
            "finalized_at": None if final is None else final.at,
            "finalized_request_id": (final.request_id or None) if final else None,
            "trace_id": transfer.trace_id,
            "created_at": transfer.created_at,
            "updated_at": transfer.updated_at,
        },
    )


def entry_row(tenant_id: str, entry: Entry) -> tuple[Any, ...]:
    """An Entry as an `entries` row (created_at is stamped by the statement)."""
    b = entry.balances_after
    return _in_order(
        ENTRY_COLUMNS,
        {
            "tenant_id": tenant_id,
            "account_id": entry.account_id,
            "account_version": entry.account_version,
            "transfer_id": entry.transfer_id,
            "direction": entry.direction.value,
            "kind": entry.kind.value,
            "amount_minor": entry.amount_minor,
            "posted_debits_minor": b.posted_debits_minor,
            "posted_credits_minor": b.posted_credits_minor,
            "pending_debits_minor": b.pending_debits_minor,
            "pending_credits_minor": b.pending_credits_minor,
            "created_at": None,
        },
    )


def outcome_row(
    tenant_id: str, request_id: str, fingerprint: bytes, outcome: Any, now: datetime
) -> tuple[Any, ...]:
    """A request's outcome as a `request_outcomes` row."""
    return _in_order(
        OUTCOME_COLUMNS,
        {
            "tenant_id": tenant_id,
            "request_id": request_id,
            "fingerprint": fingerprint,
            "outcome": outcome,
            "created_at": now,
        },
    )


def event_row(tenant_id: str, event: Event) -> tuple[Any, ...]:
    """An Event as an `events` row; its position and time are given by write_batch."""
    return _in_order(
        EVENT_COLUMNS,
        {
            "tenant_id": tenant_id,
            "position": None,
            "type": event.type.value,
            "occurred_at": None,
            "request_id": event.request_id,
            "trace_id": event.trace_id,
            "account_ids": event.account_ids,
            "holder_ids": event.holder_ids,
            "transfer_ids": [t.id for t in event.transfers] or list(event.item_ids),
            "payload": {
                "transfers": [_transfer_document(tenant_id, t) for t in event.transfers],
                "accounts": [
                    _document(ACCOUNT_COLUMNS, account_row(tenant_id, a)) for a in event.accounts
                ],
            },
        },
    )


def event_from_row(row: Row) -> RecordedEvent:
    """An `events` row as a RecordedEvent, its resources as they were then."""
    payload = row["payload"]
    kind = EventType(row["type"])
    return RecordedEvent(
        position=row["position"],
        occurred_at=row["occurred_at"],
        event=Event(
            type=kind,
            request_id=row["request_id"],
            trace_id=row["trace_id"],
            transfers=tuple(
                transfer_from_row(_undocument(d, _TRANSFER_TIMES)) for d in payload["transfers"]
            ),
            accounts=tuple(
                account_from_row(_undocument(d, _ACCOUNT_TIMES)) for d in payload["accounts"]
            ),
            item_ids=tuple(row["transfer_ids"]) if kind is EventType.BATCH_COMMITTED else (),
        ),
    )


# An event's resources are kept as JSON documents of their rows (the table's columns by
# name, times in ISO 8601), not as columns of the tables' row types: a column of a row
# type would forbid most later changes to that table.
_ACCOUNT_TIMES = ("created_at", "updated_at")
_TRANSFER_TIMES = ("expires_at", "finalized_at", "created_at", "updated_at")


def _document(columns: tuple[str, ...], row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        column: value.isoformat() if isinstance(value, datetime) else value
        for column, value in zip(columns, row, strict=True)
        if column != "tenant_id"
    }


def _transfer_document(tenant_id: str, transfer: Transfer) -> dict[str, Any]:
    document = _document(TRANSFER_COLUMNS, transfer_row(tenant_id, transfer))
    document["reversals"] = [
        {"id": e.related_transfer_id, "amount_minor": e.amount_minor, "at": e.at.isoformat(),
         "request_id": e.request_id}
        for e in transfer.history
        if e.kind is EventKind.REVERSED
    ]  # fmt: skip
    return document


def _undocument(document: dict[str, Any], times: tuple[str, ...]) -> dict[str, Any]:
    for column in times:
        value = document.get(column)
        if value is not None:
            document[column] = datetime.fromisoformat(value)
    return document
