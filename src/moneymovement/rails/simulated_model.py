"""The simulated rail's rules, without I/O: outcomes, journal records, and the state
folded from them.

Every decision comes from sha256 of (seed, key, purpose), never from a process's random
state, so every process that reads the journal reaches the same answer. A payout's plan
(when it settles, whether it fails, whether and when it is returned) is decided once, at
submission, and journaled with it: the bank's process, which does not know the rail's
settings, then computes the same status as every rail process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from moneymovement.rails.base import (
    InboundKind,
    InboundNotice,
    InboundState,
    RailPayout,
    RailState,
    RailStatus,
    SettlementKind,
    SettlementLine,
)

# Test destinations, by the last four digits of the account number.
FAILS_ACCOUNT_CLOSED = "0002"
FAILS_NO_ACCOUNT = "0003"
RETURNED_ACCOUNT_FROZEN = "0004"
FIRST_ANSWER_LOST = "0005"
ALWAYS_UNAVAILABLE = "0006"

# Reason codes of outcomes decided by the rates rather than by a test destination.
RANDOM_FAILURE_REASON = "insufficient_funds_at_bank"
RANDOM_RETURN_REASON = "account_closed"

_FIXED_FAILURES = {FAILS_ACCOUNT_CLOSED: "account_closed", FAILS_NO_ACCOUNT: "no_account"}
_FIXED_RETURN_REASON = "account_frozen"


@dataclass(frozen=True)
class SimulationSettings:
    """How a simulated rail behaves; rates are probabilities in [0, 1]."""

    seed: int = 0
    latency_s: float = 0.5
    failure_rate: float = 0.0
    return_rate: float = 0.0
    return_after_s: float = 5.0
    timeout_rate: float = 0.0
    unavailable_rate: float = 0.0
    duplicate_rate: float = 0.0
    reorder: bool = False

    def __post_init__(self) -> None:
        rates = {
            "failure_rate": self.failure_rate,
            "return_rate": self.return_rate,
            "timeout_rate": self.timeout_rate,
            "unavailable_rate": self.unavailable_rate,
            "duplicate_rate": self.duplicate_rate,
        }
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], not {rate}")
        if self.latency_s < 0 or self.return_after_s < 0:
            raise ValueError("latency_s and return_after_s must not be negative")


@dataclass(frozen=True)
class PayoutPlan:
    """What will happen to a payout, decided at submission."""

    settles_at: float
    outcome: RailState  # POSTED or FAILED
    outcome_reason: str
    returns_at: float | None
    return_reason: str


@dataclass(frozen=True)
class Submission:
    payout: RailPayout
    submitted_at: float
    plan: PayoutPlan


@dataclass(frozen=True)
class Override:
    """The bank failing or returning a payout by hand, from `at` on."""

    reason: str
    at: float


@dataclass
class RailJournalState:
    """Everything the journal says, folded record by record (see `fold_record`)."""

    submissions: dict[str, Submission] = field(default_factory=dict)  # first, in order
    new_submissions: dict[str, int] = field(default_factory=dict)
    submit_calls: dict[str, int] = field(default_factory=dict)
    failures: dict[str, Override] = field(default_factory=dict)
    returns: dict[str, Override] = field(default_factory=dict)
    inbound: list[tuple[int, InboundNotice]] = field(default_factory=list)  # (sequence, ...)
    credits: dict[str, InboundNotice] = field(default_factory=dict)  # first, by reference
    returned_credits: set[str] = field(default_factory=set)
    acked_through: dict[tuple[InboundKind, str], int] = field(default_factory=dict)

    def status(self, key: str, now: float) -> RailStatus | None:
        submission = self.submissions.get(key)
        if submission is None:
            return None
        return payout_status(submission, self.failures.get(key), self.returns.get(key), now)

    def unacked(self) -> list[tuple[int, InboundNotice]]:
        return [
            (sequence, notice)
            for sequence, notice in self.inbound
            if sequence > self.acked_through.get((notice.kind, notice.reference), -1)
        ]

    def settlement_report(self, now: float) -> list[SettlementLine]:
        payouts = [
            _payout_line(
                payout_status(submission, self.failures.get(key), self.returns.get(key), now),
                submission,
            )
            for key, submission in self.submissions.items()
        ]
        credits = [
            SettlementLine(
                kind=SettlementKind.INBOUND,
                tenant_id=credit.tenant_id,
                reference=reference,
                amount_minor=credit.amount_minor,
                currency_code=credit.currency_code,
                state=InboundState.RETURNED
                if reference in self.returned_credits
                else InboundState.RECEIVED,
            )
            for reference, credit in self.credits.items()
        ]
        return payouts + credits


def unit_interval(seed: int, key: str, purpose: str) -> float:
    """A number in [0, 1) that every process computes alike for (seed, key, purpose)."""
    digest = hashlib.sha256(f"{seed}:{key}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def plan_payout(
    payout: RailPayout, submitted_at: float, settings: SimulationSettings
) -> PayoutPlan:
    """Decide a payout's fate: test destinations first, then the seeded rates."""
    seed, key = settings.seed, payout.key
    settles_at = submitted_at + settings.latency_s * (0.5 + unit_interval(seed, key, "latency"))
    if payout.last4 in _FIXED_FAILURES:
        return PayoutPlan(settles_at, RailState.FAILED, _FIXED_FAILURES[payout.last4], None, "")
    if unit_interval(seed, key, "failure") < settings.failure_rate:
        return PayoutPlan(settles_at, RailState.FAILED, RANDOM_FAILURE_REASON, None, "")
    returns_at = settles_at + settings.return_after_s
    if payout.last4 == RETURNED_ACCOUNT_FROZEN:
        return PayoutPlan(settles_at, RailState.POSTED, "", returns_at, _FIXED_RETURN_REASON)
    if unit_interval(seed, key, "return") < settings.return_rate:
        return PayoutPlan(settles_at, RailState.POSTED, "", returns_at, RANDOM_RETURN_REASON)
    return PayoutPlan(settles_at, RailState.POSTED, "", None, "")


