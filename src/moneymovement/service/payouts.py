"""Payout, external account and inbound transfer use cases (docs/payouts.md).

Every change is a command for the write pipeline (service/pipeline.py). A payout's
change names the holds it owns, read here first: they never change, and the pipeline
locks them, which is what orders the payout's changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from moneymovement.domain.commands import (
    CancelPayout,
    CreateExternalAccount,
    CreatePayout,
    DisableExternalAccount,
    ReceiveInbound,
    ReturnInbound,
    SettlePayout,
    StartPayout,
)
from moneymovement.domain.payouts import (
    ExternalAccount,
    InboundTransfer,
    Payout,
    PayoutMethod,
    PayoutState,
    external_account_not_found,
    fingerprint,
    inbound_not_found,
    payout_not_found,
    settlement_account_id,
)
from moneymovement.rails.base import SettlementKind, SettlementLine
from moneymovement.rails.reconcile import LedgerItem, Reconciliation, reconcile
from moneymovement.service.holder_access import sees_in
from moneymovement.service.pages import Page, decode_time_cursor, paginate, scope_of, time_position
from moneymovement.service.pipeline import WritePipeline
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.session import Session

T = TypeVar("T")


class PayoutService:
    """Money in and out over rails, for callers and for the payout worker."""

    def __init__(
        self,
        pipeline: WritePipeline,
        uow: UnitOfWork,
        standard_delay_s: float,
    ) -> None:
        self._pipeline = pipeline
        self._uow = uow
        self._standard_delay_s = standard_delay_s

    async def _read(self, caller: Caller, work: Callable[[Session], Awaitable[T]]) -> T:
        """A read in a read transaction that declares the tenant (row-level security;
        storage/sql/sessions.sql): these reads are plain queries, not the one-statement
        form that declares the tenant itself."""
        return await self._uow.read(caller, work, statements=2)

    # External accounts

    async def create_external_account(
        self,
        caller: Caller,
        request_id: str,
        *,
        rail: str,
        currency_code: str,
        routing_reference: str,
        account_number: str,
        holder_name: str = "",
        metadata: dict[str, str] | None = None,
    ) -> ExternalAccount:
        """Registers a destination; the account number is kept only as its last four
        digits and a fingerprint."""
        command = CreateExternalAccount(
            rail=rail,
            currency_code=currency_code,
            routing_reference=routing_reference,
            last4=account_number[-4:],
            fingerprint=fingerprint(caller.tenant_id, routing_reference, account_number),
            holder_name=holder_name,
            metadata=metadata or {},
        )
        return await self._pipeline.submit(caller, request_id, command)

    async def disable_external_account(
        self, caller: Caller, request_id: str, external_account_id: str
    ) -> ExternalAccount:
        """Raises: Rejected: EXTERNAL_ACCOUNT_NOT_FOUND."""
        command = DisableExternalAccount(external_account_id)
        return await self._pipeline.submit(caller, request_id, command)

    async def external_account(self, caller: Caller, external_account_id: str) -> ExternalAccount:
        found = await self._read(caller, lambda s: s.payouts.external_account(external_account_id))
        if found is None:
            raise external_account_not_found(external_account_id)
        return found

    async def external_accounts(
        self, caller: Caller, fingerprint_filter: str | None, size: int, token: str
    ) -> Page[ExternalAccount]:
        scope = scope_of("external_accounts", fingerprint_filter or "")
        before = decode_time_cursor(token, scope)
        rows = await self._read(
            caller, lambda s: s.payouts.external_accounts(before, fingerprint_filter, size + 1)
        )
        return paginate(rows, size, lambda x: time_position(x.created_at, x.id), scope)

    # Payouts

    async def create_payout(self, caller: Caller, request_id: str, command: CreatePayout) -> Payout:
        """Holds the amount (and fee) now; the worker hands the payout to the rail.

        Raises:
            Rejected: EXTERNAL_ACCOUNT_NOT_FOUND, EXTERNAL_ACCOUNT_DISABLED,
                CURRENCY_MISMATCH, FUNDS_NOT_YET_AVAILABLE, and a hold's refusals
                (ACCOUNT_NOT_FOUND, INSUFFICIENT_FUNDS, ACCOUNT_FROZEN, ...).
        """
        # The rail's settlement account is named for the locks; the payout opens it if it
        # is the rail's first in the currency (domain/rail_ledger.py), so a refused payout
        # opens nothing.
        external = await self.external_account(caller, command.external_account_id)
        delay = self._standard_delay_s if command.payout_method is PayoutMethod.STANDARD else 0
        command = replace(
            command,
            rail=external.rail,
            settlement_account_id=settlement_account_id(
                caller.tenant_id, external.rail, command.currency_code
            ),
            submit_delay_s=delay,
        )
        return await self._pipeline.submit(caller, request_id, command)

    async def cancel_payout(self, caller: Caller, request_id: str, payout_id: str) -> Payout:
        """Raises: Rejected: PAYOUT_NOT_FOUND, PAYOUT_NOT_CANCELABLE."""
        payout = await self.payout(caller, payout_id)
        command = CancelPayout(payout.id, payout.transfer_ids)
        return await self._pipeline.submit(caller, request_id, command)

    async def start(self, caller: Caller, payout: Payout) -> Payout | None:
        """The worker's: PENDING -> PROCESSING (None: not PENDING any more)."""
        command = StartPayout(payout.id, payout.transfer_ids)
        return await self._pipeline.submit(caller, f"payout:{payout.id}:start", command)

    async def settle(
        self, caller: Caller, payout: Payout, state: PayoutState, reason: str
    ) -> Payout | None:
        """The worker's: to where the rail says the payout is (None: nothing to do)."""
        command = SettlePayout(payout.id, payout.transfer_ids, state, reason)
        return await self._pipeline.submit(
            caller, f"payout:{payout.id}:{state.value.lower()}", command
        )

    async def payout(self, caller: Caller, payout_id: str) -> Payout:
        async def read(session: Session) -> Payout | None:
            found = await session.payouts.payout(payout_id)
            if found is None or not await sees_in(session, caller, [found.account_id]):
                return None
            return found

        found = await self._read(caller, read)
        if found is None:
            raise payout_not_found(payout_id)
        return found

    async def payouts(
        self,
        caller: Caller,
        account_id: str | None,
        state: PayoutState | None,
        external_account_id: str | None,
        size: int,
        token: str,
    ) -> Page[Payout]:
        scope = scope_of(
            "payouts", account_id or "", state.value if state else "", external_account_id or ""
        )
        before = decode_time_cursor(token, scope)
        rows = await self._read(
            caller,
            lambda s: s.payouts.payouts(
                before, account_id, state, external_account_id, size + 1, caller.holder_id
            ),
        )
        return paginate(rows, size, lambda p: time_position(p.created_at, p.id), scope)

    # Inbound transfers

    async def receive(
        self,
        caller: Caller,
        rail: str,
        reference: str,
        account_id: str,
        amount_minor: int,
        currency_code: str,
        description: str,
    ) -> InboundTransfer:
        """The worker's: credits money that arrived, once per rail reference (a notice
        delivered again answers the inbound transfer made the first time)."""
        existing = await self._read(
            caller, lambda s: s.payouts.inbound_by_reference(rail, reference)
        )
        if existing is not None:
            return existing
        settlement = settlement_account_id(caller.tenant_id, rail, currency_code)
        command = ReceiveInbound(
            rail, reference, account_id, settlement, amount_minor, currency_code, description
        )
        return await self._pipeline.submit(caller, f"inbound:{rail}:{reference}", command)

    async def return_inbound(
        self, caller: Caller, rail: str, reference: str, reason: str
    ) -> InboundTransfer | None:
        """The worker's: the rail took a credit back (None: returned already).

        Raises:
            Rejected: INBOUND_TRANSFER_NOT_FOUND (never received here), and the
                reversal's (INSUFFICIENT_FUNDS: the money was spent).
        """
        inbound = await self._read(
            caller, lambda s: s.payouts.inbound_by_reference(rail, reference)
        )
        if inbound is None:
            raise inbound_not_found(f"{rail}:{reference}")
        command = ReturnInbound(inbound.id, inbound.transfer_id, reason)
        return await self._pipeline.submit(caller, f"inbound:{rail}:{reference}:return", command)

    async def inbound_transfer(self, caller: Caller, inbound_id: str) -> InboundTransfer:
        async def read(session: Session) -> InboundTransfer | None:
            found = await session.payouts.inbound(inbound_id)
            if found is None or not await sees_in(session, caller, [found.account_id]):
                return None
            return found

        found = await self._read(caller, read)
        if found is None:
            raise inbound_not_found(inbound_id)
        return found

    async def inbound_transfers(
        self, caller: Caller, account_id: str | None, size: int, token: str
    ) -> Page[InboundTransfer]:
        scope = scope_of("inbound_transfers", account_id or "")
        before = decode_time_cursor(token, scope)
        rows = await self._read(
            caller,
            lambda s: s.payouts.inbound_transfers(before, account_id, size + 1, caller.holder_id),
        )
        return paginate(rows, size, lambda i: time_position(i.created_at, i.id), scope)

    # Reconciliation

    async def reconcile(
        self, caller: Caller, rail: str, report: Sequence[SettlementLine]
    ) -> Reconciliation:
        """Compares the rail's report with the ledger (reconcile_rail). Changes nothing."""
        return await reconcile_rail(self._uow, caller, rail, report)


async def reconcile_rail(
    uow: UnitOfWork, caller: Caller, rail: str, report: Sequence[SettlementLine]
) -> Reconciliation:
    """Compares a rail's report (its lines of the caller's tenant) with the ledger's
    payouts handed to that rail and its inbound transfers (rails/reconcile.py): for the
    Reconcile RPC and `moneymovement reconcile`. Reads only: a break is for an operator."""

    async def read(session: Session) -> list[tuple[str, str, int, str, str]]:
        return await session.payouts.ledger_items(rail)

    items = await uow.read(caller, read, statements=2)
    ledger = [
        LedgerItem(SettlementKind(kind), caller.tenant_id, reference, amount, currency, state)
        for kind, reference, amount, currency, state in items
    ]
    return reconcile([line for line in report if line.tenant_id == caller.tenant_id], ledger)
