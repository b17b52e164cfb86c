"""The simulated rail (the default, and what every test uses) and the bank's side of it.

State lives in `directory/rail.jsonl`, an append-only journal that any number of
processes share (see `journal.py`): server processes each with a `SimulatedRail`, and a
test or chaos process with a `SimulatedBank`. Every answer given was fsynced first, so a
SIGKILL loses nothing that was answered.

A payout's status is computed, never stored: PROCESSING until `submitted_at + latency_s *
f` (f in [0.5, 1.5) from sha256 of seed and key), then FAILED with probability
`failure_rate` (reason "insufficient_funds_at_bank") or POSTED; a POSTED payout becomes
RETURNED (reason "account_closed") `return_after_s` later with probability `return_rate`.
The plan is decided at submission and journaled with it, so every process, the bank's
included, computes the same status whatever its own settings.

Test destinations, by the last four digits of the destination account:

- "0002": FAILED, reason "account_closed".
- "0003": FAILED, reason "no_account".
- "0004": POSTED, then RETURNED, reason "account_frozen", `return_after_s` after posting.
- "0005": the first submit of a key is received (journaled) but raises RailTimeout: the
  answer is lost. `status(key)` then shows it; a repeated submit answers normally.
- "0006": every submit raises RailUnavailable and nothing is received.

Other keys meet the seeded faults: a submit raises RailUnavailable (nothing received) with
probability `unavailable_rate`, or is received and then raises RailTimeout with
probability `timeout_rate`. Both are drawn from sha256 of (seed, key, attempt), where the
attempt counts this instance's submits of the key, so a retry can succeed; a new process
starts counting again.

The bank's hand wins over the plan: `SimulatedBank.fail_payout` while the payout is still
PROCESSING, `SimulatedBank.return_payout` once it is POSTED.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from moneymovement.rails.base import (
    InboundKind,
    InboundNotice,
    RailPayout,
    RailState,
    RailStatus,
    RailTimeout,
    RailUnavailable,
    SettlementLine,
)
from moneymovement.rails.journal import Journal, Record
from moneymovement.rails.simulated_model import (
    ALWAYS_UNAVAILABLE,
    FIRST_ANSWER_LOST,
    Override,
    RailJournalState,
    SimulationSettings,
    Submission,
    ack_record,
    duplicate_record,
    failure_record,
    fold_record,
    inbound_record,
    payout_status,
    plan_payout,
    return_record,
    submission_record,
    unit_interval,
)

Clock = Callable[[], float]
_NoticeKey = tuple[InboundKind, str]

# With `reorder`, how often a payout that reached a later state is followed by a stale
# PROCESSING notice: often enough that a short test meets one.
_STALE_NOTICE_RATE = 0.5


def _open_journal(directory: Path) -> Journal[RailJournalState]:
    return Journal(directory, "rail", RailJournalState, fold_record)


class SimulatedRail:
    """A rail on a shared on-disk journal, deterministic by seed. See the module docstring."""

    name: str = "simulated"

    def __init__(
        self,
        directory: Path,
        *,
        seed: int = 0,
        latency_s: float = 0.5,
        failure_rate: float = 0.0,
        return_rate: float = 0.0,
        return_after_s: float = 5.0,
        timeout_rate: float = 0.0,
        unavailable_rate: float = 0.0,
        duplicate_rate: float = 0.0,
        reorder: bool = False,
        clock: Clock = time.time,
    ) -> None:
        self._settings = SimulationSettings(
            seed=seed,
            latency_s=latency_s,
            failure_rate=failure_rate,
            return_rate=return_rate,
            return_after_s=return_after_s,
            timeout_rate=timeout_rate,
            unavailable_rate=unavailable_rate,
            duplicate_rate=duplicate_rate,
            reorder=reorder,
        )
        self._clock = clock
        self._journal = _open_journal(directory)
        self._attempts: dict[str, int] = {}  # submits of each key by this instance
        self._reported: dict[str, RailState] = {}  # the last state each callback carried
        self._delivered: dict[_NoticeKey, int] = {}  # latest sequence inbound() handed out
        self._random = random.Random(self._settings.seed)  # callbacks' noise only

    async def submit(self, payout: RailPayout) -> RailStatus:
        """Receive a payout once per key; a repeat is journaled as a duplicate and answered
        with the first one's status (whatever the repeat says)."""
        key, seed = payout.key, self._settings.seed
        if payout.last4 == ALWAYS_UNAVAILABLE:
            raise RailUnavailable(f"{key}: the bank of account ...{payout.last4} is unreachable")
        attempt = self._attempts.get(key, 0)
        self._attempts[key] = attempt + 1
        if unit_interval(seed, key, f"unavailable:{attempt}") < self._settings.unavailable_rate:
            raise RailUnavailable(f"{key}: the rail refused the connection")
        receive = functools.partial(_receive, payout, self._clock(), self._settings)
        status, is_new = await asyncio.to_thread(self._journal.transact, receive)
        lost = unit_interval(seed, key, f"timeout:{attempt}") < self._settings.timeout_rate
        if lost or (is_new and payout.last4 == FIRST_ANSWER_LOST):
            raise RailTimeout(f"{key}: no answer from the rail (it may have the payout)")
        return status

    async def status(self, key: str) -> RailStatus | None:
        now = self._clock()
        return await asyncio.to_thread(self._journal.read, lambda state: state.status(key, now))

    async def callbacks(self) -> list[RailStatus]:
        """A notice for each payout (submitted by any process) whose state changed since
        this instance's last call; the first call reports every payout once.

        Intermediate states between two calls are skipped (PROCESSING can be followed by
        RETURNED directly). With `duplicate_rate` a notice comes twice; with `reorder` the
        list is shuffled and a payout past PROCESSING is sometimes followed by a stale
        PROCESSING notice of itself, at the end of the list.
        """
        now = self._clock()
        statuses = await asyncio.to_thread(
            self._journal.read, functools.partial(_all_statuses, now=now)
        )
        changed = [status for status in statuses if self._reported.get(status.key) != status.state]
        self._reported.update((status.key, status.state) for status in changed)
        notices: list[RailStatus] = []
        for status in changed:
            notices.append(status)
            if self._random.random() < self._settings.duplicate_rate:
                notices.append(status)
        if self._settings.reorder:
            self._random.shuffle(notices)
            notices.extend(
                RailStatus(
                    status.key, RailState.PROCESSING, status.amount_minor, status.currency_code
                )
                for status in changed
                if status.state is not RailState.PROCESSING
                and self._random.random() < _STALE_NOTICE_RATE
            )
        return notices

    async def inbound(self) -> list[InboundNotice]:
        """Every notice not acknowledged yet, oldest first: a credit the bank sent twice
        comes twice, and both stay until acknowledged."""
        unacked = await asyncio.to_thread(self._journal.read, RailJournalState.unacked)
        for sequence, notice in unacked:
            self._delivered[(notice.kind, notice.reference)] = sequence
        return [notice for _, notice in unacked]

    async def ack_inbound(self, notices: Sequence[InboundNotice]) -> None:
        """Acknowledge by (kind, reference) up to the latest copy this instance delivered,
        so a duplicate that arrived after `inbound()` is still delivered. A notice this
        instance never delivered (acked after a restart) covers every copy so far."""
        keys = [(notice.kind, notice.reference) for notice in notices]
        through = {key: self._delivered.get(key) for key in keys}
        await asyncio.to_thread(self._journal.transact, functools.partial(_acknowledge, through))

    async def settlement_report(self) -> list[SettlementLine]:
        now = self._clock()
        return await asyncio.to_thread(
            self._journal.read, lambda state: state.settlement_report(now)
        )


