"""Transfers and the double-entry rule that turns one into two balanced entries."""

from __future__ import annotations

import enum
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from moneymovement.domain.accounts import (
    Account,
    require_open_for_credits,
    require_open_for_debits,
    require_within_policy,
)
from moneymovement.domain.balances import NOTHING_HELD, Balances, Direction, EntryKind, HeldBack
from moneymovement.domain.errors import (
    FieldReason,
    FieldViolation,
    InvalidInput,
    Reason,
    Rejected,
    account_not_found,
)
from moneymovement.domain.funds import (
    AT_ONCE,
    NO_USAGE,
    Availability,
    DebitUsage,
    Part,
    held_back,
    parts_of_credit,
    require_within_debit_limits,
)


class TransferState(enum.Enum):
    """PENDING (a hold) -> POSTED | VOIDED | EXPIRED; an immediate transfer starts POSTED.

    A hold captured in part and still PENDING has posted money already; when it ends,
    by a final capture, a void or expiry of what is left, it ends POSTED: money moved.
    VOIDED and EXPIRED mean nothing moved."""

    PENDING = "PENDING"
    POSTED = "POSTED"
    VOIDED = "VOIDED"
    EXPIRED = "EXPIRED"


class EventKind(enum.Enum):
    """The steps of a transfer's history."""

    CREATED = "CREATED"
    POSTED = "POSTED"  # the final capture (by its own amount)
    VOIDED = "VOIDED"  # what was still held, released by a void
    EXPIRED = "EXPIRED"  # what was still held, released by expiry
    REVERSED = "REVERSED"
    CAPTURED = "CAPTURED"  # a capture that leaves the rest held
    INCREMENTED = "INCREMENTED"  # the hold grew by the amount
    EXTENDED = "EXTENDED"  # the hold's expiry moved to `expires_at`


class ReserveMovement(enum.Enum):
    """A transfer the negative-balance reserve made (domain/reserve.py): a COVER, from
    the reserve to an account a reversal would overdraw (its debt rises), or a RECOVERY,
    from the account back to the reserve out of a later credit (its debt falls)."""

    COVER = "COVER"
    RECOVERY = "RECOVERY"


# The steps that end a hold.
FINAL_KINDS = (EventKind.POSTED, EventKind.VOIDED, EventKind.EXPIRED)


@dataclass(frozen=True)
class TransferEvent:
    """One step of a transfer's history."""

    kind: EventKind
    amount_minor: int
    at: datetime
    request_id: str = ""
    related_transfer_id: str = ""
    expires_at: datetime | None = None  # EXTENDED: the new expiry


@dataclass(frozen=True)
class TransferSpec:
    """What a caller asks to move (one CreateTransfer, or one item of a batch)."""

    debit_account_id: str
    credit_account_id: str
    amount_minor: int
    currency_code: str
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    pending: bool = False
    hold_timeout_s: float | None = None
    hold_expires_at: datetime | None = None
    availability: Availability = AT_ONCE
    # The payout or inbound transfer that owns the new transfer (domain/rail_ledger.py):
    # only it moves the transfer, and such a hold never expires.
    owner_id: str | None = None
    # For a hold: how far its final capture may go past the amount held, in basis points
    # of it (domain/holds.py).
    over_capture_bps: int = 0


@dataclass(frozen=True)
class Transfer:
    """A transfer as stored."""

    id: str
    request_id: str
    debit_account_id: str
    credit_account_id: str
    amount_minor: int
    currency_code: str
    state: TransferState
    created_at: datetime
    updated_at: datetime
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    expires_at: datetime | None = None
    posted_amount_minor: int = 0
    reversed_amount_minor: int = 0
    reversal_of_id: str | None = None
    reversal_ids: tuple[str, ...] = ()
    batch_id: str | None = None
    trace_id: str | None = None
    history: tuple[TransferEvent, ...] = ()
    availability: Availability = AT_ONCE  # as asked, for its credit
    owner_id: str | None = None  # the payout or inbound transfer that moves it
    over_capture_bps: int = 0  # a hold's capture tolerance (domain/holds.py)
    reserve_movement: ReserveMovement | None = None  # the reserve's own transfers

    @property
    def held_minor(self) -> int:
        """What a PENDING hold still holds: its amount less what was captured of it."""
        if self.state is not TransferState.PENDING:
            return 0
        return self.amount_minor - self.posted_amount_minor


