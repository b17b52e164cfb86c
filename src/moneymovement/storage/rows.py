"""Database rows to domain objects. The only place that knows the column names."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from moneymovement.domain.accounts import Account, AccountState, OverdraftMode
from moneymovement.domain.balances import Balances, Direction, EntryKind, NormalBalance
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


def transfer_from_row(row: Row) -> Transfer:
    """A `transfers` row (with its reversals as JSON) as a Transfer with its history."""
    state = TransferState(row["state"])
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
