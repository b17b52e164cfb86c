"""An account's stored balance totals and the amounts derived from them.

Stored: posted and pending debits and credits, each a non-negative sum of entries, and
the two parts of the posted balance that are not available yet: pending availability
and the rolling reserve (each the sum of the account's unended scheduled funds of that
kind, domain/funds.py). Derived, signed by the normal balance: posted, pending inbound,
pending outbound and available (posted minus pending outbound minus the two parts),
which the overdraft policy bounds from below.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from moneymovement.domain.errors import Reason, Rejected
from moneymovement.domain.money import fits_int64


class NormalBalance(enum.Enum):
    """Which side of an account's entries increases its balance."""

    CREDIT = "CREDIT"
    DEBIT = "DEBIT"


class Direction(enum.Enum):
    """The side of an entry."""

    DEBIT = "DEBIT"
    CREDIT = "CREDIT"


class EntryKind(enum.Enum):
    """Which totals an entry changes."""

    POSTED = "POSTED"
    PENDING = "PENDING"
    PENDING_RELEASED = "PENDING_RELEASED"
    # A capture of held money: the pending total drops and the posted total rises by the
    # amount, in one entry, so a statement never shows the hold released before the money
    # posts (an available balance nobody could ever have read).
    CAPTURED = "CAPTURED"


@dataclass(frozen=True)
class HeldBack:
    """Amounts added to (or, negative, taken from) an account's pending availability
    and rolling reserve together with an entry."""

    availability_minor: int = 0
    reserve_minor: int = 0

    def __bool__(self) -> bool:
        return bool(self.availability_minor or self.reserve_minor)

    def __neg__(self) -> HeldBack:
        return HeldBack(-self.availability_minor, -self.reserve_minor)


NOTHING_HELD = HeldBack()


@dataclass(frozen=True)
class Balances:
    """The stored totals of one account, in minor units."""

    posted_debits_minor: int = 0
    posted_credits_minor: int = 0
    pending_debits_minor: int = 0
    pending_credits_minor: int = 0
    pending_availability_minor: int = 0
    reserved_minor: int = 0

    def posted(self, normal: NormalBalance) -> int:
        """The posted balance, positive when it is on the normal side."""
        if normal is NormalBalance.CREDIT:
            return self.posted_credits_minor - self.posted_debits_minor
        return self.posted_debits_minor - self.posted_credits_minor

    def pending_inbound(self, normal: NormalBalance) -> int:
        """Held money on its way in."""
        if normal is NormalBalance.CREDIT:
            return self.pending_credits_minor
        return self.pending_debits_minor

    def pending_outbound(self, normal: NormalBalance) -> int:
        """Held money reserved to leave."""
        if normal is NormalBalance.CREDIT:
            return self.pending_debits_minor
        return self.pending_credits_minor

    def available(self, normal: NormalBalance) -> int:
        """What can still be spent: posted minus pending outbound, minus what is posted
        but not available yet (pending availability and the rolling reserve)."""
        return (
            self.posted(normal)
            - self.pending_outbound(normal)
            - self.pending_availability_minor
            - self.reserved_minor
        )

    def is_zero(self) -> bool:
        """Nothing posted on balance and nothing pending (the condition for closing)."""
        return (
            self.posted_debits_minor == self.posted_credits_minor
            and self.pending_debits_minor == 0
            and self.pending_credits_minor == 0
            and self.pending_availability_minor == 0
            and self.reserved_minor == 0
        )

    def held_back(self, parts: HeldBack) -> Balances:
        """The totals with `parts` added to what is not available yet (negative parts:
        taken out of it).

        Raises:
            Rejected: BALANCE_OVERFLOW when a total would leave the int64 range.
        """
        if not parts:
            return self
        availability = self.pending_availability_minor + parts.availability_minor
        reserved = self.reserved_minor + parts.reserve_minor
        if availability < 0 or reserved < 0:
            raise ValueError("more funds taken out of a schedule than it holds")
        if not (fits_int64(availability) and fits_int64(reserved)):
            raise Rejected(Reason.BALANCE_OVERFLOW, "a held-back total would exceed int64")
        return replace(self, pending_availability_minor=availability, reserved_minor=reserved)

    def after(self, direction: Direction, kind: EntryKind, amount_minor: int) -> Balances:
        """The totals after one entry.

        Raises:
            Rejected: BALANCE_OVERFLOW when a total would leave the int64 range.
        """
        posted, pending = _SIDE_TOTALS[direction]
        deltas: tuple[tuple[str, int], ...]
        if kind is EntryKind.POSTED:
            deltas = ((posted, amount_minor),)
        elif kind is EntryKind.PENDING:
            deltas = ((pending, amount_minor),)
        elif kind is EntryKind.PENDING_RELEASED:
            deltas = ((pending, -amount_minor),)
        else:  # CAPTURED
            deltas = ((pending, -amount_minor), (posted, amount_minor))
        values = {}
        for field, delta in deltas:
            value = getattr(self, field) + delta
            if value < 0:
                raise ValueError(f"{field} would become negative: more released than held")
            if not fits_int64(value):
                raise Rejected(Reason.BALANCE_OVERFLOW, f"{field} would exceed the int64 range")
            values[field] = value
        after = replace(self, **values)
        # What the side would post once every open hold is captured must fit too: a hold
        # accepted now must never be a capture refused later (a payout the bank has paid).
        if kind is not EntryKind.PENDING_RELEASED and not fits_int64(after.committed(direction)):
            raise Rejected(
                Reason.BALANCE_OVERFLOW,
                "the posted total with its open holds captured would exceed the int64 range",
            )
        return after

    def committed(self, direction: Direction) -> int:
        """One side's posted total with every open hold on that side captured."""
        if direction is Direction.DEBIT:
            return self.posted_debits_minor + self.pending_debits_minor
        return self.posted_credits_minor + self.pending_credits_minor


# Each side's (posted, pending) totals, by field name.
_SIDE_TOTALS = {
    Direction.DEBIT: ("posted_debits_minor", "pending_debits_minor"),
    Direction.CREDIT: ("posted_credits_minor", "pending_credits_minor"),
}


@dataclass(frozen=True)
class BalanceSnapshot:
    """One account's totals at a moment, with what is needed to derive the rest."""

    account_id: str
    currency_code: str
    normal_balance: NormalBalance
    balances: Balances
    version: int
    as_of: datetime
    minimum_reserve_minor: int = 0
    # What becomes available when: (time, kind, amount) parts, soonest first.
    schedule: tuple[Any, ...] = ()
    # What the account owes its negative-balance reserve (domain/reserve.py).
    reserve_debt_minor: int = 0
