"""Works a rail: hands payouts to it exactly once, follows them to the end, and books
the money it brings in (docs/payouts.md, "Exactly once").

Each round:
1. PENDING payouts past their submission time: each is marked PROCESSING in its own
   transaction first, and only then handed to the rail under its own id as the key.
2. The rail's callbacks (hints that repeat, come out of order or are lost).
3. A page of PROCESSING payouts (each round the next page, so all of them in turn) and,
   every 20th round, all those POSTED recently, which a rail may still return (page
   after page), are asked about: `status(key)` is the truth. A
   payout the rail says it never received is handed to it again under the same key (the
   marking committed, the submission did not happen: a crash between them); never under
   a new key.
4. Inbound notices: credited once per rail reference, acknowledged only once applied.

Every change is a command of the write pipeline that re-checks the payout's state under
the lock of its holds, so a round run by several replicas at once, or again after a
crash, moves each payout once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog

from moneymovement.domain.errors import DomainError, Rejected
from moneymovement.domain.payouts import TERMINAL, Payout, PayoutState
from moneymovement.rails.base import (
    InboundKind,
    InboundNotice,
    Rail,
    RailPayout,
    RailState,
    RailStatus,
    RailTimeout,
    RailUnavailable,
)
from moneymovement.service.payouts import PayoutService
from moneymovement.service.unit_of_work import Caller
from moneymovement.storage.errors import StorageError
from moneymovement.storage.session import Database, PageCursor

log = structlog.get_logger("moneymovement.payouts")
_BATCH = 100
_PER_STEP_S = 10.0
# A PROCESSING payout the rail has not heard of is handed over again only after this
# long: the worker that marked it may still be handing it over right now.
_RESUBMIT_AFTER_S = 5.0
# How long after posting a payout is still asked about (a rail may return it).
RETURNS_WITHIN_S = 600.0
# POSTED payouts are asked about only every this many rounds: a return is rare and its
# callback usually comes; asking is the backstop for a lost one, and asking about every
# recently POSTED payout every round would be a read per payout per round per replica.
_POSTED_EVERY = 20


class PayoutWorker:
    """Works one rail every `interval_s` seconds."""

    def __init__(
        self, database: Database, payouts: PayoutService, rail: Rail, interval_s: float
    ) -> None:
        self._database = database
        self._payouts = payouts
        self._rail = rail
        self._interval_s = interval_s
        self._rounds = 0
        # Where the next page of PROCESSING payouts starts.
        self._processing_from: PageCursor | None = None
        self._tenants: dict[str, str] = {}  # payout id -> tenant, of payouts seen here

    async def run(self) -> None:
        """Rounds until cancelled; a failed round is logged and retried next round."""
        while True:
            try:
                await self.round()
            except (DomainError, StorageError, RailUnavailable, RailTimeout) as error:
                log.warning("payout_round_failed", error=str(error))
            except Exception:
                log.exception("payout_round_crashed")
            await asyncio.sleep(self._interval_s)

    async def round(self) -> None:
        due = await self._database.payouts_due(_BATCH)
        for tenant, payout_id in due:
            await self._step(tenant, self._submit, payout_id)
        # A callback only says which payout to ask about now; one of a payout this
        # process has not seen is asked about below anyway.
        hinted = {s.key for s in await self._rail.callbacks() if s.key in self._tenants}
        for payout_id in sorted(hinted):
            await self._step(self._tenants[payout_id], self._follow, payout_id)
        self._rounds += 1
        posted_too = self._rounds % _POSTED_EVERY == 1
        window = RETURNS_WITHIN_S if posted_too else 0.0
        page = await self._database.payouts_in_flight(_BATCH, window, self._processing_from, None)
        # The next round asks about the next PROCESSING page (after the newest, the oldest
        # again), so payouts a rail never takes cannot keep newer ones from being asked.
        self._processing_from = page.processing_next
        in_flight = page.processing + page.posted
        # A POSTED round walks the whole window, page after page: a payout must be asked
        # about before it leaves the window, however many are posted meanwhile.
        while posted_too and page.posted_next is not None:
            page = await self._database.payouts_in_flight(_BATCH, window, None, page.posted_next)
            in_flight += page.posted
        for tenant, payout_id in dict.fromkeys(in_flight):
            if payout_id not in hinted:
                await self._step(tenant, self._follow, payout_id)
        notices = await self._rail.inbound()
        applied = [n for n in notices if await self._book(n)]
        if applied:
            await self._rail.ack_inbound(applied)

    async def _step(self, tenant: str, work: object, *args: object) -> bool:
        """One payout's step in its tenant's name; a failure is logged, never allowed to
        stop the round for the other payouts."""
        deadline = asyncio.get_running_loop().time() + _PER_STEP_S
        caller = Caller(tenant, deadline)
        try:
            await work(caller, *args)  # type: ignore[operator]
        except (DomainError, StorageError, RailUnavailable, RailTimeout) as error:
            log.warning("payout_step_failed", tenant_id=tenant, error=str(error), args=args[:1])
            return False
        except Exception:
            log.exception("payout_step_crashed", tenant_id=tenant, args=args[:1])
            return False
        return True

    async def _submit(self, caller: Caller, payout_id: str) -> None:
        payout = await self._payouts.payout(caller, payout_id)
        if payout.rail != self._rail.name or payout.state is not PayoutState.PENDING:
            return
        started = await self._payouts.start(caller, payout)
        if started is None:
            return  # canceled meanwhile, or another replica started it
        log.info("payout_processing", payout_id=payout.id, tenant_id=caller.tenant_id)
        self._tenants[payout.id] = caller.tenant_id
        await self._hand_over(caller, started)

    async def _hand_over(self, caller: Caller, payout: Payout) -> None:
        """Submits a PROCESSING payout the rail has not got: the answer is applied, a
        lost answer (RailTimeout) or a refusal (RailUnavailable) leaves the payout
        PROCESSING for the next round's question."""
        try:
            status = await self._rail.submit(await self._rail_payout(caller, payout))
        except RailTimeout:
            log.warning("payout_submission_answer_lost", payout_id=payout.id)
            return
        except RailUnavailable:
            log.warning("payout_rail_unavailable", payout_id=payout.id)
            return
        await self._apply(caller, payout, status)

    async def _follow(self, caller: Caller, payout_id: str) -> None:
        """Brings a payout to where the rail has it."""
        payout = await self._payouts.payout(caller, payout_id)
        if payout.rail != self._rail.name or payout.state in TERMINAL:
            self._tenants.pop(payout.id, None)
            return
        if len(self._tenants) > 100_000:  # hints only: losing them costs a round's delay
            self._tenants.clear()
        self._tenants[payout.id] = caller.tenant_id
        if payout.state is PayoutState.PENDING:
            return  # not handed over yet: step 1's
        status = await self._rail.status(payout.id)
        if status is None:
            if payout.state is PayoutState.PROCESSING and self._overdue(payout):
                log.warning("payout_unknown_to_rail_resubmitting", payout_id=payout.id)
                await self._hand_over(caller, payout)
            return
        await self._apply(caller, payout, status)

    async def _apply(self, caller: Caller, payout: Payout, status: RailStatus) -> None:
        if (
            status.amount_minor != payout.amount_minor
            or status.currency_code != payout.currency_code
        ):
            # Never booked: reconciliation shows it to an operator.
            log.error("payout_rail_amount_differs", payout_id=payout.id, rail=status.amount_minor)
            return
        target = {
            RailState.POSTED: PayoutState.POSTED,
            RailState.FAILED: PayoutState.FAILED,
            RailState.RETURNED: PayoutState.RETURNED,
        }.get(status.state)
        if target is None or target is payout.state:
            return
        moved = await self._payouts.settle(caller, payout, target, status.reason)
        if moved is not None:
            log.info(
                "payout_settled", payout_id=payout.id, state=moved.state.value,
                reason=status.reason, tenant_id=caller.tenant_id,
            )  # fmt: skip

    def _overdue(self, payout: Payout) -> bool:
        started = payout.processing_at or payout.updated_at
        return (datetime.now(UTC) - started).total_seconds() > _RESUBMIT_AFTER_S

    async def _rail_payout(self, caller: Caller, payout: Payout) -> RailPayout:
        external = await self._payouts.external_account(caller, payout.external_account_id)
        return RailPayout(
            key=payout.id,
            tenant_id=caller.tenant_id,
            amount_minor=payout.amount_minor,
            currency_code=payout.currency_code,
            method=payout.method.value,
            routing_reference=external.routing_reference,
            last4=external.last4,
            fingerprint=external.fingerprint,
        )

    async def _book(self, notice: InboundNotice) -> bool:
        """Applies one inbound notice; whether it may be acknowledged (applied now or
        before, or refused for good: a refusal is recorded and shown, not retried)."""
        deadline = asyncio.get_running_loop().time() + _PER_STEP_S
        caller = Caller(notice.tenant_id, deadline)
        try:
            if notice.kind is InboundKind.CREDIT:
                inbound = await self._payouts.receive(
                    caller, self._rail.name, notice.reference, notice.account_id,
                    notice.amount_minor, notice.currency_code, notice.description,
                )  # fmt: skip
                log.info("inbound_received", inbound_id=inbound.id, reference=notice.reference)
            else:
                await self._payouts.return_inbound(
                    caller, self._rail.name, notice.reference, notice.reason
                )
                log.info("inbound_returned", reference=notice.reference)
        except Rejected as refusal:
            # A credit refused (a closed account, ...) is refused for good: acknowledged
            # and left to reconciliation (MISSING_IN_LEDGER). A return that cannot be
            # made yet (the money was spent, or its credit is not booked yet) is asked
            # again next round.
            log.warning(
                "inbound_refused", reference=notice.reference, kind=notice.kind.value,
                reason=refusal.reason.value, error=str(refusal),
            )  # fmt: skip
            return notice.kind is InboundKind.CREDIT
        except (DomainError, StorageError) as error:  # unavailable, a deadline: next round
            log.warning("inbound_failed", reference=notice.reference, error=str(error))
            return False
        return True