def payout_status(
    submission: Submission, failure: Override | None, returned: Override | None, now: float
) -> RailStatus:
    """The payout's status at `now`. The bank's overrides win from the moment they were
    made; they were only accepted while the payout was PROCESSING (a failure) or POSTED
    (a return), so they never rewrite an answer already given."""
    payout, plan = submission.payout, submission.plan

    def answer(state: RailState, reason: str = "") -> RailStatus:
        return RailStatus(payout.key, state, payout.amount_minor, payout.currency_code, reason)

    if failure is not None and now >= failure.at:
        return answer(RailState.FAILED, failure.reason)
    if returned is not None and now >= returned.at:
        return answer(RailState.RETURNED, returned.reason)
    if now < plan.settles_at:
        return answer(RailState.PROCESSING)
    if plan.outcome is RailState.FAILED:
        return answer(RailState.FAILED, plan.outcome_reason)
    if plan.returns_at is not None and now >= plan.returns_at:
        return answer(RailState.RETURNED, plan.return_reason)
    return answer(RailState.POSTED)


def _payout_line(status: RailStatus, submission: Submission) -> SettlementLine:
    return SettlementLine(
        kind=SettlementKind.PAYOUT,
        tenant_id=submission.payout.tenant_id,
        reference=status.key,
        amount_minor=status.amount_minor,
        currency_code=status.currency_code,
        state=status.state,
    )


# Journal records. Each is a JSON object with a "type"; the payout carries last4 and a
# fingerprint only, like everything else here.


def submission_record(submission: Submission) -> dict[str, Any]:
    payout, plan = submission.payout, submission.plan
    return {
        "type": "payout_submitted",
        "key": payout.key,
        "tenant_id": payout.tenant_id,
        "amount_minor": payout.amount_minor,
        "currency_code": payout.currency_code,
        "method": payout.method,
        "routing_reference": payout.routing_reference,
        "last4": payout.last4,
        "fingerprint": payout.fingerprint,
        "at": submission.submitted_at,
        "settles_at": plan.settles_at,
        "outcome": plan.outcome,
        "outcome_reason": plan.outcome_reason,
        "returns_at": plan.returns_at,
        "return_reason": plan.return_reason,
    }


def duplicate_record(key: str, at: float) -> dict[str, Any]:
    return {"type": "payout_duplicate", "key": key, "at": at}


def failure_record(key: str, override: Override) -> dict[str, Any]:
    return {
        "type": "payout_failed_by_bank",
        "key": key,
        "reason": override.reason,
        "at": override.at,
    }


