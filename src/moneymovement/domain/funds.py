"""Funds accessibility: when credited money may be spent (docs/funds-availability.md).

A posted credit may leave parts of its amount unavailable for a while: the rolling
reserve (a percentage, for some days) and a delayed availability (the transfer's own, or
the account's policy). Each part is a ScheduledFunds row; the account's
pending_availability and reserved totals are the sums of its unended rows of each kind,
and neither is in the available balance. A row ends exactly once: RELEASED when its
time has come (the sweeper), RELEASED_EARLY (ReleaseFunds), or REVERSED (a reversal of
its credit took it back). A row that ends for part of its amount hands the rest to a
remainder row, so rows are never changed except by ending them.

Pure: no I/O and no clock; the transaction's time comes in.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from moneymovement.domain.balances import NOTHING_HELD, HeldBack, NormalBalance
from moneymovement.domain.errors import FieldReason, FieldViolation, InvalidInput, Reason, Rejected

MAX_AVAILABILITY_DELAY = timedelta(days=90)
MAX_DELAY_DAYS = 90
MAX_RESERVE_DAYS = 365
BASIS_POINTS = 10_000


class Calendar(enum.Enum):
    """How availability delays count days."""

    DAYS = "DAYS"
    BUSINESS_DAYS = "BUSINESS_DAYS"  # Monday to Friday in the policy's time zone; no holidays


class LimitWindow(enum.Enum):
    """The rolling windows debit limits count over."""

    DAY = "DAY"
    WEEK = "WEEK"
    DAYS_30 = "30_DAYS"

    @property
    def length(self) -> timedelta:
        return {"DAY": timedelta(days=1), "WEEK": timedelta(days=7)}.get(
            self.value, timedelta(days=30)
        )


@dataclass(frozen=True)
class AvailabilityPolicy:
    """Credits become available at 00:00 local time of the `delay_days`-th (business)
    day after the day they were posted, in `time_zone`. 0 days: at once."""

    delay_days: int = 0
    calendar: Calendar = Calendar.DAYS
    time_zone: str = "UTC"

    def available_at(self, posted_at: datetime) -> datetime | None:
        """When a credit posted at `posted_at` becomes available; None: at once."""
        if self.delay_days == 0:
            return None
        zone = ZoneInfo(self.time_zone)
        day = posted_at.astimezone(zone).date()
        day = _add_days(day, self.delay_days, self.calendar)
        return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _add_days(day: date, count: int, calendar: Calendar) -> date:
    if calendar is Calendar.DAYS:
        return day + timedelta(days=count)
    while count:
        day += timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


@dataclass(frozen=True)
class ReservePolicy:
    """The rolling reserve holds back `rolling_percent_bps` / 10,000 of each credit
    (rounded down) for `rolling_days` days of 24 hours; debits may never take the
    available balance below `minimum_minor`."""

    rolling_percent_bps: int = 0
    rolling_days: int = 0
    minimum_minor: int = 0


@dataclass(frozen=True)
class DebitLimit:
    """At most `max_amount_minor` in at most `max_count` debits per rolling window
    (0: that measure is not limited)."""

    window: LimitWindow
    max_amount_minor: int = 0
    max_count: int = 0


@dataclass(frozen=True)
class FundsPolicy:
    """An account's funds policy. The default is none: credits available at once."""

    availability: AvailabilityPolicy = AvailabilityPolicy()
    reserve: ReservePolicy = ReservePolicy()
    early_release_allowed: bool = False
    debit_limits: tuple[DebitLimit, ...] = ()
    max_balance_minor: int = 0

    def __bool__(self) -> bool:
        # Accounts without a policy share NO_POLICY: identity first, on the hot path.
        return self is not NO_POLICY and self != NO_POLICY


NO_POLICY = FundsPolicy()