class SimulatedBank:
    """The bank's side of the simulated rail: sends money in, fails and returns payouts,
    and tells a test what it received. Synchronous: tests and the chaos harness call it
    directly, from any process."""

    def __init__(self, directory: Path, clock: Clock = time.time) -> None:
        self._clock = clock
        self._journal = _open_journal(directory)

    def send_credit(
        self,
        tenant_id: str,
        account_id: str,
        amount_minor: int,
        currency_code: str,
        reference: str,
        description: str = "",
    ) -> InboundNotice:
        """Money in for `account_id`. The same reference twice is journaled twice: the rail
        delivering a duplicate, which the service must recognise by reference."""
        if amount_minor <= 0:
            raise ValueError(f"a credit moves a positive amount, not {amount_minor}")
        if not reference:
            raise ValueError("a credit needs the rail's reference")
        notice = InboundNotice(
            kind=InboundKind.CREDIT,
            reference=reference,
            tenant_id=tenant_id,
            account_id=account_id,
            amount_minor=amount_minor,
            currency_code=currency_code,
            description=description,
        )
        record = inbound_record(notice, self._clock())
        self._journal.transact(lambda _state: ([record], None))
        return notice

    def return_credit(self, reference: str, reason: str) -> InboundNotice:
        """Take back an earlier credit (same tenant, account and amount). ValueError when no
        credit has this reference."""
        return self._journal.transact(
            functools.partial(_return_credit, reference, reason, self._clock())
        )

    def fail_payout(self, key: str, reason: str) -> bool:
        """Fail a payout still PROCESSING; False when it is unknown, POSTED or FAILED."""
        return self._journal.transact(
            functools.partial(_override, key, Override(reason, self._clock()), RailState.PROCESSING)
        )

    def return_payout(self, key: str, reason: str) -> bool:
        """Return a POSTED payout; False when it is unknown or in any other state."""
        return self._journal.transact(
            functools.partial(_override, key, Override(reason, self._clock()), RailState.POSTED)
        )

    def status(self, key: str) -> RailStatus | None:
        now = self._clock()
        return self._journal.read(lambda state: state.status(key, now))

    def received(self) -> dict[str, int]:
        """Payout key -> new submissions recorded for it. Exactly-once means every value is 1."""
        return self._journal.read(lambda state: dict(state.new_submissions))

    def submissions(self) -> dict[str, int]:
        """Payout key -> every submit call recorded, duplicates included."""
        return self._journal.read(lambda state: dict(state.submit_calls))

    def payouts(self) -> list[RailPayout]:
        """Every payout received, once each, in order of arrival."""
        return self._journal.read(
            lambda state: [submission.payout for submission in state.submissions.values()]
        )

    def settlement_report(self) -> list[SettlementLine]:
        """The same report as `SimulatedRail.settlement_report`, at this bank's clock."""
        now = self._clock()
        return self._journal.read(lambda state: state.settlement_report(now))


