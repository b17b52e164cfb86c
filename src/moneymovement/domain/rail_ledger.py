"""How payouts, inbound transfers and external accounts change the ledger
(docs/payouts.md): each state change is one command, decided with its money movements
and its events in the same transaction as everything else (domain/ledger.py).

A payout's money: at creation a hold of its amount from the source account to the
rail's settlement account (and one of its fee to the fee account), owned by the payout
(only it moves them, and they never expire). POSTED captures both holds; FAILED and
CANCELED void them; RETURNED is a new transfer of the amount back from the settlement
account (the fee is kept). An inbound credit is a transfer from the settlement account
to the account, with the account's availability; its return reverses that transfer.

The rail's settlement account is DEBIT-normal (the money at or in transit to the bank,
as the bank holds it for us): a payout credits it, an inbound credit debits it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from moneymovement.domain import ids
from moneymovement.domain.accounts import OverdraftMode
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.commands import CreateAccount
from moneymovement.domain.errors import Reason, Rejected, account_not_found
from moneymovement.domain.events import Event, EventType
from moneymovement.domain.funds import EndKind
from moneymovement.domain.holds import post_hold, void_hold
from moneymovement.domain.payouts import (
    ExternalAccount,
    ExternalAccountState,
    InboundState,
    InboundTransfer,
    Payout,
    PayoutState,
    can_move,
    external_account_not_found,
    inbound_not_found,
    payout_not_found,
    settlement_external_id,
)
from moneymovement.domain.reversals import ReversalRequest, reverse
from moneymovement.domain.transfers import NewTransfer, Transfer, TransferSpec, TransferState

if TYPE_CHECKING:
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
    from moneymovement.domain.ledger import Issued, _Fork

_PAYOUT_EVENTS = {
    PayoutState.PENDING: EventType.PAYOUT_CREATED,
    PayoutState.PROCESSING: EventType.PAYOUT_PROCESSING,
    PayoutState.POSTED: EventType.PAYOUT_POSTED,
    PayoutState.FAILED: EventType.PAYOUT_FAILED,
    PayoutState.CANCELED: EventType.PAYOUT_CANCELED,
    PayoutState.RETURNED: EventType.PAYOUT_RETURNED,
}


def create_external_account(
    fork: _Fork, command: CreateExternalAccount, issued: Issued
) -> ExternalAccount:
    external = ExternalAccount(
        id=ids.new_id(ids.EXTERNAL_ACCOUNT),
        rail=command.rail,
        currency_code=command.currency_code,
        routing_reference=command.routing_reference,
        last4=command.last4,
        fingerprint=command.fingerprint,
        holder_name=command.holder_name,
        metadata=command.metadata,
        state=ExternalAccountState.ACTIVE,
        request_id=issued.request_id,
        created_at=fork.now,
        updated_at=fork.now,
    )
    fork.records[external.id] = external
    return external


def disable_external_account(
    fork: _Fork, command: DisableExternalAccount, issued: Issued
) -> ExternalAccount:
    external = _external(fork, command.external_account_id)
    if external.state is ExternalAccountState.DISABLED:
        return external
    disabled = replace(external, state=ExternalAccountState.DISABLED, updated_at=fork.now)
    fork.records[disabled.id] = disabled
    return disabled


def create_payout(fork: _Fork, command: CreatePayout, issued: Issued) -> Payout:
    external = _external(fork, command.external_account_id)
    if external.state is not ExternalAccountState.ACTIVE:
        raise Rejected(
            Reason.EXTERNAL_ACCOUNT_DISABLED,
            f"external account {external.id} is disabled",
            {"external_account_id": external.id},
        )
    if external.currency_code != command.currency_code:
        raise Rejected(
            Reason.CURRENCY_MISMATCH,
            f"external account {external.id} is in {external.currency_code}",
            {"external_account_id": external.id, "account_currency_code": external.currency_code},
        )
    payout_id = ids.new_id(ids.PAYOUT)
    source = fork.accounts.get(command.account_id)
    if source is None:
        raise account_not_found(command.account_id)
    if source.normal_balance is not NormalBalance.CREDIT:
        raise Rejected(
            Reason.INVALID_PAYOUT_SOURCE,
            f"account {source.id} is DEBIT-normal: a payout pays out money someone owns",
            {"account_id": source.id, "normal_balance": source.normal_balance.value},
        )
    _open_settlement(fork, external.rail, command.currency_code, command.settlement_account_id,
                     issued)  # fmt: skip
    spend = command.amount_minor + command.fee_minor
    try:
        hold = _hold(fork, issued, payout_id, command.settlement_account_id, command.amount_minor,
                     command, "payout")  # fmt: skip
        fee = None
        if command.fee_minor:
            fee = _hold(fork, issued, payout_id, command.fee_account_id, command.fee_minor,
                        command, "payout fee")  # fmt: skip
    except Rejected as refusal:
        raise _not_yet_available(refusal, spend) from None
    payout = Payout(
        id=payout_id,
        request_id=issued.request_id,
        account_id=command.account_id,
        external_account_id=external.id,
        settlement_account_id=command.settlement_account_id,
        rail=external.rail,
        amount_minor=command.amount_minor,
        currency_code=command.currency_code,
        method=command.payout_method,
        state=PayoutState.PENDING,
        hold_transfer_id=hold.id,
        submit_after=fork.now + timedelta(seconds=command.submit_delay_s),
        created_at=fork.now,
        updated_at=fork.now,
        description=command.description,
        metadata=command.metadata,
        fee_minor=command.fee_minor,
        fee_account_id=command.fee_account_id or None,
        fee_transfer_id=None if fee is None else fee.id,
        trace_id=issued.trace_id,
    )
    _file(fork, payout, issued)
    return payout


def cancel_payout(fork: _Fork, command: CancelPayout, issued: Issued) -> Payout:
    payout = _payout(fork, command.payout_id, command.holds)
    if payout.state is PayoutState.CANCELED:
        return payout
    if not can_move(payout.state, PayoutState.CANCELED):
        raise Rejected(
            Reason.PAYOUT_NOT_CANCELABLE,
            f"payout {payout.id} is {payout.state.value}: only a PENDING payout can be canceled",
            {"payout_id": payout.id, "state": payout.state.value},
        )
    _void_holds(fork, payout, issued)
    canceled = replace(payout, state=PayoutState.CANCELED, updated_at=fork.now, settled_at=fork.now)
    _file(fork, canceled, issued)
    return canceled


def start_payout(fork: _Fork, command: StartPayout, issued: Issued) -> Payout | None:
    payout = _payout(fork, command.payout_id, command.holds)
    if payout.state is not PayoutState.PENDING:
        return None
    started = replace(
        payout, state=PayoutState.PROCESSING, updated_at=fork.now, processing_at=fork.now
    )
    _file(fork, started, issued)
    return started


def settle_payout(fork: _Fork, command: SettlePayout, issued: Issued) -> Payout | None:
    """Moves the payout to where the rail says it is. A return the rail reports while
    the payout is still PROCESSING here means it was paid first: both steps are taken,
    in order. A report of where the payout already is, or of a state behind it, changes
    nothing (rails repeat and reorder their callbacks)."""
    payout = _payout(fork, command.payout_id, command.holds)
    target = command.state
    if target is PayoutState.RETURNED and payout.state is PayoutState.PROCESSING:
        payout = _post(fork, payout, issued)
    if not can_move(payout.state, target):
        return None
    if target is PayoutState.POSTED:
        return _post(fork, payout, issued)
    if target is PayoutState.FAILED:
        _void_holds(fork, payout, issued)
        failed = replace(
            payout,
            state=PayoutState.FAILED,
            failure_reason=command.reason,
            updated_at=fork.now,
            settled_at=fork.now,
        )
        _file(fork, failed, issued)
        return failed
    assert target is PayoutState.RETURNED
    # The money comes back as a reversal of the captured payout: available again at
    # once (it was available before it left), whatever the account's policy says of new
    # credits; the fee is kept.
    back = _reverse_owned(
        fork, fork.transfers[payout.hold_transfer_id], payout.id,
        f"payout {payout.id} returned: {command.reason}", issued,
    )  # fmt: skip
    returned = replace(
        payout,
        state=PayoutState.RETURNED,
        return_transfer_id=back.id,
        return_reason=command.reason,
        updated_at=fork.now,
        returned_at=fork.now,
    )
    _file(fork, returned, issued)
    return returned


def receive_inbound(fork: _Fork, command: ReceiveInbound, issued: Issued) -> InboundTransfer:
    inbound_id = ids.new_id(ids.INBOUND)
    _open_settlement(fork, command.rail, command.currency_code, command.settlement_account_id,
                     issued)  # fmt: skip
    spec = TransferSpec(
        debit_account_id=command.settlement_account_id,
        credit_account_id=command.account_id,
        amount_minor=command.amount_minor,
        currency_code=command.currency_code,
        description=command.description or f"received over {command.rail}",
        metadata={"rail_reference": command.rail_reference},
        owner_id=inbound_id,
    )
    new = NewTransfer(ids.new_id(ids.TRANSFER), issued.request_id, fork.now, issued.trace_id)
    credit, entries, parts = fork.open_transfer(spec, new)
    fork.add_transfer(credit, entries)
    fork.schedule(credit, parts)
    fork.tell(EventType.TRANSFER_CREATED, issued, credit)
    inbound = InboundTransfer(
        id=inbound_id,
        request_id=issued.request_id,
        rail=command.rail,
        rail_reference=command.rail_reference,
        account_id=command.account_id,
        settlement_account_id=command.settlement_account_id,
        amount_minor=command.amount_minor,
        currency_code=command.currency_code,
        state=InboundState.RECEIVED,
        transfer_id=credit.id,
        created_at=fork.now,
        updated_at=fork.now,
        description=spec.description,
        trace_id=issued.trace_id,
    )
    _file_inbound(fork, inbound, EventType.INBOUND_TRANSFER_RECEIVED, credit, issued)
    return inbound


def return_inbound(fork: _Fork, command: ReturnInbound, issued: Issued) -> InboundTransfer | None:
    """Reverses the credit in full: from its parts not available yet first, then from
    what is available (domain/reversals.py). Refused (INSUFFICIENT_FUNDS) when the
    account has spent it: the return then waits, told to the operator."""
    inbound = fork.records.get(command.inbound_id)
    if not isinstance(inbound, InboundTransfer) or inbound.transfer_id != command.transfer_id:
        raise inbound_not_found(command.inbound_id)
    if inbound.state is InboundState.RETURNED:
        return None
    reversal = _reverse_owned(
        fork, fork.transfers[inbound.transfer_id], inbound.id,
        f"returned by {inbound.rail}: {command.reason}", issued,
    )  # fmt: skip
    returned = replace(
        inbound,
        state=InboundState.RETURNED,
        return_transfer_id=reversal.id,
        return_reason=command.reason,
        updated_at=fork.now,
        returned_at=fork.now,
    )
    _file_inbound(fork, returned, EventType.INBOUND_TRANSFER_RETURNED, reversal, issued)
    return returned


def _reverse_owned(
    fork: _Fork, original: Transfer, owner_id: str, description: str, issued: Issued
) -> Transfer:
    """Reverses all of `original` (domain/reversals.py: its parts not available yet
    first), the reversal owned by `owner_id` too."""
    new = NewTransfer(ids.new_id(ids.TRANSFER), issued.request_id, fork.now, issued.trace_id)
    # A bank return the account has spent is covered by its negative-balance reserve,
    # when it names one, as a refund is (domain/reserve.py).
    remaining = original.posted_amount_minor - original.reversed_amount_minor
    fork.cover(original, remaining, new.transfer_id, issued)
    reversal, updated, entries, endings = reverse(
        fork.accounts,
        original,
        ReversalRequest(original.id, 0, description[:500]),
        new,
        fork.open_funds_of(original),
        fork.debit_usage(original.credit_account_id),
    )
    reversal = replace(reversal, owner_id=owner_id)
    fork.count_debit(reversal.debit_account_id, reversal.amount_minor)
    fork.add_transfer(reversal, entries)
    fork.change_transfer(updated, [])
    fork.end_funds(endings, EndKind.REVERSED, issued.request_id)
    fork.tell(EventType.TRANSFER_CREATED, issued, reversal)
    fork.tell(EventType.TRANSFER_REVERSED, issued, updated)
    return reversal


def _open_settlement(
    fork: _Fork, rail: str, currency_code: str, named: str, issued: Issued
) -> None:
    """Opens the rail's settlement account for the currency if this is its first use
    (`named`: its id, payouts.settlement_account_id, which the service computes for the
    locks):
    in the transaction of the payout or credit that needs it, so a refused one opens
    nothing. DEBIT-normal (the money the bank holds for us) with no overdraft limit (a
    payout credits it below zero until the bank's statement is booked against it)."""
    if named in fork.accounts:
        return
    fork.open_account(
        named,
        CreateAccount(
            currency_code=currency_code,
            normal_balance=NormalBalance.DEBIT,
            overdraft_mode=OverdraftMode.UNLIMITED,
            external_id=settlement_external_id(rail, currency_code),
            name=f"{rail} rail settlement ({currency_code})",
        ),
        issued,
    )


def _external(fork: _Fork, external_account_id: str) -> ExternalAccount:
    external = fork.records.get(external_account_id)
    if not isinstance(external, ExternalAccount):
        raise external_account_not_found(external_account_id)
    return external


def _payout(fork: _Fork, payout_id: str, holds: tuple[str, ...]) -> Payout:
    """The payout, read with its holds locked (the service named them: they must be
    the payout's own, or another payout could be moved under these locks)."""
    payout = fork.records.get(payout_id)
    if not isinstance(payout, Payout):
        raise payout_not_found(payout_id)
    if payout.transfer_ids != holds:
        raise payout_not_found(payout_id)
    return payout


def _hold(
    fork: _Fork,
    issued: Issued,
    payout_id: str,
    credit_account_id: str,
    amount_minor: int,
    command: CreatePayout,
    what: str,
) -> Transfer:
    spec = TransferSpec(
        debit_account_id=command.account_id,
        credit_account_id=credit_account_id,
        amount_minor=amount_minor,
        currency_code=command.currency_code,
        description=(command.description or what)[:500],
        metadata=command.metadata,
        pending=True,
        owner_id=payout_id,
    )
    new = NewTransfer(ids.new_id(ids.TRANSFER), issued.request_id, fork.now, issued.trace_id)
    hold, entries, _ = fork.open_transfer(spec, new)
    fork.add_transfer(hold, entries)
    fork.tell(EventType.TRANSFER_CREATED, issued, hold)
    return hold


def _not_yet_available(refusal: Rejected, spend: int) -> Rejected:
    """INSUFFICIENT_FUNDS for money the account has, but not available yet (credits
    still pending availability) becomes FUNDS_NOT_YET_AVAILABLE: the caller can wait."""
    if refusal.reason is not Reason.INSUFFICIENT_FUNDS:
        return refusal
    meta = refusal.metadata
    pending = int(meta.get("pending_availability_minor", "0"))
    spendable = int(meta.get("available_minor", "0")) - int(meta.get("floor_minor", "0"))
    if pending and spend <= spendable + pending:
        return Rejected(
            Reason.FUNDS_NOT_YET_AVAILABLE,
            f"account {meta.get('account_id')} has the funds, but not all available yet",
            dict(meta),
        )
    return refusal


def _post(fork: _Fork, payout: Payout, issued: Issued) -> Payout:
    for hold_id in payout.transfer_ids:
        hold = fork.transfers[hold_id]
        posted, entries, parts = post_hold(fork.accounts, hold, 0, fork.now, issued.request_id)
        fork.change_transfer(posted, entries)
        fork.schedule(posted, parts)
        fork.tell(EventType.TRANSFER_POSTED, issued, posted)
    posted_payout = replace(
        payout, state=PayoutState.POSTED, updated_at=fork.now, settled_at=fork.now
    )
    _file(fork, posted_payout, issued)
    return posted_payout


def _void_holds(fork: _Fork, payout: Payout, issued: Issued) -> None:
    for hold_id in payout.transfer_ids:
        hold = fork.transfers[hold_id]
        if hold.state is not TransferState.PENDING:
            continue
        voided, entries = void_hold(fork.accounts, hold, fork.now, issued.request_id)
        fork.recount(hold, voided)
        fork.change_transfer(voided, entries)
        fork.tell(EventType.TRANSFER_VOIDED, issued, voided)


def _file(fork: _Fork, payout: Payout, issued: Issued) -> None:
    """Keeps the payout's new state and tells it, with the accounts of its holds."""
    fork.records[payout.id] = payout
    accounts = fork.accounts_of([fork.transfers[t] for t in payout.transfer_ids])
    fork.events.append(
        Event(
            _PAYOUT_EVENTS[payout.state],
            issued.request_id,
            issued.trace_id,
            accounts=accounts,
            payout=payout,
        )
    )


def _file_inbound(
    fork: _Fork, inbound: InboundTransfer, kind: EventType, moved: Transfer, issued: Issued
) -> None:
    fork.records[inbound.id] = inbound
    fork.events.append(
        Event(
            kind,
            issued.request_id,
            issued.trace_id,
            accounts=fork.accounts_of([moved]),
            inbound=inbound,
        )
    )
