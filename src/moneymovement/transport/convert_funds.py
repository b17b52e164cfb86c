"""FundsService requests to commands; funds policies, scheduled funds, monitors and
policy changes to and from messages."""

from __future__ import annotations

from moneymovement.domain import ids
from moneymovement.domain.commands import CreateBalanceMonitor, ReleaseFunds
from moneymovement.domain.errors import FieldReason
from moneymovement.domain.funds import (
    AvailabilityPolicy,
    Calendar,
    DebitLimit,
    FundsPolicy,
    LimitWindow,
    Part,
    ReservePolicy,
    ScheduledFunds,
)
from moneymovement.domain.ledger import PolicyChange
from moneymovement.domain.monitors import BalanceMonitor, MonitorField, MonitorOperator
from moneymovement.domain.validation import MAX_DESCRIPTION_LENGTH, Checker
from moneymovement.transport.convert_common import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    enum_names,
    enum_value,
    fee_of,
    timestamp,
)
from moneymovement.v1 import funds_pb2
from moneymovement.v1 import funds_service_pb2 as pb

MAX_NAMED_FUNDS = 100
_CALENDAR = enum_names(funds_pb2.Calendar, "CALENDAR_")
_WINDOW = enum_names(funds_pb2.LimitWindow, "LIMIT_WINDOW_")  # names are LimitWindow values
_FIELD = enum_names(funds_pb2.BalanceMonitor.Field, "FIELD_")
_OPERATOR = enum_names(funds_pb2.BalanceMonitor.Operator, "OPERATOR_")


def funds_policy(check: Checker, message: funds_pb2.FundsPolicy) -> FundsPolicy:
    """A FundsPolicy message as the domain's (its ranges are checked with the account,
    domain/funds.py validate_policy). Calendar UNSPECIFIED is DAYS; an empty time zone
    is UTC."""
    check = check.nested("funds_policy.")
    availability = message.availability
    calendar = enum_value(check, "availability.calendar", _CALENDAR, availability.calendar)
    limits = []
    for index, limit in enumerate(message.debit_limits):
        window = enum_value(check, f"debit_limits[{index}].window", _WINDOW, limit.window)
        if window is None:
            check.fail(
                f"debit_limits[{index}].window", FieldReason.REQUIRED, "DAY, WEEK or 30_DAYS"
            )
            continue
        limits.append(DebitLimit(LimitWindow(window), limit.max_amount_minor, limit.max_count))
    reserve = message.reserve
    return FundsPolicy(
        availability=AvailabilityPolicy(
            delay_days=availability.delay_days,
            calendar=Calendar(calendar) if calendar else Calendar.DAYS,
            time_zone=availability.time_zone or "UTC",
        ),
        reserve=ReservePolicy(
            reserve.rolling_percent_bps, reserve.rolling_days, reserve.minimum_minor
        ),
        early_release_allowed=message.early_release_allowed,
        debit_limits=tuple(limits),
        max_balance_minor=message.max_balance_minor,
    )


def policy_message(policy: FundsPolicy) -> funds_pb2.FundsPolicy:
    """The domain's FundsPolicy as its message."""
    a, r = policy.availability, policy.reserve
    return funds_pb2.FundsPolicy(
        availability=funds_pb2.AvailabilityPolicy(
            delay_days=a.delay_days,
            calendar=funds_pb2.Calendar.Value("CALENDAR_" + a.calendar.value),
            time_zone=a.time_zone,
        ),
        reserve=funds_pb2.ReservePolicy(
            rolling_percent_bps=r.rolling_percent_bps,
            rolling_days=r.rolling_days,
            minimum_minor=r.minimum_minor,
        ),
        early_release_allowed=policy.early_release_allowed,
        debit_limits=[
            funds_pb2.DebitLimit(
                window=funds_pb2.LimitWindow.Value("LIMIT_WINDOW_" + d.window.value),
                max_amount_minor=d.max_amount_minor,
                max_count=d.max_count,
            )
            for d in policy.debit_limits
        ],
        max_balance_minor=policy.max_balance_minor,
    )


def funds_message(funds: ScheduledFunds) -> funds_pb2.ScheduledFunds:
    """A scheduled part as its message."""
    state = "SCHEDULED" if funds.end_kind is None else funds.end_kind.value
    message = funds_pb2.ScheduledFunds(
        id=funds.id,
        account_id=funds.account_id,
        transfer_id=funds.transfer_id,
        kind=funds_pb2.FundsKind.Value("FUNDS_KIND_" + funds.kind.value),
        amount_minor=funds.amount_minor,
        available_time=timestamp(funds.available_at),
        state=funds_pb2.ScheduledFunds.State.Value("STATE_" + state),
        ended_amount_minor=funds.ended_amount_minor or 0,
        remainder_id=funds.remainder_id or "",
        remainder_of_id=funds.remainder_of_id or "",
        create_time=timestamp(funds.created_at),
        end_request_id=funds.end_request_id or "",
    )
    if funds.ended_at is not None:
        message.end_time.CopyFrom(timestamp(funds.ended_at))
    return message


