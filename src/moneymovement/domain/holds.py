"""Holds (two-phase transfers): post (capture), void, and expiry, each exactly once.

A hold is a PENDING transfer whose amount sits in the accounts' pending totals. Ending it
releases that amount (a PENDING_RELEASED entry pair) and, for a capture, posts the
captured part (a POSTED entry pair). Callers lock the transfer row, then its accounts,
inside one transaction, so a hold's state changes at most once.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import MutableMapping
from dataclasses import replace
from datetime import datetime

from moneymovement.domain.accounts import (
    Account,
    require_open_for_credits,
    require_open_for_debits,
)
from moneymovement.domain.balances import EntryKind
from moneymovement.domain.errors import Reason, Rejected, account_not_found
from moneymovement.domain.funds import Part, held_back
from moneymovement.domain.transfers import (
    Entry,
    EventKind,
    Transfer,
    TransferEvent,
    TransferState,
    credit_parts,
    move,
)


def is_expired(hold: Transfer, now: datetime) -> bool:
    """Whether a hold has reached its expiry time (whether or not it was swept yet)."""
    return hold.expires_at is not None and now >= hold.expires_at


def _require_pending(hold: Transfer) -> None:
    if hold.state is not TransferState.PENDING:
        raise Rejected(
            Reason.TRANSFER_NOT_PENDING,
            f"transfer {hold.id} is {hold.state.value}, not PENDING",
            {"transfer_id": hold.id, "state": hold.state.value},
        )


def _accounts_of(accounts: MutableMapping[str, Account], hold: Transfer) -> list[Account]:
    found = []
    for account_id in (hold.debit_account_id, hold.credit_account_id):
        account = accounts.get(account_id)
        if account is None:  # accounts are never deleted; this is a broken ledger
            raise account_not_found(account_id)
        found.append(account)
    return found


def _release(accounts: MutableMapping[str, Account], hold: Transfer) -> list[Entry]:
    return move(
        accounts,
        hold.id,
        hold.debit_account_id,
        hold.credit_account_id,
        hold.amount_minor,
        EntryKind.PENDING_RELEASED,
    )


def _finish(
    hold: Transfer, state: TransferState, posted: int, now: datetime, request_id: str
) -> Transfer:
    kind = EventKind[state.value]
    amount = posted if state is TransferState.POSTED else hold.amount_minor
    return replace(
        hold,
        state=state,
        posted_amount_minor=posted,
        updated_at=now,
        history=(*hold.history, TransferEvent(kind, amount, now, request_id)),
    )


def post_hold(
    accounts: MutableMapping[str, Account],
    hold: Transfer,
    amount_minor: int,
    now: datetime,
    request_id: str,
) -> tuple[Transfer, list[Entry], list[Part]]:
    """Captures `amount_minor` of a hold (0: all of it); the rest is released. Also
    returns the parts of the captured credit that are not available yet (the hold's
    availability counts from the capture).

    Raises:
        Rejected: TRANSFER_NOT_PENDING, HOLD_EXPIRED, POST_EXCEEDS_HOLD, ACCOUNT_FROZEN,
            ACCOUNT_CLOSED, BALANCE_LIMIT_EXCEEDED.
    """
    # An expired hold answers HOLD_EXPIRED whether or not the sweeper released it yet.
    if hold.state is not TransferState.EXPIRED:
        _require_pending(hold)
    if hold.state is TransferState.EXPIRED or is_expired(hold, now):
        raise Rejected(
            Reason.HOLD_EXPIRED,
            f"hold {hold.id} expired at {hold.expires_at}",
            {"transfer_id": hold.id},
        )
    captured = amount_minor or hold.amount_minor
    if captured > hold.amount_minor:
        raise Rejected(
            Reason.POST_EXCEEDS_HOLD,
            f"cannot post {captured}: the hold is for {hold.amount_minor}",
            {"transfer_id": hold.id, "held_minor": str(hold.amount_minor)},
        )
    debit, credit = _accounts_of(accounts, hold)
    if hold.owner_id is None:
        # A payout's hold is captured when the rail has paid: a freeze since then stops
        # new money out, not money that has already left.
        require_open_for_debits(debit)
    require_open_for_credits(credit)
    parts = credit_parts(credit, captured, hold.availability, now)
    # Two steps (release, then post) on an overlay: a refusal of the second must not leave
    # the first applied in the caller's mapping, and only what changed is copied back.
    working: ChainMap[str, Account] = ChainMap({}, accounts)
    entries = _release(working, hold)
    entries += move(
        working,
        hold.id,
        hold.debit_account_id,
        hold.credit_account_id,
        captured,
        EntryKind.POSTED,
        credit_held=held_back(parts),
    )
    accounts.update(working.maps[0])
    return _finish(hold, TransferState.POSTED, captured, now, request_id), entries, parts


def void_hold(
    accounts: MutableMapping[str, Account], hold: Transfer, now: datetime, request_id: str
) -> tuple[Transfer, list[Entry]]:
    """Releases a hold. Frozen accounts do not stop it: it only gives back a reservation.

    A hold past its expiry time that the sweeper has not reached yet ends EXPIRED rather
    than VOIDED: it expired first.

    Raises:
        Rejected: TRANSFER_NOT_PENDING.
    """
    _require_pending(hold)
    _accounts_of(accounts, hold)
    entries = _release(accounts, hold)
    state = TransferState.EXPIRED if is_expired(hold, now) else TransferState.VOIDED
    return _finish(
        hold, state, 0, now, "" if state is TransferState.EXPIRED else request_id
    ), entries


def expire_hold(
    accounts: MutableMapping[str, Account], hold: Transfer, now: datetime
) -> tuple[Transfer, list[Entry]] | None:
    """Releases a hold whose time is up; None when there is nothing to do (already ended,
    or not yet due), so that two sweepers racing each other release it only once."""
    if hold.state is not TransferState.PENDING or not is_expired(hold, now):
        return None
    _accounts_of(accounts, hold)
    entries = _release(accounts, hold)
    return _finish(hold, TransferState.EXPIRED, 0, now, ""), entries
