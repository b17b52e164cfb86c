"""Holds (two-phase transfers): captures, increments, extensions, void and expiry.

A hold is a PENDING transfer whose still-held amount (`Transfer.held_minor`: its amount
less what was captured of it) sits in the accounts' pending totals. It can be:
- captured, in one or several captures: each moves its amount from pending to posted in
  one CAPTURED entry pair. A capture that is not final leaves the rest held; the final one
  (or one that takes all that is still held) ends the hold, releasing what is left in a
  PENDING_RELEASED pair. The final capture may go past the amount held, up to the hold's
  over-capture tolerance: the excess is first held (a PENDING pair, checked as a new hold
  would be), then captured with the rest, so no entry ever shows more available than
  there was;
- increased (incremental authorisation): a PENDING pair, checked as a new hold would be;
- extended: a later expiry, within MAX_HOLD of its creation; no money moves;
- voided or expired: what is still held is released. A hold with captures ends POSTED
  (money moved); one without ends VOIDED or EXPIRED.
Callers lock the transfer row, then its accounts, inside one transaction, so each step
happens once, on the state the step before left.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import MutableMapping
from dataclasses import replace
from datetime import UTC, datetime

from moneymovement.domain.accounts import (
    Account,
    require_open_for_credits,
    require_open_for_debits,
)
from moneymovement.domain.balances import EntryKind
from moneymovement.domain.errors import Reason, Rejected, account_not_found
from moneymovement.domain.funds import Part, held_back
from moneymovement.domain.transfers import (
    MAX_HOLD,
    Entry,
    EventKind,
    Transfer,
    TransferEvent,
    TransferState,
    credit_parts,
    move,
)

# The most a hold may allow its final capture to go past the amount held: 20 %, as far as
# card networks let a tip or a fuel top-up go past an authorisation.
MAX_OVER_CAPTURE_BPS = 2_000


def is_expired(hold: Transfer, now: datetime) -> bool:
    """Whether a hold has reached its expiry time (whether or not it was swept yet)."""
    return hold.expires_at is not None and now >= hold.expires_at


def capture_limit(hold: Transfer) -> int:
    """The most a hold's captures may add up to: its amount plus its tolerance."""
    return hold.amount_minor + hold.amount_minor * hold.over_capture_bps // 10_000


def _require_pending(hold: Transfer) -> None:
    if hold.state is not TransferState.PENDING:
        raise Rejected(
            Reason.TRANSFER_NOT_PENDING,
            f"transfer {hold.id} is {hold.state.value}, not PENDING",
            {"transfer_id": hold.id, "state": hold.state.value},
        )


def _require_live(hold: Transfer, now: datetime) -> None:
    """A hold that can still change: PENDING and not past its expiry. An expired hold
    answers HOLD_EXPIRED whether or not the sweeper released it yet."""
    if hold.state is not TransferState.EXPIRED:
        _require_pending(hold)
    if hold.state is TransferState.EXPIRED or is_expired(hold, now):
        raise Rejected(
            Reason.HOLD_EXPIRED,
            f"hold {hold.id} expired at {hold.expires_at}",
            {"transfer_id": hold.id},
        )


def _accounts_of(accounts: MutableMapping[str, Account], hold: Transfer) -> list[Account]:
    found = []
    for account_id in (hold.debit_account_id, hold.credit_account_id):
        account = accounts.get(account_id)
        if account is None:  # accounts are never deleted; this is a broken ledger
            raise account_not_found(account_id)
        found.append(account)
    return found


def _move(
    accounts: MutableMapping[str, Account],
    hold: Transfer,
    amount_minor: int,
    kind: EntryKind,
    parts: list[Part] | None = None,
) -> list[Entry]:
    if not amount_minor:
        return []
    return move(
        accounts,
        hold.id,
        hold.debit_account_id,
        hold.credit_account_id,
        amount_minor,
        kind,
        credit_held=held_back(parts or []),
    )


def _step(hold: Transfer, step: TransferEvent, state: TransferState | None = None) -> Transfer:
    """The hold with one more step of its history."""
    return replace(
        hold, state=state or hold.state, updated_at=step.at, history=(*hold.history, step)
    )


