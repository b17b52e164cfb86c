"""Database rows to domain objects. The only place that knows the column names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moneymovement.domain.accounts import Account, AccountState, OverdraftMode
from moneymovement.domain.balances import Balances, NormalBalance
from moneymovement.domain.transfers import EventKind, Transfer, TransferEvent, TransferState

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
    """A `transfers` row (with its reversal ids) as a Transfer with its history."""
    state = TransferState(row["state"])
    history = [
        TransferEvent(EventKind.CREATED, row["amount_minor"], row["created_at"], row["request_id"])
    ]
    if row["finalized_at"] is not None:
        kind = EventKind[state.value]
        amount = (
            row["posted_amount_minor"] if state is TransferState.POSTED else row["amount_minor"]
        )
        history.append(
            TransferEvent(kind, amount, row["finalized_at"], row["finalized_request_id"] or "")
        )
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
        reversal_ids=tuple(row["reversal_ids"]),
        batch_id=row["batch_id"],
        trace_id=row["trace_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        history=tuple(history),
    )
