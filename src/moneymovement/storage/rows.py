"""Database rows to domain objects. The only place that knows the column names."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from moneymovement.domain.accounts import Account, AccountState, FreezeScope, OverdraftMode
from moneymovement.domain.balances import Balances, Direction, EntryKind, NormalBalance
from moneymovement.domain.events import Event, EventType, RecordedEvent
from moneymovement.domain.funds import (
    AT_ONCE,
    Availability,
    EndKind,
    FundsKind,
    ScheduledFunds,
    policy_from_json,
    policy_to_json,
)
from moneymovement.domain.holders import is_holder_id
from moneymovement.domain.ledger import PolicyChange
from moneymovement.domain.monitors import BalanceMonitor, MonitorField, MonitorOperator
from moneymovement.domain.payouts import InboundTransfer, Payout
from moneymovement.domain.transfers import (
    FINAL_KINDS,
    Entry,
    EventKind,
    ReserveMovement,
    Transfer,
    TransferEvent,
    TransferState,
)
from moneymovement.storage.holder_rows import holder_document, holder_from_row
from moneymovement.storage.rail_rows import record_document, record_from_row

Row = Mapping[str, Any]


def balances_from_row(row: Row) -> Balances:
    """The stored totals of an account or an entry row (an event's account document
    written before pending availability existed has none: zero)."""
    return Balances(
        posted_debits_minor=row["posted_debits_minor"],
        posted_credits_minor=row["posted_credits_minor"],
        pending_debits_minor=row["pending_debits_minor"],
        pending_credits_minor=row["pending_credits_minor"],
        pending_availability_minor=row.get("pending_availability_minor", 0),
        reserved_minor=row.get("reserved_minor", 0),
    )


def account_from_row(row: Row) -> Account:
    """An `accounts` row as an Account."""
    return Account(
        id=row["account_id"],
        external_id=row["external_id"],
        name=row["name"],
        currency_code=row["currency_code"],
        normal_balance=NormalBalance(row["normal_balance"]),
        overdraft_mode=OverdraftMode(row["overdraft_mode"]),
        overdraft_limit_minor=row["overdraft_limit_minor"],
        holder_id=row["holder_id"],
        metadata=row["metadata"],
        state=AccountState(row["state"]),
        version=row["version"],
        balances=balances_from_row(row),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        funds_policy=policy_from_json(row.get("funds_policy") or {}),
        freeze_scope=FreezeScope(row["freeze_scope"]) if row.get("freeze_scope") else None,
        freeze_reason=row.get("freeze_reason", ""),
        attributes_version=row.get("attributes_version") or 1,
        open_to_holders=bool(row.get("open_to_holders", False)),
        # An event's account document written before migration 0016 has neither.
        negative_balance_reserve_account_id=row.get("negative_balance_reserve_account_id") or "",
        reserve_debt_minor=row.get("reserve_debt_minor") or 0,
    )


def transfer_from_row(row: Row, reversals: list[dict[str, Any]] | None = None) -> Transfer:
    """A `transfers` row (with its reversals as JSON, in the row or given) as a Transfer
    with its history."""
    state = TransferState(row["state"])
    if reversals is None:
        reversals = row["reversals"]
    history = [
        TransferEvent(EventKind.CREATED, row["amount_minor"], row["created_at"], row["request_id"])
    ]
    steps = row.get("hold_steps")
    if steps:
        history += [_step_from_document(step) for step in steps]
    elif row["finalized_at"] is not None:
        # A hold that ended before holds kept their steps: its one step, from its state.
        posted = state is TransferState.POSTED
        history.append(
            TransferEvent(
                EventKind[state.value],
                row["posted_amount_minor"] if posted else row["amount_minor"],
                row["finalized_at"],
                row["finalized_request_id"] or "",
            )
        )
    history += [
        TransferEvent(
            EventKind.REVERSED,
            r["amount_minor"],
            datetime.fromisoformat(r["at"]),
            r["request_id"],
            r["id"],
        )
        for r in reversals
    ]
    history.sort(key=lambda event: event.at)  # stable: steps of one time keep their order
    return Transfer(
        id=row["transfer_id"],
        request_id=row["request_id"],
        debit_account_id=row["debit_account_id"],
        credit_account_id=row["credit_account_id"],
        amount_minor=row["amount_minor"],
        currency_code=row["currency_code"],
        state=state,
        description=row["description"],
        metadata=row["metadata"],
        expires_at=row["expires_at"],
        posted_amount_minor=row["posted_amount_minor"],
        reversed_amount_minor=row["reversed_amount_minor"],
        reversal_of_id=row["reversal_of_id"],
        reversal_ids=tuple(r["id"] for r in reversals),
        batch_id=row["batch_id"],
        trace_id=row["trace_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        history=tuple(history),
        availability=_availability(row.get("available_at"), row.get("availability_delay")),
        owner_id=row.get("owner_id"),
        over_capture_bps=row.get("over_capture_bps") or 0,
        reserve_movement=_reserve_movement(row.get("reserve_movement")),
    )


def _reserve_movement(value: str | None) -> ReserveMovement | None:
    return None if value is None else ReserveMovement(value)


def _step_from_document(step: dict[str, Any]) -> TransferEvent:
    expires_at = step.get("expires_at")
    return TransferEvent(
        EventKind(step["kind"]),
        step["amount_minor"],
        datetime.fromisoformat(step["at"]),
        step["request_id"],
        expires_at=None if expires_at is None else datetime.fromisoformat(expires_at),
    )


def _step_document(step: TransferEvent) -> dict[str, Any]:
    document = {
        "kind": step.kind.value,
        "amount_minor": step.amount_minor,
        "at": step.at.isoformat(),
        "request_id": step.request_id,
    }
    if step.expires_at is not None:
        document["expires_at"] = step.expires_at.isoformat()
    return document


def _availability(at: datetime | None, delay: timedelta | float | None) -> Availability:
    if at is None and delay is None:
        return AT_ONCE
    if isinstance(delay, int | float):  # an event's document keeps it in seconds
        delay = timedelta(seconds=delay)
    return Availability(at, delay)


def funds_from_row(row: Row) -> ScheduledFunds:
    """A `scheduled_funds` row as ScheduledFunds."""
    return ScheduledFunds(
        id=row["funds_id"],
        account_id=row["account_id"],
        transfer_id=row["transfer_id"],
        kind=FundsKind(row["kind"]),
        amount_minor=row["amount_minor"],
        available_at=row["available_at"],
        created_at=row["created_at"],
        remainder_of_id=row["remainder_of_id"],
        ended_at=row["ended_at"],
        end_kind=EndKind(row["end_kind"]) if row["end_kind"] else None,
        ended_amount_minor=row["ended_amount_minor"],
        end_request_id=row["end_request_id"],
        remainder_id=row["remainder_id"],
    )


def monitor_from_row(row: Row) -> BalanceMonitor:
    """A `balance_monitors` row as a BalanceMonitor."""
    return BalanceMonitor(
        id=row["monitor_id"],
        account_id=row["account_id"],
        field=MonitorField(row["field"]),
        operator=MonitorOperator(row["operator"]),
        threshold_minor=row["threshold_minor"],
        description=row["description"],
        triggered=row["triggered"],
        deleted=row["deleted"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def policy_change_from_row(row: Row) -> PolicyChange:
    """An `account_policy_changes` row."""
    return PolicyChange(
        account_id=row["account_id"],
        version=row["version"],
        before=policy_from_json(row["before"]),
        after=policy_from_json(row["after"]),
        request_id=row["request_id"],
        trace_id=row["trace_id"],
        at=row["changed_at"],
    )


def entry_from_row(row: Row) -> Entry:
    """An `entries` row as an Entry."""
    return Entry(
        account_id=row["account_id"],
        transfer_id=row["transfer_id"],
        direction=Direction(row["direction"]),
        kind=EntryKind(row["kind"]),
        amount_minor=row["amount_minor"],
        balances_after=balances_from_row(row),
        account_version=row["account_version"],
        created_at=row["created_at"],
        trace_id=row["trace_id"],
        description=row["description"],
        metadata=row["metadata"],
        counterparty_account_id=row["counterparty_account_id"],
    )


# Domain objects to rows of the tables' own row types, for write_batch (sql/ledger.sql).
# Each tuple is in the table's column order, spelled out once here by name and checked
# against the database by tests/integration/test_migrations.py.
ACCOUNT_COLUMNS = (
    "tenant_id", "account_id", "external_id", "name", "currency_code", "normal_balance",
    "overdraft_mode", "overdraft_limit_minor", "holder_id", "metadata", "state",
    "posted_debits_minor", "posted_credits_minor", "pending_debits_minor",
    "pending_credits_minor", "version", "created_at", "updated_at",
    "pending_availability_minor", "reserved_minor", "funds_policy", "freeze_scope",
    "freeze_reason", "attributes_version", "holder_ref", "open_to_holders",
    "negative_balance_reserve_account_id", "reserve_debt_minor",
)  # fmt: skip
TRANSFER_COLUMNS = (
    "tenant_id", "transfer_id", "request_id", "batch_index", "batch_id", "debit_account_id",
    "credit_account_id", "currency_code", "amount_minor", "state", "posted_amount_minor",
    "reversed_amount_minor", "reversal_of_id", "description", "metadata", "expires_at",
    "finalized_at", "finalized_request_id", "trace_id", "created_at", "updated_at",
    "available_at", "availability_delay", "owner_id", "over_capture_bps", "hold_steps",
    "reserve_movement",
)  # fmt: skip
ENTRY_COLUMNS = (
    "tenant_id", "account_id", "account_version", "transfer_id", "direction", "kind",
    "amount_minor", "posted_debits_minor", "posted_credits_minor", "pending_debits_minor",
    "pending_credits_minor", "created_at", "pending_availability_minor", "reserved_minor",
)  # fmt: skip
FUNDS_COLUMNS = (
    "tenant_id", "funds_id", "account_id", "transfer_id", "kind", "amount_minor",
    "available_at", "remainder_of_id", "created_at", "ended_at", "end_kind",
    "ended_amount_minor", "end_request_id", "remainder_id",
)  # fmt: skip
MONITOR_COLUMNS = (
    "tenant_id", "monitor_id", "account_id", "field", "operator", "threshold_minor",
    "description", "triggered", "deleted", "created_at", "updated_at",
)  # fmt: skip
POLICY_CHANGE_COLUMNS = (
    "tenant_id", "account_id", "version", "before", "after", "request_id", "trace_id",
    "changed_at",
)  # fmt: skip
OUTCOME_COLUMNS = ("tenant_id", "request_id", "fingerprint", "outcome", "created_at")
EVENT_COLUMNS = (
    "tenant_id", "position", "type", "occurred_at", "request_id", "trace_id", "account_ids",
    "holder_ids", "transfer_ids", "payload",
)  # fmt: skip
# A hold's steps after its creation, as kept in transfers.hold_steps (reversals are
# transfers of their own and are read from them).
_NOT_HOLD_STEPS = (EventKind.CREATED, EventKind.REVERSED)


def _in_order(columns: tuple[str, ...], values: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(values[column] for column in columns)


def account_row(tenant_id: str, account: Account) -> tuple[Any, ...]:
    """An Account as an `accounts` row."""
    b = account.balances
    return _in_order(
        ACCOUNT_COLUMNS,
        {
            "tenant_id": tenant_id,
            "account_id": account.id,
            "external_id": account.external_id,
            "name": account.name,
            "currency_code": account.currency_code,
            "normal_balance": account.normal_balance.value,
            "overdraft_mode": account.overdraft_mode.value,
            "overdraft_limit_minor": account.overdraft_limit_minor,
            "holder_id": account.holder_id,
            "metadata": dict(account.metadata),
            "state": account.state.value,
            "posted_debits_minor": b.posted_debits_minor,
            "posted_credits_minor": b.posted_credits_minor,
            "pending_debits_minor": b.pending_debits_minor,
            "pending_credits_minor": b.pending_credits_minor,
            "version": account.version,
            "created_at": account.created_at,
            "updated_at": account.updated_at,
            "pending_availability_minor": b.pending_availability_minor,
            "reserved_minor": b.reserved_minor,
            "funds_policy": policy_to_json(account.funds_policy),
            "freeze_scope": None if account.freeze_scope is None else account.freeze_scope.value,
            "freeze_reason": account.freeze_reason,
            "attributes_version": account.attributes_version,
            # Set for an account opened for a holder by its id (migration 0013): the
            # ledger refused one naming a holder the tenant does not have.
            "holder_ref": account.holder_id if is_holder_id(account.holder_id) else None,
            "open_to_holders": account.open_to_holders,
            "negative_balance_reserve_account_id": (
                account.negative_balance_reserve_account_id or None
            ),
            "reserve_debt_minor": account.reserve_debt_minor,
        },
    )


def transfer_row(tenant_id: str, transfer: Transfer, batch_index: int = 0) -> tuple[Any, ...]:
    """A Transfer as a `transfers` row; its finalisation (capture, void or expiry) is the
    last such step of its history."""
    final = next((e for e in reversed(transfer.history) if e.kind in FINAL_KINDS), None)
    steps = [_step_document(e) for e in transfer.history if e.kind not in _NOT_HOLD_STEPS]
    return _in_order(
        TRANSFER_COLUMNS,
        {
            "tenant_id": tenant_id,
            "transfer_id": transfer.id,
            "request_id": transfer.request_id,
            "batch_index": batch_index,
            "batch_id": transfer.batch_id,
            "debit_account_id": transfer.debit_account_id,
            "credit_account_id": transfer.credit_account_id,
            "currency_code": transfer.currency_code,
            "amount_minor": transfer.amount_minor,
            "state": transfer.state.value,
            "posted_amount_minor": transfer.posted_amount_minor,
            "reversed_amount_minor": transfer.reversed_amount_minor,
            "reversal_of_id": transfer.reversal_of_id,
            "description": transfer.description,
            "metadata": dict(transfer.metadata),
            "expires_at": transfer.expires_at,
            "finalized_at": None if final is None else final.at,
            "finalized_request_id": (final.request_id or None) if final else None,
            "trace_id": transfer.trace_id,
            "created_at": transfer.created_at,
            "updated_at": transfer.updated_at,
            "available_at": transfer.availability.at,
            "availability_delay": transfer.availability.delay,
            "owner_id": transfer.owner_id,
            "over_capture_bps": transfer.over_capture_bps,
            "hold_steps": steps or None,
            "reserve_movement": (
                None if transfer.reserve_movement is None else transfer.reserve_movement.value
            ),
        },
    )


def entry_row(tenant_id: str, entry: Entry) -> tuple[Any, ...]:
    """An Entry as an `entries` row (created_at is stamped by the statement)."""
    b = entry.balances_after
    return _in_order(
        ENTRY_COLUMNS,
        {
            "tenant_id": tenant_id,
            "account_id": entry.account_id,
            "account_version": entry.account_version,
            "transfer_id": entry.transfer_id,
            "direction": entry.direction.value,
            "kind": entry.kind.value,
            "amount_minor": entry.amount_minor,
            "posted_debits_minor": b.posted_debits_minor,
            "posted_credits_minor": b.posted_credits_minor,
            "pending_debits_minor": b.pending_debits_minor,
            "pending_credits_minor": b.pending_credits_minor,
            "created_at": None,
            "pending_availability_minor": b.pending_availability_minor,
            "reserved_minor": b.reserved_minor,
        },
    )


def funds_row(tenant_id: str, funds: ScheduledFunds) -> tuple[Any, ...]:
    """ScheduledFunds as a `scheduled_funds` row (times are stamped by the statement)."""
    return _in_order(
        FUNDS_COLUMNS,
        {
            "tenant_id": tenant_id,
            "funds_id": funds.id,
            "account_id": funds.account_id,
            "transfer_id": funds.transfer_id,
            "kind": funds.kind.value,
            "amount_minor": funds.amount_minor,
            "available_at": funds.available_at,
            "remainder_of_id": funds.remainder_of_id,
            "created_at": funds.created_at,
            "ended_at": funds.ended_at,
            "end_kind": None if funds.end_kind is None else funds.end_kind.value,
            "ended_amount_minor": funds.ended_amount_minor,
            "end_request_id": funds.end_request_id,
            "remainder_id": funds.remainder_id,
        },
    )


def monitor_row(tenant_id: str, monitor: BalanceMonitor) -> tuple[Any, ...]:
    """A BalanceMonitor as a `balance_monitors` row."""
    return _in_order(
        MONITOR_COLUMNS,
        {
            "tenant_id": tenant_id,
            "monitor_id": monitor.id,
            "account_id": monitor.account_id,
            "field": monitor.field.value,
            "operator": monitor.operator.value,
            "threshold_minor": monitor.threshold_minor,
            "description": monitor.description,
            "triggered": monitor.triggered,
            "deleted": monitor.deleted,
            "created_at": monitor.created_at,
            "updated_at": monitor.updated_at,
        },
    )


def policy_change_row(tenant_id: str, change: PolicyChange) -> tuple[Any, ...]:
    """A PolicyChange as an `account_policy_changes` row."""
    return _in_order(
        POLICY_CHANGE_COLUMNS,
        {
            "tenant_id": tenant_id,
            "account_id": change.account_id,
            "version": change.version,
            "before": policy_to_json(change.before),
            "after": policy_to_json(change.after),
            "request_id": change.request_id,
            "trace_id": change.trace_id,
            "changed_at": change.at,
        },
    )


def outcome_row(
    tenant_id: str, request_id: str, fingerprint: bytes, outcome: Any, now: datetime
) -> tuple[Any, ...]:
    """A request's outcome as a `request_outcomes` row."""
    return _in_order(
        OUTCOME_COLUMNS,
        {
            "tenant_id": tenant_id,
            "request_id": request_id,
            "fingerprint": fingerprint,
            "outcome": outcome,
            "created_at": now,
        },
    )


