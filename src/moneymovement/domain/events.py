"""Events: what each state change was, with the resources as they were right after it.

The ledger (domain/ledger.py) records one or more events for every change it decides, in
the order it decides them; the write pipeline writes them in the same transaction as the
change (the outbox, docs/events.md), and EventService delivers them. Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from moneymovement.domain.accounts import Account
from moneymovement.domain.funds import ScheduledFunds
from moneymovement.domain.holders import Holder
from moneymovement.domain.monitors import BalanceMonitor
from moneymovement.domain.payouts import InboundTransfer, Payout
from moneymovement.domain.transfers import Transfer


class EventType(StrEnum):
    ACCOUNT_CREATED = "ACCOUNT_CREATED"
    ACCOUNT_UPDATED = "ACCOUNT_UPDATED"
    ACCOUNT_FROZEN = "ACCOUNT_FROZEN"
    ACCOUNT_UNFROZEN = "ACCOUNT_UNFROZEN"
    ACCOUNT_CLOSED = "ACCOUNT_CLOSED"
    # A new transfer: immediate (POSTED), a hold (PENDING), a reversal or a batch item.
    TRANSFER_CREATED = "TRANSFER_CREATED"
    # A hold ended: captured, voided, expired.
    TRANSFER_POSTED = "TRANSFER_POSTED"
    TRANSFER_VOIDED = "TRANSFER_VOIDED"
    TRANSFER_EXPIRED = "TRANSFER_EXPIRED"
    # A hold changed and stays open: captured in part (the rest still held), increased,
    # or given a later expiry.
    TRANSFER_CAPTURED = "TRANSFER_CAPTURED"
    TRANSFER_INCREMENTED = "TRANSFER_INCREMENTED"
    TRANSFER_EXTENDED = "TRANSFER_EXTENDED"
    # A transfer was (partly) reversed: its reversed amount rose; the reversal itself is
    # the TRANSFER_CREATED just before.
    TRANSFER_REVERSED = "TRANSFER_REVERSED"
    # An atomic CreateTransfers batch committed: after its items' TRANSFER_CREATED; it
    # names them (item_ids) with every account they moved, after the whole batch.
    BATCH_COMMITTED = "BATCH_COMMITTED"
    # Scheduled parts of credits became available: by their time (the sweeper, no
    # request id) or early (ReleaseFunds). Carries the parts and the account after.
    FUNDS_RELEASED = "FUNDS_RELEASED"
    # A balance monitor's condition became true / stopped being true (edge-triggered).
    BALANCE_MONITOR_TRIGGERED = "BALANCE_MONITOR_TRIGGERED"
    BALANCE_MONITOR_CLEARED = "BALANCE_MONITOR_CLEARED"
    # A payout changed state (docs/payouts.md): carries the payout after the change, with
    # the accounts its money moved (the transfers' own events come just before).
    PAYOUT_CREATED = "PAYOUT_CREATED"
    PAYOUT_PROCESSING = "PAYOUT_PROCESSING"
    PAYOUT_POSTED = "PAYOUT_POSTED"
    PAYOUT_FAILED = "PAYOUT_FAILED"
    PAYOUT_CANCELED = "PAYOUT_CANCELED"
    PAYOUT_RETURNED = "PAYOUT_RETURNED"
    # Money arrived from a rail and was credited / the rail took it back.
    INBOUND_TRANSFER_RECEIVED = "INBOUND_TRANSFER_RECEIVED"
    INBOUND_TRANSFER_RETURNED = "INBOUND_TRANSFER_RETURNED"
    # A holder was created / its name, metadata or status changed (docs/platforms.md).
    HOLDER_CREATED = "HOLDER_CREATED"
    HOLDER_UPDATED = "HOLDER_UPDATED"


@dataclass(frozen=True, slots=True)
class Event:
    """One change: its type, the request and trace that caused it, and the resources
    right after it (the transfers it carries, the accounts it touched, with their
    balances and versions at that moment)."""

    type: EventType
    request_id: str
    trace_id: str | None
    transfers: tuple[Transfer, ...] = ()
    accounts: tuple[Account, ...] = ()
    # BATCH_COMMITTED: its items' transfer ids, in order. It does not carry the items
    # again: each one's TRANSFER_CREATED, just before it, does.
    item_ids: tuple[str, ...] = ()
    funds: tuple[ScheduledFunds, ...] = ()  # FUNDS_RELEASED: the parts ended
    monitor: BalanceMonitor | None = None  # BALANCE_MONITOR_*: the monitor after the flip
    payout: Payout | None = None  # PAYOUT_*: the payout after the change
    inbound: InboundTransfer | None = None  # INBOUND_TRANSFER_*: after the change
    holder: Holder | None = None  # HOLDER_*: the holder after the change

    @property
    def account_ids(self) -> list[str]:
        return [a.id for a in self.accounts]

    @property
    def holder_ids(self) -> list[str]:
        named = {a.holder_id for a in self.accounts if a.holder_id}
        return sorted(named | ({self.holder.id} if self.holder else set()))


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class RecordedEvent:
    """An event as written: its place in the tenant's stream, and its time (the time of
    the transaction that made the change). Compared by identity: each is one read of a
    row, which the transport may render once for all the streams that send it."""

    position: int
    occurred_at: datetime
    event: Event


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a consumer wants: all of them when every part is empty."""

    types: frozenset[EventType] = frozenset()
    account_id: str | None = None
    holder_id: str | None = None

    def __bool__(self) -> bool:
        return bool(self.types or self.account_id or self.holder_id)

    def matches(self, event: Event) -> bool:
        if self.types and event.type not in self.types:
            return False
        if self.account_id and all(a.id != self.account_id for a in event.accounts):
            return False
        holder = self.holder_id
        return (
            not holder
            or any(a.holder_id == holder for a in event.accounts)
            or (event.holder is not None and event.holder.id == holder)
        )