def validate_policy(policy: FundsPolicy, normal: NormalBalance) -> None:
    """Raises InvalidInput naming each field of `policy` out of its range."""
    violations = []

    def bad(field: str, reason: FieldReason, why: str) -> None:
        violations.append(FieldViolation(f"funds_policy.{field}".rstrip("."), reason, why))

    if policy and normal is not NormalBalance.CREDIT:
        bad("", FieldReason.OUT_OF_RANGE, "a funds policy applies to credit-normal accounts")
    availability = policy.availability
    if not 0 <= availability.delay_days <= MAX_DELAY_DAYS:
        bad("availability.delay_days", FieldReason.OUT_OF_RANGE, f"0 to {MAX_DELAY_DAYS}")
    if not _is_zone(availability.time_zone):
        bad("availability.time_zone", FieldReason.INVALID_FORMAT, "an IANA time zone name")
    reserve = policy.reserve
    if not 0 <= reserve.rolling_percent_bps <= BASIS_POINTS:
        bad("reserve.rolling_percent_bps", FieldReason.OUT_OF_RANGE, "0 to 10000")
    if reserve.rolling_percent_bps and not 1 <= reserve.rolling_days <= MAX_RESERVE_DAYS:
        bad("reserve.rolling_days", FieldReason.OUT_OF_RANGE, f"1 to {MAX_RESERVE_DAYS}")
    if not reserve.rolling_percent_bps and reserve.rolling_days:
        bad("reserve.rolling_days", FieldReason.OUT_OF_RANGE, "needs rolling_percent_bps")
    if reserve.minimum_minor < 0:
        bad("reserve.minimum_minor", FieldReason.OUT_OF_RANGE, "must not be negative")
    seen = set()
    for index, limit in enumerate(policy.debit_limits):
        if limit.window in seen:
            bad(f"debit_limits[{index}].window", FieldReason.DUPLICATE, "one limit per window")
        seen.add(limit.window)
        if limit.max_amount_minor < 0 or limit.max_count < 0:
            bad(f"debit_limits[{index}]", FieldReason.OUT_OF_RANGE, "must not be negative")
        if not (limit.max_amount_minor or limit.max_count):
            bad(f"debit_limits[{index}]", FieldReason.REQUIRED, "a maximum amount or count")
    if policy.max_balance_minor < 0:
        bad("max_balance_minor", FieldReason.OUT_OF_RANGE, "must not be negative")
    if violations:
        raise InvalidInput(violations)


_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")


def _is_zone(name: str) -> bool:
    """Whether `name` is a time zone of the IANA database. Checked by its shape first:
    the database is read from files, and a name that is a directory of it, or longer
    than a file name may be, fails with an OS error rather than "not found"."""
    if len(name) > 64 or not _ZONE_NAME.fullmatch(name):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


class FundsKind(enum.Enum):
    """Why a part of a credit is not available yet."""

    AVAILABILITY = "AVAILABILITY"
    RESERVE = "RESERVE"


class EndKind(enum.Enum):
    """How a scheduled part ended."""

    RELEASED = "RELEASED"
    RELEASED_EARLY = "RELEASED_EARLY"
    REVERSED = "REVERSED"


@dataclass(frozen=True)
class ScheduledFunds:
    """A part of a posted credit that becomes available at `available_at`."""

    id: str
    account_id: str
    transfer_id: str
    kind: FundsKind
    amount_minor: int
    available_at: datetime
    created_at: datetime
    remainder_of_id: str | None = None
    ended_at: datetime | None = None
    end_kind: EndKind | None = None
    ended_amount_minor: int | None = None
    end_request_id: str | None = None
    remainder_id: str | None = None

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True)
class Availability:
    """What a transfer asked for its credit: a time, or a delay from its posting."""

    at: datetime | None = None
    delay: timedelta | None = None

    def __bool__(self) -> bool:
        return self.at is not None or self.delay is not None

    def available_at(self, posted_at: datetime) -> datetime:
        if self.at is not None:
            return self.at
        assert self.delay is not None
        return posted_at + self.delay


AT_ONCE = Availability()


@dataclass(frozen=True)
class Part:
    """A part of a new credit to schedule (before it has an id)."""

    kind: FundsKind
    amount_minor: int
    available_at: datetime