# The decisions taken under the journal's lock: (records to append, answer).


def _receive(
    payout: RailPayout, now: float, settings: SimulationSettings, state: RailJournalState
) -> tuple[list[Record], tuple[RailStatus, bool]]:
    earlier = state.status(payout.key, now)
    if earlier is not None:
        return [duplicate_record(payout.key, now)], (earlier, False)
    submission = Submission(payout, now, plan_payout(payout, now, settings))
    status = payout_status(submission, None, None, now)  # no override can exist yet
    return [submission_record(submission)], (status, True)


def _all_statuses(state: RailJournalState, *, now: float) -> list[RailStatus]:
    return [status for key in state.submissions if (status := state.status(key, now)) is not None]


def _acknowledge(
    through: dict[_NoticeKey, int | None], state: RailJournalState
) -> tuple[list[Record], None]:
    records: list[Record] = []
    for (kind, reference), delivered in through.items():
        latest = delivered
        if latest is None:
            copies = [
                sequence
                for sequence, notice in state.inbound
                if notice.kind is kind and notice.reference == reference
            ]
            if not copies:
                continue  # nothing by that name: acknowledging it changes nothing
            latest = max(copies)
        if state.acked_through.get((kind, reference), -1) < latest:
            records.append(ack_record(kind, reference, latest))
    return records, None


def _return_credit(
    reference: str, reason: str, now: float, state: RailJournalState
) -> tuple[list[Record], InboundNotice]:
    credit = state.credits.get(reference)
    if credit is None:
        raise ValueError(f"no credit with reference {reference!r} to return")
    notice = dataclasses.replace(credit, kind=InboundKind.RETURN, reason=reason)
    return [inbound_record(notice, now)], notice


def _override(
    key: str, override: Override, required: RailState, state: RailJournalState
) -> tuple[list[Record], bool]:
    current = state.status(key, override.at)
    if current is None or current.state is not required:
        return [], False
    if required is RailState.PROCESSING:
        return [failure_record(key, override)], True
    return [return_record(key, override)], True