@dataclass(frozen=True)
class Entry:
    """One side of a transfer on one account, with the account's totals after it."""

    account_id: str
    transfer_id: str
    direction: Direction
    kind: EntryKind
    amount_minor: int
    balances_after: Balances
    account_version: int
    created_at: datetime | None = None
    trace_id: str | None = None  # the transfer's, when read back
    # When read back for a statement: the transfer's description and metadata, and its
    # other account (the credit account for a debit entry, the debit account for a credit).
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    counterparty_account_id: str | None = None


def require_transferable(
    accounts: Mapping[str, Account], spec: TransferSpec
) -> tuple[Account, Account]:
    """The two accounts of `spec`, if both exist, are open (the debit account for
    debits, the credit account for credits) and use its currency.

    Raises:
        Rejected: ACCOUNT_NOT_FOUND, ACCOUNT_CLOSED, ACCOUNT_FROZEN, CURRENCY_MISMATCH.
    """
    pair = []
    for account_id in (spec.debit_account_id, spec.credit_account_id):
        account = accounts.get(account_id)
        if account is None:
            raise account_not_found(account_id)
        pair.append(account)
    require_open_for_debits(pair[0])
    require_open_for_credits(pair[1])
    for account in pair:
        if account.currency_code != spec.currency_code:
            raise Rejected(
                Reason.CURRENCY_MISMATCH,
                f"account {account.id} holds {account.currency_code}, not {spec.currency_code}",
                {"account_id": account.id, "account_currency_code": account.currency_code},
            )
    return pair[0], pair[1]


def move(
    accounts: MutableMapping[str, Account],
    transfer_id: str,
    debit_account_id: str,
    credit_account_id: str,
    amount_minor: int,
    kind: EntryKind,
    debit_held: HeldBack = NOTHING_HELD,
    credit_held: HeldBack = NOTHING_HELD,
) -> list[Entry]:
    """Writes a balanced pair of entries and updates both accounts in `accounts`; each
    side's `held` changes its unavailable totals with its entry (a credit's parts that
    are not available yet; what a reversal takes back from them).

    Each entry raises its account's version by one, so entries are numbered per account.
    A change that lowers an available balance is checked against the overdraft policy;
    a release of a hold never is (it only gives back what was reserved).

    Raises:
        Rejected: INSUFFICIENT_FUNDS, BALANCE_OVERFLOW, BALANCE_LIMIT_EXCEEDED.
    """
    changed = []
    for account_id, direction, held in (
        (debit_account_id, Direction.DEBIT, debit_held),
        (credit_account_id, Direction.CREDIT, credit_held),
    ):
        account = accounts[account_id]
        try:
            after = account.balances.after(direction, kind, amount_minor).held_back(held)
        except Rejected as overflow:  # BALANCE_OVERFLOW: name the account
            raise Rejected(
                overflow.reason, f"account {account_id}: {overflow.message}",
                {**overflow.metadata, "account_id": account_id},
            ) from None  # fmt: skip
        if kind is not EntryKind.PENDING_RELEASED:
            require_within_policy(account, account.balances, after)
        changed.append((direction, replace(account, balances=after, version=account.version + 1)))
    # Both sides passed: only now is `accounts` changed, so a refusal leaves it untouched.
    entries = []
    for direction, account in changed:
        accounts[account.id] = account
        entries.append(
            Entry(
                account.id,
                transfer_id,
                direction,
                kind,
                amount_minor,
                account.balances,
                account.version,
            )
        )
    return entries


DEFAULT_HOLD = timedelta(days=7)
MAX_HOLD = timedelta(days=30)


