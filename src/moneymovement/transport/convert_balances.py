"""BalanceService requests, and balances and entries to messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from moneymovement.domain import ids
from moneymovement.domain.accounts import Account
from moneymovement.domain.balances import BalanceSnapshot
from moneymovement.domain.errors import FieldReason
from moneymovement.domain.transfers import Entry
from moneymovement.domain.validation import MAX_BATCH_GET, Checker
from moneymovement.transport.convert_common import (
    enum_names,
    enum_value,
    optional_time,
    timestamp,
)
from moneymovement.transport.convert_funds import part_message
from moneymovement.v1 import account_pb2, balance_pb2, balance_service_pb2

DEFAULT_ENTRIES = 100
MAX_ENTRIES = 1000
# Clocks of client and server differ a little; an as-of time this far ahead is still "now".
_CLOCK_SKEW = timedelta(seconds=5)
_SORT_ORDER = enum_names(balance_service_pb2.SortOrder, "SORT_ORDER_")


def balance_ids(
    request: balance_service_pb2.BatchGetBalancesRequest,
) -> tuple[list[str], datetime | None]:
    """BatchGetBalances' account ids and optional as-of time (as GetBalance's)."""
    check = Checker()
    if not request.account_ids:
        check.fail("account_ids", FieldReason.REQUIRED, "at least one account id")
    if len(request.account_ids) > MAX_BATCH_GET:
        check.fail("account_ids", FieldReason.TOO_MANY, f"at most {MAX_BATCH_GET}")
    for index, value in enumerate(request.account_ids):
        check.resource_id(f"account_ids[{index}]", value, ids.ACCOUNT)
    as_of = _as_of(check, request)
    check.raise_if_any()
    return list(request.account_ids), as_of


def balance_request(request: balance_service_pb2.GetBalanceRequest) -> tuple[str, datetime | None]:
    """GetBalance's account id and optional as-of time (not in the future)."""
    check = Checker()
    account = check.resource_id("account_id", request.account_id, ids.ACCOUNT)
    as_of = _as_of(check, request)
    check.raise_if_any()
    return account, as_of


def _as_of(
    check: Checker,
    request: balance_service_pb2.GetBalanceRequest | balance_service_pb2.BatchGetBalancesRequest,
) -> datetime | None:
    """The request's optional as_of_time, which must not be in the future."""
    as_of = optional_time(check, request, "as_of_time")
    if as_of is not None and as_of > datetime.now(UTC) + _CLOCK_SKEW:
        check.fail("as_of_time", FieldReason.OUT_OF_RANGE, "must not be in the future")
    return as_of


def statement_request(
    request: balance_service_pb2.ListEntriesRequest,
) -> tuple[str, datetime | None, datetime | None, bool, int]:
    """ListEntries' account, time range, order (oldest first?) and page size."""
    check = Checker()
    account = check.resource_id("account_id", request.account_id, ids.ACCOUNT)
    start = optional_time(check, request, "start_time")
    end = optional_time(check, request, "end_time")
    if start is not None and end is not None and end <= start:
        check.fail("end_time", FieldReason.OUT_OF_RANGE, "must be after start_time")
    order = enum_value(check, "order", _SORT_ORDER, request.order)
    size = check.page_size(
        "page_size", request.page_size, default=DEFAULT_ENTRIES, maximum=MAX_ENTRIES
    )
    check.raise_if_any()
    return account, start, end, order == "OLDEST_FIRST", size


def balance_message(snapshot: BalanceSnapshot) -> balance_pb2.Balance:
    """A balance snapshot as its proto message, with the derived amounts."""
    totals = snapshot.balances
    normal = snapshot.normal_balance
    return balance_pb2.Balance(
        account_id=snapshot.account_id,
        currency_code=snapshot.currency_code,
        normal_balance=account_pb2.NormalBalance.Value("NORMAL_BALANCE_" + normal.value),
        posted_debits_minor=totals.posted_debits_minor,
        posted_credits_minor=totals.posted_credits_minor,
        pending_debits_minor=totals.pending_debits_minor,
        pending_credits_minor=totals.pending_credits_minor,
        posted_minor=totals.posted(normal),
        pending_inbound_minor=totals.pending_inbound(normal),
        pending_outbound_minor=totals.pending_outbound(normal),
        available_minor=totals.available(normal),
        version=snapshot.version,
        as_of_time=timestamp(snapshot.as_of),
        pending_availability_minor=totals.pending_availability_minor,
        reserved_minor=totals.reserved_minor,
        minimum_reserve_minor=snapshot.minimum_reserve_minor,
        availability_schedule=[part_message(p) for p in snapshot.schedule],
        reserve_debt_minor=snapshot.reserve_debt_minor,
    )


def entry_message(account: Account, entry: Entry) -> balance_pb2.Entry:
    """A statement line: the entry and the account's balances right after it."""
    assert entry.created_at is not None, "entries read from the ledger carry their time"
    after = BalanceSnapshot(
        account_id=account.id,
        currency_code=account.currency_code,
        normal_balance=account.normal_balance,
        balances=entry.balances_after,
        version=entry.account_version,
        as_of=entry.created_at,
    )
    return balance_pb2.Entry(
        account_id=entry.account_id,
        transfer_id=entry.transfer_id,
        direction=balance_pb2.EntryDirection.Value("ENTRY_DIRECTION_" + entry.direction.value),
        amount_minor=entry.amount_minor,
        kind=balance_pb2.EntryKind.Value("ENTRY_KIND_" + entry.kind.value),
        balance_after=balance_message(after),
        create_time=timestamp(entry.created_at),
        trace_id=entry.trace_id or "",
        description=entry.description,
        metadata=dict(entry.metadata),
        counterparty_account_id=entry.counterparty_account_id or "",
    )