def parts_of_credit(
    normal: NormalBalance,
    policy: FundsPolicy,
    amount_minor: int,
    asked: Availability,
    now: datetime,
) -> list[Part]:
    """The parts of a credit of `amount_minor` posted now that are not available yet:
    the rolling reserve first (a percentage of the whole amount, rounded down), then the
    rest held until the transfer's own availability or else the policy's.

    Raises:
        Rejected: AVAILABILITY_NOT_APPLICABLE when a transfer asks for availability on
            an account that is not credit-normal (its balance is not someone's money).
    """
    if policy is NO_POLICY and not asked:
        return []  # most credits: nothing held back, decided without any arithmetic
    if normal is not NormalBalance.CREDIT:
        if asked:
            raise Rejected(
                Reason.AVAILABILITY_NOT_APPLICABLE,
                "availability applies to credits to credit-normal accounts",
            )
        return []
    parts = []
    reserve = policy.reserve
    held = amount_minor * reserve.rolling_percent_bps // BASIS_POINTS
    if held and reserve.rolling_days:
        parts.append(Part(FundsKind.RESERVE, held, now + timedelta(days=reserve.rolling_days)))
    else:
        held = 0
    rest = amount_minor - held
    at = asked.available_at(now) if asked else policy.availability.available_at(now)
    if rest and at is not None and at > now:
        parts.append(Part(FundsKind.AVAILABILITY, rest, at))
    return parts


def _by_kind(amounts: Iterable[tuple[FundsKind, int]]) -> HeldBack:
    availability = reserve = 0
    for kind, amount in amounts:
        if kind is FundsKind.AVAILABILITY:
            availability += amount
        else:
            reserve += amount
    return HeldBack(availability, reserve)


def held_back(parts: list[Part]) -> HeldBack:
    """The totals that `parts` add to an account."""
    if not parts:
        return NOTHING_HELD
    return _by_kind((p.kind, p.amount_minor) for p in parts)


@dataclass(frozen=True)
class Ending:
    """One part ended, for `amount_minor` of it (all or some)."""

    funds: ScheduledFunds
    amount_minor: int


def taken_back(endings: Iterable[Ending]) -> HeldBack:
    """What ending these parts takes out of their account's unavailable totals
    (negative amounts, for Balances.held_back)."""
    return -_by_kind((e.funds.kind, e.amount_minor) for e in endings)


def take(funds: Iterable[ScheduledFunds], amount_minor: int) -> list[Ending]:
    """Up to `amount_minor` from `funds` in the given order, the last one partly."""
    endings = []
    left = amount_minor
    for part in funds:
        if left == 0:
            break
        amount = min(part.amount_minor, left)
        endings.append(Ending(part, amount))
        left -= amount
    return endings


def end(
    ending: Ending, kind: EndKind, now: datetime, request_id: str, remainder_id: str
) -> tuple[ScheduledFunds, ScheduledFunds | None]:
    """The part ended, and its remainder when it ended for less than all of it."""
    part = ending.funds
    if not part.is_open:
        raise ValueError(f"scheduled funds {part.id} already ended")
    remainder = None
    if ending.amount_minor < part.amount_minor:
        remainder = replace(
            part,
            id=remainder_id,
            amount_minor=part.amount_minor - ending.amount_minor,
            created_at=now,
            remainder_of_id=part.id,
        )
    ended = replace(
        part,
        ended_at=now,
        end_kind=kind,
        ended_amount_minor=ending.amount_minor,
        end_request_id=request_id or None,
        remainder_id=None if remainder is None else remainder.id,
    )
    return ended, remainder


def schedule_of(funds: Iterable[ScheduledFunds]) -> tuple[Part, ...]:
    """Unended parts summed by time and kind, soonest first (a balance's schedule)."""
    summed: dict[tuple[datetime, str], int] = {}
    for part in funds:
        if part.is_open:
            key = (part.available_at, part.kind.value)
            summed[key] = summed.get(key, 0) + part.amount_minor
    return tuple(Part(FundsKind(kind), amount, at) for (at, kind), amount in sorted(summed.items()))


def oldest_first(funds: Iterable[ScheduledFunds]) -> list[ScheduledFunds]:
    return sorted(funds, key=lambda f: (f.available_at, f.id))


def latest_first(funds: Iterable[ScheduledFunds]) -> list[ScheduledFunds]:
    """The order a reversal takes a credit's parts back: the one that would have been
    available last first (a reserve usually outlasts a delay)."""
    return sorted(funds, key=lambda f: (f.available_at, f.id), reverse=True)


