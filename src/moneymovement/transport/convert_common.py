"""Conversions every resource needs: timestamps and enums between proto and domain."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2

from moneymovement.domain import ids
from moneymovement.domain.errors import FieldReason
from moneymovement.domain.validation import Checker

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A timezone-aware datetime as a Timestamp (by arithmetic: Timestamp.FromDatetime
    goes through a time tuple and cost several times more, three times per transfer)."""
    since = value - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1_000
    )


def optional_time(check: Checker, message: object, field: str) -> datetime | None:
    """A Timestamp field as an aware datetime, or None when unset (or out of range)."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, field)
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        check.fail(field, FieldReason.OUT_OF_RANGE, "not a valid time (years 1 to 9999)")
        return None


# The range google.protobuf.Duration defines (about 10,000 years), which a timedelta holds.
_DURATION_MAX_S = 315_576_000_000


def duration(check: Checker, message: object, field: str) -> timedelta | None:
    """A Duration field as a timedelta, or None when unset or malformed (seconds or
    nanos out of their documented ranges, or of different signs)."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    value: duration_pb2.Duration = getattr(message, field)
    if (
        not -_DURATION_MAX_S <= value.seconds <= _DURATION_MAX_S
        or not -999_999_999 <= value.nanos <= 999_999_999
        or value.seconds * value.nanos < 0
    ):
        check.fail(field, FieldReason.OUT_OF_RANGE, "not a valid Duration")
        return None
    return timedelta(seconds=value.seconds, microseconds=value.nanos // 1_000)


def enum_names(enum_type: object, prefix: str) -> dict[int, str]:
    """{number: domain value} of a proto enum whose value names are PREFIX_VALUE."""
    values = enum_type.items()  # type: ignore[attr-defined]
    return {number: name.removeprefix(prefix) for name, number in values if number != 0}


def enum_value(check: Checker, field: str, names: Mapping[int, str], number: int) -> str | None:
    """The domain value of a proto enum number; None for UNSPECIFIED."""
    if number == 0:
        return None
    name = names.get(number)
    if name is None:
        check.fail(field, FieldReason.OUT_OF_RANGE, f"unknown enum value {number}")
    return name


def fee_of(check: Checker, fee_minor: int, fee_account_id: str, account_id: str) -> tuple[int, str]:
    """An optional fee and the account it goes to (ReleaseFunds, CreatePayout): both or
    neither, the fee account not the paying one."""
    fee = check.non_negative("fee_minor", fee_minor)
    fee_account = ""
    if fee or fee_account_id:
        fee_account = check.resource_id("fee_account_id", fee_account_id, ids.ACCOUNT)
        if fee_account and fee_account == account_id:
            check.fail("fee_account_id", FieldReason.MUST_DIFFER, "must differ from account_id")
        if not fee:
            check.fail("fee_minor", FieldReason.REQUIRED, "a fee account needs a fee")
    return fee, fee_account


def named(
    request: object, field: str, prefix: str, *, with_request_id: bool = False
) -> tuple[str, str]:
    """A request that names one resource (a get, void, cancel, revoke...): (its request
    id, or "" without `with_request_id`; the id)."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id) if with_request_id else ""  # type: ignore[attr-defined]
    value = check.resource_id(field, getattr(request, field), prefix)
    check.raise_if_any()
    return request_id, value