def part_message(part: Part) -> funds_pb2.AvailabilityPart:
    """One line of a balance's availability schedule."""
    return funds_pb2.AvailabilityPart(
        available_time=timestamp(part.available_at),
        kind=funds_pb2.FundsKind.Value("FUNDS_KIND_" + part.kind.value),
        amount_minor=part.amount_minor,
    )


def monitor_message(monitor: BalanceMonitor) -> funds_pb2.BalanceMonitor:
    """A balance monitor as its message."""
    return funds_pb2.BalanceMonitor(
        id=monitor.id,
        account_id=monitor.account_id,
        field=funds_pb2.BalanceMonitor.Field.Value("FIELD_" + monitor.field.value),
        operator=funds_pb2.BalanceMonitor.Operator.Value("OPERATOR_" + monitor.operator.value),
        threshold_minor=monitor.threshold_minor,
        description=monitor.description,
        triggered=monitor.triggered,
        create_time=timestamp(monitor.created_at),
        update_time=timestamp(monitor.updated_at),
    )


def policy_change_message(change: PolicyChange) -> funds_pb2.PolicyChange:
    """A funds policy change as its message."""
    return funds_pb2.PolicyChange(
        account_id=change.account_id,
        before=policy_message(change.before),
        after=policy_message(change.after),
        request_id=change.request_id,
        trace_id=change.trace_id or "",
        time=timestamp(change.at),
    )


def release_request(request: pb.ReleaseFundsRequest) -> tuple[str, ReleaseFunds]:
    """ReleaseFunds' request id and command: parts by id, or an amount, not both."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    account = check.resource_id("account_id", request.account_id, ids.ACCOUNT)
    funds_ids = list(request.funds_ids)
    if len(funds_ids) > MAX_NAMED_FUNDS:
        check.fail("funds_ids", FieldReason.TOO_MANY, f"at most {MAX_NAMED_FUNDS}")
    for index, value in enumerate(funds_ids):
        check.resource_id(f"funds_ids[{index}]", value, ids.FUNDS)
    if len(set(funds_ids)) != len(funds_ids):
        check.fail("funds_ids", FieldReason.DUPLICATE, "each part at most once")
    amount = check.non_negative("amount_minor", request.amount_minor)
    if bool(funds_ids) == bool(amount):
        check.fail("amount_minor", FieldReason.REQUIRED, "give funds_ids or amount_minor, one")
    fee, fee_account = fee_of(check, request.fee_minor, request.fee_account_id, account)
    description = check.text("description", request.description, MAX_DESCRIPTION_LENGTH)
    metadata = check.metadata("metadata", request.metadata)
    check.raise_if_any()
    return request_id, ReleaseFunds(
        account_id=account,
        funds_ids=tuple(funds_ids),
        amount_minor=amount,
        fee_minor=fee,
        fee_account_id=fee_account,
        description=description,
        metadata=metadata,
    )


def monitor_request(request: pb.CreateBalanceMonitorRequest) -> tuple[str, CreateBalanceMonitor]:
    """CreateBalanceMonitor's request id and command."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    account = check.resource_id("account_id", request.account_id, ids.ACCOUNT)
    field = enum_value(check, "field", _FIELD, request.field)
    operator = enum_value(check, "operator", _OPERATOR, request.operator)
    if request.field == 0:
        check.fail("field", FieldReason.REQUIRED, "which balance to watch")
    if request.operator == 0:
        check.fail("operator", FieldReason.REQUIRED, "BELOW, AT_OR_BELOW, ABOVE or AT_OR_ABOVE")
    description = check.text("description", request.description, MAX_DESCRIPTION_LENGTH)
    check.raise_if_any()
    assert field is not None
    assert operator is not None
    return request_id, CreateBalanceMonitor(
        account_id=account,
        field=MonitorField(field),
        operator=MonitorOperator(operator),
        threshold_minor=request.threshold_minor,
        description=description,
    )


def monitor_delete(request: pb.DeleteBalanceMonitorRequest) -> tuple[str, str]:
    """DeleteBalanceMonitor's request id and monitor id."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    monitor = check.resource_id("monitor_id", request.monitor_id, ids.MONITOR)
    check.raise_if_any()
    return request_id, monitor


def listing(
    request: pb.ListScheduledFundsRequest | pb.ListPolicyChangesRequest,
) -> tuple[str, int]:
    """A funds listing's account id and page size."""
    check = Checker()
    account = check.resource_id("account_id", request.account_id, ids.ACCOUNT)
    size = check.page_size(
        "page_size", request.page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE
    )
    check.raise_if_any()
    return account, size