@dataclass(frozen=True)
class DebitUsage:
    """What an account's debits used of each window: {window: (amount, count)}, as of
    the transaction's time."""

    used: Mapping[LimitWindow, tuple[int, int]]

    def plus(self, amount_minor: int) -> DebitUsage:
        """With a new debit of `amount_minor` (made now: in every window)."""
        return self.changed(amount_minor, 1, None, None)

    def changed(
        self, amount_minor: int, count: int, made_at: datetime | None, now: datetime | None
    ) -> DebitUsage:
        """With a debit made at `made_at` counted differently: a hold voided or expired
        (-amount, -1), captured for less (-the rest, 0). Only the windows that count it
        change (those it was made in); None: a debit made now, in all of them."""
        used = dict(self.used)
        for window in LimitWindow:
            if made_at is not None and now is not None and made_at <= now - window.length:
                continue
            amount, debits = used.get(window, (0, 0))
            used[window] = (amount + amount_minor, debits + count)
        return DebitUsage(used)


NO_USAGE = DebitUsage({})


def require_within_debit_limits(
    account_id: str,
    policy: FundsPolicy,
    usage: DebitUsage,
    amount_minor: int,
    *,
    count: int = 1,
    made_at: datetime | None = None,
    now: datetime | None = None,
) -> None:
    """Refuses a debit of `amount_minor` that would take a window past its limit. A debit
    made earlier and grown now (a hold's increment or over-capture) gives its `made_at`:
    it counts only in the windows it was made in, and as `count` more debits (0).

    Raises:
        Rejected: DEBIT_LIMIT_EXCEEDED, naming the window, the measure, the limit, what
            is used and what is left.
    """
    for limit in policy.debit_limits:
        if made_at is not None and now is not None and made_at <= now - limit.window.length:
            continue
        used_amount, used_count = usage.used.get(limit.window, (0, 0))
        for measure, maximum, used, asked in (
            ("amount", limit.max_amount_minor, used_amount, amount_minor),
            ("count", limit.max_count, used_count, count),
        ):
            if maximum and asked and used + asked > maximum:
                raise Rejected(
                    Reason.DEBIT_LIMIT_EXCEEDED,
                    f"account {account_id}: the {limit.window.value} debit {measure} limit "
                    f"of {maximum} leaves {max(0, maximum - used)}",
                    {
                        "account_id": account_id,
                        "window": limit.window.value,
                        "measure": measure,
                        "limit": str(maximum),
                        "used": str(used),
                        "remaining": str(max(0, maximum - used)),
                    },
                )


def policy_to_json(policy: FundsPolicy) -> dict[str, Any]:
    """A policy as stored (accounts.funds_policy, outcomes, events): {} for none."""
    if not policy:
        return {}
    a, r = policy.availability, policy.reserve
    return {
        "availability": {
            "delay_days": a.delay_days, "calendar": a.calendar.value, "time_zone": a.time_zone
        },
        "reserve": {
            "rolling_percent_bps": r.rolling_percent_bps,
            "rolling_days": r.rolling_days,
            "minimum_minor": r.minimum_minor,
        },
        "early_release_allowed": policy.early_release_allowed,
        "debit_limits": [
            {"window": d.window.value, "max_amount_minor": d.max_amount_minor,
             "max_count": d.max_count}
            for d in policy.debit_limits
        ],
        "max_balance_minor": policy.max_balance_minor,
    }  # fmt: skip


def policy_from_json(data: Mapping[str, Any]) -> FundsPolicy:
    """The policy `policy_to_json` stored."""
    if not data:
        return NO_POLICY
    a, r = data["availability"], data["reserve"]
    return FundsPolicy(
        availability=AvailabilityPolicy(a["delay_days"], Calendar(a["calendar"]), a["time_zone"]),
        reserve=ReservePolicy(r["rolling_percent_bps"], r["rolling_days"], r["minimum_minor"]),
        early_release_allowed=data["early_release_allowed"],
        debit_limits=tuple(
            DebitLimit(LimitWindow(d["window"]), d["max_amount_minor"], d["max_count"])
            for d in data["debit_limits"]
        ),
        max_balance_minor=data["max_balance_minor"],
    )