def event_row(tenant_id: str, event: Event) -> tuple[Any, ...]:
    """An Event as an `events` row; its position and time are given by write_batch."""
    return _in_order(
        EVENT_COLUMNS,
        {
            "tenant_id": tenant_id,
            "position": None,
            "type": event.type.value,
            "occurred_at": None,
            "request_id": event.request_id,
            "trace_id": event.trace_id,
            "account_ids": event.account_ids,
            "holder_ids": event.holder_ids,
            # The transfers the event is about (FUNDS_RELEASED names its parts instead).
            "transfer_ids": [t.id for t in event.transfers] or list(event.item_ids),
            "payload": {
                "transfers": [_transfer_document(tenant_id, t) for t in event.transfers],
                "accounts": [
                    _document(ACCOUNT_COLUMNS, account_row(tenant_id, a)) for a in event.accounts
                ],
                "funds": [funds_document(f) for f in event.funds],
                "monitor": None if event.monitor is None else monitor_document(event.monitor),
                "payout": None if event.payout is None else record_document(event.payout),
                "inbound": None if event.inbound is None else record_document(event.inbound),
                "holder": None if event.holder is None else holder_document(event.holder),
            },
        },
    )


def event_from_row(row: Row) -> RecordedEvent:
    """An `events` row as a RecordedEvent, its resources as they were then."""
    payload = row["payload"]
    kind = EventType(row["type"])
    return RecordedEvent(
        position=row["position"],
        occurred_at=row["occurred_at"],
        event=Event(
            type=kind,
            request_id=row["request_id"],
            trace_id=row["trace_id"],
            transfers=tuple(
                transfer_from_row(_undocument(d, _TRANSFER_TIMES)) for d in payload["transfers"]
            ),
            accounts=tuple(
                account_from_row(_undocument(d, _ACCOUNT_TIMES)) for d in payload["accounts"]
            ),
            item_ids=tuple(row["transfer_ids"]) if kind is EventType.BATCH_COMMITTED else (),
            funds=tuple(funds_from_document(d) for d in payload.get("funds", ())),
            monitor=None
            if payload.get("monitor") is None
            else monitor_from_document(payload["monitor"]),
            payout=None
            if payload.get("payout") is None
            else record_from_row(Payout, payload["payout"]),
            inbound=None
            if payload.get("inbound") is None
            else record_from_row(InboundTransfer, payload["inbound"]),
            holder=None if payload.get("holder") is None else holder_from_row(payload["holder"]),
        ),
    )


