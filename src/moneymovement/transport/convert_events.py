"""EventService requests, and events to messages."""

from __future__ import annotations

from typing import TypeAlias
from weakref import WeakKeyDictionary

from moneymovement.domain import ids
from moneymovement.domain.accounts import Account, balance_snapshot
from moneymovement.domain.errors import FieldReason, InvalidInput
from moneymovement.domain.events import EventFilter, EventType, RecordedEvent
from moneymovement.domain.validation import Checker
from moneymovement.service.event_stream import Start, cursor_of, parse_cursor
from moneymovement.transport.convert_accounts import account_message
from moneymovement.transport.convert_balances import balance_message
from moneymovement.transport.convert_common import enum_names, enum_value, timestamp
from moneymovement.transport.convert_funds import funds_message, monitor_message
from moneymovement.transport.convert_holders import holder_message
from moneymovement.transport.convert_payouts import inbound_message, payout_message
from moneymovement.transport.convert_transfers import transfer_message
from moneymovement.v1 import balance_pb2, event_pb2, event_service_pb2

DEFAULT_PAGE = 100
MAX_PAGE = 1000
_TYPES = enum_names(event_pb2.EventType, "EVENT_TYPE_")
_TYPE_NUMBERS = {name: number for number, name in _TYPES.items()}
_STARTS = enum_names(event_service_pb2.EventStart, "EVENT_START_")
_ACCOUNT_EVENTS = {
    EventType.ACCOUNT_CREATED,
    EventType.ACCOUNT_UPDATED,
    EventType.ACCOUNT_FROZEN,
    EventType.ACCOUNT_UNFROZEN,
    EventType.ACCOUNT_CLOSED,
}

_Request: TypeAlias = event_service_pb2.WatchEventsRequest | event_service_pb2.ListEventsRequest


def watch_request(
    request: event_service_pb2.WatchEventsRequest,
) -> tuple[int | None, Start, EventFilter]:
    """WatchEvents' cursor (or start: now by default) and filter."""
    check = Checker()
    after, start, where = _start_and_filter(check, request, default=Start.NOW)
    check.raise_if_any()
    return after, start, where


def list_request(
    request: event_service_pb2.ListEventsRequest,
) -> tuple[int | None, Start, EventFilter, int]:
    """ListEvents' cursor (or start: the oldest kept by default), filter and page size."""
    check = Checker()
    after, start, where = _start_and_filter(check, request, default=Start.OLDEST)
    size = check.page_size("page_size", request.page_size, default=DEFAULT_PAGE, maximum=MAX_PAGE)
    check.raise_if_any()
    return after, start, where, size


def _start_and_filter(
    check: Checker, request: _Request, *, default: Start
) -> tuple[int | None, Start, EventFilter]:
    after = None
    if request.after_cursor:
        try:
            after = parse_cursor(request.after_cursor, "after_cursor")
        except InvalidInput as invalid:
            check.violations += invalid.violations
    start_name = enum_value(check, "start", _STARTS, request.start)
    if start_name is not None and request.after_cursor:
        check.fail("start", FieldReason.MUST_DIFFER, "give after_cursor or start, not both")
    start = default if start_name is None else Start[start_name]
    spec = request.filter
    types: set[EventType] = set()
    for index, number in enumerate(spec.types):
        name = _TYPES.get(number)
        if name is None:
            check.fail(f"filter.types[{index}]", FieldReason.OUT_OF_RANGE, "not an event type")
        else:
            types.add(EventType(name))
    account_id = None
    if spec.account_id:
        account_id = check.resource_id("filter.account_id", spec.account_id, ids.ACCOUNT)
    holder_id = check.reference("filter.holder_id", spec.holder_id) or None
    return after, start, EventFilter(frozenset(types), account_id, holder_id)


# Messages of the events live streams share (a tenant's feed holds each event once, for
# all its streams): built once, not once per stream, and forgotten with the event.
# Callers copy them into responses and never change them.
_MESSAGES: WeakKeyDictionary[RecordedEvent, event_pb2.Event] = WeakKeyDictionary()


def event_message(recorded: RecordedEvent) -> event_pb2.Event:
    """An event as its proto message: the resources as they were right after it."""
    message = _MESSAGES.get(recorded)
    if message is None:
        message = _MESSAGES[recorded] = _message(recorded)
    return message


def _message(recorded: RecordedEvent) -> event_pb2.Event:
    event = recorded.event
    message = event_pb2.Event(
        cursor=cursor_of(recorded.position),
        type=_TYPE_NUMBERS[event.type.value],  # type: ignore[arg-type]
        occurred_at=timestamp(recorded.occurred_at),
        request_id=event.request_id,
        trace_id=event.trace_id or "",
    )
    if event.type in _ACCOUNT_EVENTS:
        message.account.CopyFrom(account_message(event.accounts[0]))
        return message
    if event.type is EventType.BATCH_COMMITTED:
        message.transfer_ids.extend(event.item_ids)
    elif event.type is EventType.FUNDS_RELEASED:
        message.funds.extend(funds_message(f) for f in event.funds)
    elif event.monitor is not None:
        message.monitor.CopyFrom(monitor_message(event.monitor))
    elif event.payout is not None:
        message.payout.CopyFrom(payout_message(event.payout))
    elif event.inbound is not None:
        message.inbound_transfer.CopyFrom(inbound_message(event.inbound))
    elif event.holder is not None:
        message.holder.CopyFrom(holder_message(event.holder))
    else:
        message.transfer.CopyFrom(transfer_message(event.transfers[0]))
    message.balances.extend(_balance(a, recorded) for a in event.accounts)
    return message


def _balance(account: Account, recorded: RecordedEvent) -> balance_pb2.Balance:
    return balance_message(balance_snapshot(account, recorded.occurred_at))
