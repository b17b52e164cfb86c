"""Reversals: posted money moved back by a new transfer linked to the original."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, replace

from moneymovement.domain.accounts import Account
from moneymovement.domain.errors import Reason, Rejected
from moneymovement.domain.funds import (
    DebitUsage,
    Ending,
    ScheduledFunds,
    latest_first,
    take,
    taken_back,
)
from moneymovement.domain.transfers import (
    Entry,
    EventKind,
    NewTransfer,
    Transfer,
    TransferEvent,
    TransferSpec,
    TransferState,
    open_transfer,
)


@dataclass(frozen=True)
class ReversalRequest:
    """ReverseTransfer's command (amount 0: all that is not reversed yet)."""

    transfer_id: str
    amount_minor: int = 0
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


def reversal_amount(original: Transfer, request: ReversalRequest) -> int:
    """What `request` reverses of `original`: its amount, or (0) all that is left.

    Raises:
        Rejected: TRANSFER_NOT_POSTED, REVERSAL_EXCEEDS_ORIGINAL,
            RESERVE_TRANSFER_NOT_REVERSIBLE (a transfer the negative-balance reserve
            made: the account's debt is counted from them, domain/reserve.py).
    """
    if original.reserve_movement is not None:
        raise Rejected(
            Reason.RESERVE_TRANSFER_NOT_REVERSIBLE,
            f"transfer {original.id} is a negative-balance reserve "
            f"{original.reserve_movement.value.lower()}",
            {"transfer_id": original.id, "reserve_movement": original.reserve_movement.value},
        )
    if original.state is not TransferState.POSTED:
        raise Rejected(
            Reason.TRANSFER_NOT_POSTED,
            f"transfer {original.id} is {original.state.value}, not POSTED",
            {"transfer_id": original.id, "state": original.state.value},
        )
    remaining = original.posted_amount_minor - original.reversed_amount_minor
    amount = request.amount_minor or remaining
    if amount == 0 or amount > remaining:
        raise Rejected(
            Reason.REVERSAL_EXCEEDS_ORIGINAL,
            f"only {remaining} of transfer {original.id} can still be reversed",
            {"transfer_id": original.id, "remaining_minor": str(remaining)},
        )
    return amount


def reverse(
    accounts: MutableMapping[str, Account],
    original: Transfer,
    request: ReversalRequest,
    new: NewTransfer,
    unreleased: list[ScheduledFunds],
    usage: DebitUsage,
) -> tuple[Transfer, Transfer, list[Entry], list[Ending]]:
    """Moves posted money back from the credit account to the debit account.

    Returns the reversal, the original with its reversed total raised, the entries, and
    the parts of the original's credit the reversal took back. Those come first: of the
    amount, as much as is still unreleased of the original's own parts (`unreleased`)
    is taken from them, the one that would have become available last first, and only
    the rest from the available balance. So reversing a credit nobody could spend yet
    never needs, or touches, the account's available money.
    The reversal is a transfer like any other: frozen or closed accounts refuse it, and
    the overdraft policy, minimum reserve and debit limits of the account paying it back
    apply to the part it takes from the available balance.

    Raises:
        Rejected: TRANSFER_NOT_POSTED, REVERSAL_EXCEEDS_ORIGINAL, and those of a transfer.
    """
    amount = reversal_amount(original, request)
    spec = TransferSpec(
        debit_account_id=original.credit_account_id,
        credit_account_id=original.debit_account_id,
        amount_minor=amount,
        currency_code=original.currency_code,
        description=request.description,
        metadata=request.metadata,
    )
    endings = take(latest_first(unreleased), amount)
    reversal, entries, _ = open_transfer(
        accounts, spec, replace(new, reversal_of_id=original.id), usage,
        debit_held=taken_back(endings),
    )  # fmt: skip
    event = TransferEvent(EventKind.REVERSED, amount, new.now, new.request_id, reversal.id)
    updated = replace(
        original,
        reversed_amount_minor=original.reversed_amount_minor + amount,
        reversal_ids=(*original.reversal_ids, reversal.id),
        updated_at=new.now,
        history=(*original.history, event),
    )
    return reversal, updated, entries, endings