def hold_expiry(spec: TransferSpec, now: datetime) -> datetime:
    """When a hold made now expires: the given time or timeout, else the default.

    Raises:
        InvalidInput: an expiry time not in the future or beyond the maximum.
    """
    if spec.hold_expires_at is not None:
        if not now < spec.hold_expires_at <= now + MAX_HOLD:
            raise InvalidInput(
                [
                    FieldViolation(
                        "hold_expire_time",
                        FieldReason.OUT_OF_RANGE,
                        "must be in the future and at most 30 days ahead",
                    )
                ]
            )
        return spec.hold_expires_at
    if spec.hold_timeout_s is not None:
        return now + timedelta(seconds=spec.hold_timeout_s)
    return now + DEFAULT_HOLD


@dataclass(frozen=True)
class NewTransfer:
    """Who asks for a new transfer, and how it is to be filed."""

    transfer_id: str
    request_id: str
    now: datetime
    trace_id: str | None = None
    batch_id: str | None = None
    reversal_of_id: str | None = None


def credit_parts(
    account: Account, amount_minor: int, asked: Availability, now: datetime
) -> list[Part]:
    """The parts of a credit to `account` posted now that are not available yet."""
    return parts_of_credit(account.normal_balance, account.funds_policy, amount_minor, asked, now)


def open_transfer(
    accounts: MutableMapping[str, Account],
    spec: TransferSpec,
    new: NewTransfer,
    usage: DebitUsage = NO_USAGE,
    debit_held: HeldBack = NOTHING_HELD,
) -> tuple[Transfer, list[Entry], list[Part]]:
    """Checks `spec` against the current accounts, applies it to them and drafts the
    transfer: POSTED at once, or a PENDING hold that reserves the amount. Also returns
    the parts of its credit that are not available yet (none for a hold until it is
    captured, and none for a reversal: it gives back money that was available).
    `usage` is what the debit account's limits have counted so far; `debit_held` what
    a reversal takes back from the debit account's unavailable parts.

    Raises:
        Rejected: ACCOUNT_NOT_FOUND, ACCOUNT_FROZEN, ACCOUNT_CLOSED, CURRENCY_MISMATCH,
            INSUFFICIENT_FUNDS, BALANCE_OVERFLOW, BALANCE_LIMIT_EXCEEDED,
            DEBIT_LIMIT_EXCEEDED, AVAILABILITY_NOT_APPLICABLE.
        InvalidInput: a hold expiry out of range.
    """
    debit, credit = require_transferable(accounts, spec)
    require_within_debit_limits(debit.id, debit.funds_policy, usage, spec.amount_minor)
    expires_at = hold_expiry(spec, new.now) if spec.pending and spec.owner_id is None else None
    kind = EntryKind.PENDING if spec.pending else EntryKind.POSTED
    parts: list[Part] = []
    if new.reversal_of_id is None:
        # For a hold only to refuse now what its capture would: its parts come then.
        parts = credit_parts(credit, spec.amount_minor, spec.availability, new.now)
        if spec.pending:
            parts = []
    entries = move(
        accounts,
        new.transfer_id,
        spec.debit_account_id,
        spec.credit_account_id,
        spec.amount_minor,
        kind,
        debit_held=debit_held,
        credit_held=held_back(parts),
    )
    transfer = Transfer(
        id=new.transfer_id,
        request_id=new.request_id,
        debit_account_id=spec.debit_account_id,
        credit_account_id=spec.credit_account_id,
        amount_minor=spec.amount_minor,
        currency_code=spec.currency_code,
        state=TransferState.PENDING if spec.pending else TransferState.POSTED,
        description=spec.description,
        metadata=spec.metadata,
        expires_at=expires_at,
        posted_amount_minor=0 if spec.pending else spec.amount_minor,
        reversal_of_id=new.reversal_of_id,
        batch_id=new.batch_id,
        trace_id=new.trace_id,
        created_at=new.now,
        updated_at=new.now,
        history=(TransferEvent(EventKind.CREATED, spec.amount_minor, new.now, new.request_id),),
        availability=spec.availability,
        owner_id=spec.owner_id,
        over_capture_bps=spec.over_capture_bps if spec.pending else 0,
    )
    return transfer, entries, parts