def return_record(key: str, override: Override) -> dict[str, Any]:
    return {
        "type": "payout_returned_by_bank",
        "key": key,
        "reason": override.reason,
        "at": override.at,
    }


def inbound_record(notice: InboundNotice, at: float) -> dict[str, Any]:
    kind = "inbound_credit" if notice.kind is InboundKind.CREDIT else "inbound_return"
    return {
        "type": kind,
        "reference": notice.reference,
        "tenant_id": notice.tenant_id,
        "account_id": notice.account_id,
        "amount_minor": notice.amount_minor,
        "currency_code": notice.currency_code,
        "description": notice.description,
        "reason": notice.reason,
        "at": at,
    }


def ack_record(kind: InboundKind, reference: str, through: int) -> dict[str, Any]:
    return {"type": "inbound_ack", "kind": kind, "reference": reference, "through": through}


def fold_record(state: RailJournalState, sequence: int, record: Mapping[str, Any]) -> None:
    """Apply one journal record to the state. Deterministic, no I/O."""
    kind = _text(record, "type")
    if kind == "payout_submitted":
        submission = _submission_of(record)
        key = submission.payout.key
        state.submissions.setdefault(key, submission)
        state.new_submissions[key] = state.new_submissions.get(key, 0) + 1
        state.submit_calls[key] = state.submit_calls.get(key, 0) + 1
    elif kind == "payout_duplicate":
        key = _text(record, "key")
        state.submit_calls[key] = state.submit_calls.get(key, 0) + 1
    elif kind == "payout_failed_by_bank":
        override = Override(_text(record, "reason"), _number(record, "at"))
        state.failures.setdefault(_text(record, "key"), override)
    elif kind == "payout_returned_by_bank":
        override = Override(_text(record, "reason"), _number(record, "at"))
        state.returns.setdefault(_text(record, "key"), override)
    elif kind in ("inbound_credit", "inbound_return"):
        notice = _notice_of(
            record, InboundKind.CREDIT if kind == "inbound_credit" else InboundKind.RETURN
        )
        state.inbound.append((sequence, notice))
        if notice.kind is InboundKind.CREDIT:
            state.credits.setdefault(notice.reference, notice)
        else:
            state.returned_credits.add(notice.reference)
    elif kind == "inbound_ack":
        acked = (InboundKind(_text(record, "kind")), _text(record, "reference"))
        through = _whole(record, "through")
        state.acked_through[acked] = max(through, state.acked_through.get(acked, -1))
    else:
        raise ValueError(f"unknown journal record type {kind!r}")


def _submission_of(record: Mapping[str, Any]) -> Submission:
    payout = RailPayout(
        key=_text(record, "key"),
        tenant_id=_text(record, "tenant_id"),
        amount_minor=_whole(record, "amount_minor"),
        currency_code=_text(record, "currency_code"),
        method=_text(record, "method"),
        routing_reference=_text(record, "routing_reference"),
        last4=_text(record, "last4"),
        fingerprint=_text(record, "fingerprint"),
    )
    returns_at = record.get("returns_at")
    plan = PayoutPlan(
        settles_at=_number(record, "settles_at"),
        outcome=RailState(_text(record, "outcome")),
        outcome_reason=_text(record, "outcome_reason"),
        returns_at=None if returns_at is None else _number(record, "returns_at"),
        return_reason=_text(record, "return_reason"),
    )
    return Submission(payout, _number(record, "at"), plan)


def _notice_of(record: Mapping[str, Any], kind: InboundKind) -> InboundNotice:
    return InboundNotice(
        kind=kind,
        reference=_text(record, "reference"),
        tenant_id=_text(record, "tenant_id"),
        account_id=_text(record, "account_id"),
        amount_minor=_whole(record, "amount_minor"),
        currency_code=_text(record, "currency_code"),
        description=_text(record, "description"),
        reason=_text(record, "reason"),
    )


def _text(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str):
        raise ValueError(f"journal record field {name!r} is not text: {value!r}")
    return value


def _whole(record: Mapping[str, Any], name: str) -> int:
    value = record.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"journal record field {name!r} is not a whole number: {value!r}")
    return value


def _number(record: Mapping[str, Any], name: str) -> float:
    value = record.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"journal record field {name!r} is not a number: {value!r}")
    return float(value)