def post_hold(
    accounts: MutableMapping[str, Account],
    hold: Transfer,
    amount_minor: int,
    now: datetime,
    request_id: str,
    *,
    final: bool = True,
) -> tuple[Transfer, list[Entry], list[Part]]:
    """Captures `amount_minor` of a hold (0: all that is still held). Also returns the
    parts of the captured credit that are not available yet (the hold's availability
    counts from each capture).

    Raises:
        Rejected: TRANSFER_NOT_PENDING, HOLD_EXPIRED, POST_EXCEEDS_HOLD, ACCOUNT_FROZEN,
            ACCOUNT_CLOSED, BALANCE_LIMIT_EXCEEDED, INSUFFICIENT_FUNDS and
            BALANCE_OVERFLOW (for what an over-capture takes past the hold).
    """
    _require_live(hold, now)
    held = hold.held_minor
    captured = amount_minor or held
    # Only the final capture may go past what is held (as far as the tolerance allows).
    most = capture_limit(hold) - hold.posted_amount_minor if final else held
    if captured > most:
        raise Rejected(
            Reason.POST_EXCEEDS_HOLD,
            f"cannot capture {captured}: hold {hold.id} allows {most}",
            {"transfer_id": hold.id, "held_minor": str(held), "capturable_minor": str(most)},
        )
    final = final or captured >= held  # nothing would be left to hold
    debit, credit = _accounts_of(accounts, hold)
    if hold.owner_id is None:
        # A payout's hold is captured when the rail has paid: a freeze since then stops
        # new money out, not money that has already left.
        require_open_for_debits(debit)
    require_open_for_credits(credit)
    parts = credit_parts(credit, captured, hold.availability, now)
    # On an overlay: a refusal of a later step must not leave an earlier one applied in
    # the caller's mapping, and only what changed is copied back.
    working: ChainMap[str, Account] = ChainMap({}, accounts)
    entries = _move(working, hold, max(0, captured - held), EntryKind.PENDING)
    entries += _move(working, hold, captured, EntryKind.CAPTURED, parts)
    if final:
        entries += _move(working, hold, max(0, held - captured), EntryKind.PENDING_RELEASED)
    accounts.update(working.maps[0])
    kind = EventKind.POSTED if final else EventKind.CAPTURED
    changed = _step(
        hold,
        TransferEvent(kind, captured, now, request_id),
        TransferState.POSTED if final else TransferState.PENDING,
    )
    return replace(changed, posted_amount_minor=hold.posted_amount_minor + captured), entries, parts


def increment_hold(
    accounts: MutableMapping[str, Account],
    hold: Transfer,
    amount_minor: int,
    now: datetime,
    request_id: str,
) -> tuple[Transfer, list[Entry]]:
    """Raises a hold by `amount_minor` (incremental authorisation): the extra is held as
    a new hold of it would be (open accounts, the debit account's floor).

    Raises:
        Rejected: TRANSFER_NOT_PENDING, HOLD_EXPIRED, ACCOUNT_FROZEN, ACCOUNT_CLOSED,
            INSUFFICIENT_FUNDS, BALANCE_OVERFLOW.
    """
    _require_live(hold, now)
    debit, credit = _accounts_of(accounts, hold)
    require_open_for_debits(debit)
    require_open_for_credits(credit)
    entries = _move(accounts, hold, amount_minor, EntryKind.PENDING)
    changed = _step(hold, TransferEvent(EventKind.INCREMENTED, amount_minor, now, request_id))
    return replace(changed, amount_minor=hold.amount_minor + amount_minor), entries


def latest_expiry(hold: Transfer) -> datetime:
    """The latest a hold may be extended to: MAX_HOLD after its creation."""
    return hold.created_at + MAX_HOLD


def extend_hold(hold: Transfer, expires_at: datetime, now: datetime, request_id: str) -> Transfer:
    """Moves a hold's expiry later, to at most MAX_HOLD after its creation. No money
    moves: the amount stays held.

    Raises:
        Rejected: TRANSFER_NOT_PENDING, HOLD_EXPIRED, HOLD_EXTENSION_OUT_OF_RANGE (not
            later than the current expiry, or past the latest).
    """
    _require_live(hold, now)
    current = hold.expires_at
    latest = latest_expiry(hold)
    if current is None or not current < expires_at <= latest:
        raise Rejected(
            Reason.HOLD_EXTENSION_OUT_OF_RANGE,
            f"hold {hold.id} can be extended past {current} up to {latest}, not to {expires_at}",
            {
                "transfer_id": hold.id,
                "expire_time": _rfc3339(current),
                "max_expire_time": _rfc3339(latest),
            },
        )
    step = TransferEvent(EventKind.EXTENDED, 0, now, request_id, expires_at=expires_at)
    return replace(_step(hold, step), expires_at=expires_at)


def _rfc3339(at: datetime | None) -> str:
    if at is None:
        return ""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _end(
    accounts: MutableMapping[str, Account],
    hold: Transfer,
    kind: EventKind,
    now: datetime,
    request_id: str,
) -> tuple[Transfer, list[Entry]]:
    """Releases what a hold still holds; it ends POSTED when captures moved money."""
    _accounts_of(accounts, hold)
    held = hold.held_minor
    entries = _move(accounts, hold, held, EntryKind.PENDING_RELEASED)
    state = TransferState.POSTED if hold.posted_amount_minor else TransferState[kind.value]
    return _step(hold, TransferEvent(kind, held, now, request_id), state), entries


def void_hold(
    accounts: MutableMapping[str, Account], hold: Transfer, now: datetime, request_id: str
) -> tuple[Transfer, list[Entry]]:
    """Releases what a hold still holds. Frozen accounts do not stop it: it only gives
    back a reservation.

    A hold past its expiry time that the sweeper has not reached yet ends by expiry
    rather than by the void: it expired first.

    Raises:
        Rejected: TRANSFER_NOT_PENDING.
    """
    _require_pending(hold)
    if is_expired(hold, now):
        return _end(accounts, hold, EventKind.EXPIRED, now, "")
    return _end(accounts, hold, EventKind.VOIDED, now, request_id)


def expire_hold(
    accounts: MutableMapping[str, Account], hold: Transfer, now: datetime
) -> tuple[Transfer, list[Entry]] | None:
    """Releases a hold whose time is up; None when there is nothing to do (already ended,
    or not yet due), so that two sweepers racing each other release it only once."""
    if hold.state is not TransferState.PENDING or not is_expired(hold, now):
        return None
    return _end(accounts, hold, EventKind.EXPIRED, now, "")