# An event's resources are kept as JSON documents of their rows (the table's columns by
# name, times in ISO 8601), not as columns of the tables' row types: a column of a row
# type would forbid most later changes to that table.
_ACCOUNT_TIMES = ("created_at", "updated_at")
_TRANSFER_TIMES = ("expires_at", "finalized_at", "created_at", "updated_at", "available_at")
_FUNDS_TIMES = ("available_at", "created_at", "ended_at")
_MONITOR_TIMES = ("created_at", "updated_at")


# Scheduled parts and monitors as JSON documents, in events' payloads and in recorded
# request outcomes alike (service/outcomes.py): one form of each, by column name.
def funds_document(funds: ScheduledFunds) -> dict[str, Any]:
    return _document(FUNDS_COLUMNS, funds_row("", funds))


def funds_from_document(document: dict[str, Any]) -> ScheduledFunds:
    return funds_from_row(_undocument(dict(document), _FUNDS_TIMES))


def monitor_document(monitor: BalanceMonitor) -> dict[str, Any]:
    return _document(MONITOR_COLUMNS, monitor_row("", monitor))


def monitor_from_document(document: dict[str, Any]) -> BalanceMonitor:
    return monitor_from_row(_undocument(dict(document), _MONITOR_TIMES))


def _document(columns: tuple[str, ...], row: tuple[Any, ...]) -> dict[str, Any]:
    # Inline, not a function per value: this runs for every column of every resource of
    # every event (the hot path of each write).
    return {
        column: value.isoformat() if isinstance(value, datetime) else value
        for column, value in zip(columns, row, strict=True)
        if column != "tenant_id"
    }


def _transfer_document(tenant_id: str, transfer: Transfer) -> dict[str, Any]:
    document = _document(TRANSFER_COLUMNS, transfer_row(tenant_id, transfer))
    if transfer.availability.delay is not None:  # JSON has no interval: seconds
        document["availability_delay"] = transfer.availability.delay.total_seconds()
    document["reversals"] = [
        {"id": e.related_transfer_id, "amount_minor": e.amount_minor, "at": e.at.isoformat(),
         "request_id": e.request_id}
        for e in transfer.history
        if e.kind is EventKind.REVERSED
    ]  # fmt: skip
    return document


def _undocument(document: dict[str, Any], times: tuple[str, ...]) -> dict[str, Any]:
    for column in times:
        value = document.get(column)
        if value is not None:
            document[column] = datetime.fromisoformat(value)
    return document
