"""The contract across layers: reasons, the error table, the status details, SQL, docs."""

import re
from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from moneymovement.domain.errors import (
    DomainError,
    FieldReason,
    FieldViolation,
    InvalidInput,
    Reason,
    Rejected,
)
from moneymovement.storage import queries
from moneymovement.transport import errors
from moneymovement.transport.errors import EdgeError, EdgeReason, Throttled
from moneymovement.v1 import error_reason_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTO_PREFIX = "ERROR_REASON_"
# The domain's reasons and the edge's: together, the proto's ErrorReason.
ALL_REASONS: list[Reason | EdgeReason] = [*Reason, *EdgeReason]


def proto_reason_names() -> set[str]:
    names = error_reason_pb2.ErrorReason.keys()
    return {name.removeprefix(PROTO_PREFIX) for name in names} - {"UNSPECIFIED"}


# --- reasons ---------------------------------------------------------------------------


def test_every_reason_has_a_status_code() -> None:
    assert set(errors.CODE_OF_REASON) == set(ALL_REASONS)


def test_reasons_match_the_proto_enum_both_ways() -> None:
    assert {reason.value for reason in ALL_REASONS} == proto_reason_names()


def test_domain_and_edge_reasons_do_not_overlap() -> None:
    assert {r.value for r in Reason} & {r.value for r in EdgeReason} == set()


def test_reason_values_are_their_names() -> None:
    assert [reason.name for reason in ALL_REASONS] == [reason.value for reason in ALL_REASONS]


@pytest.mark.parametrize("reason", ALL_REASONS)
def test_status_code_of_every_reason(reason: Reason | EdgeReason) -> None:
    error = (
        DomainError(reason, "message")
        if isinstance(reason, Reason)
        else EdgeError(reason, "message")
    )

    status = errors.status_of(error)

    assert status.code == errors.CODE_OF_REASON[reason].value[0]


# --- status details --------------------------------------------------------------------


def unpack_details(
    error: DomainError,
) -> tuple[int, str, error_details_pb2.ErrorInfo, list[error_details_pb2.BadRequest]]:
    status = errors.status_of(error)
    info = error_details_pb2.ErrorInfo()
    bad_requests = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        else:
            bad_request = error_details_pb2.BadRequest()
            assert detail.Unpack(bad_request), detail.type_url
            bad_requests.append(bad_request)
    return status.code, status.message, info, bad_requests


def test_status_of_invalid_input() -> None:
    error = InvalidInput(
        [
            FieldViolation("request_id", FieldReason.REQUIRED, "is required"),
            FieldViolation("transfers[3].amount_minor", FieldReason.OUT_OF_RANGE, "must be >= 1"),
        ]
    )

    code, message, info, bad_requests = unpack_details(error)

    assert code == code_pb2.INVALID_ARGUMENT
    assert message == error.message
    assert (info.domain, info.reason) == ("moneymovement", "INVALID_ARGUMENT")
    assert len(bad_requests) == 1
    assert [(v.field, v.reason, v.description) for v in bad_requests[0].field_violations] == [
        ("request_id", "REQUIRED", "is required"),
        ("transfers[3].amount_minor", "OUT_OF_RANGE", "must be >= 1"),
    ]


def test_status_of_a_rejection_carries_its_metadata() -> None:
    error = Rejected(
        Reason.INSUFFICIENT_FUNDS,
        "account acct_x has insufficient funds",
        {"account_id": "acct_x", "available_minor": "12"},
    )

    code, message, info, bad_requests = unpack_details(error)

    assert code == code_pb2.FAILED_PRECONDITION
    assert message == "account acct_x has insufficient funds"
    assert (info.domain, info.reason) == ("moneymovement", "INSUFFICIENT_FUNDS")
    assert dict(info.metadata) == {"account_id": "acct_x", "available_minor": "12"}
    assert bad_requests == []


def test_status_of_a_throttled_call_carries_the_delay() -> None:
    error = Throttled(EdgeReason.RATE_LIMITED, "slow down", 0.25, {"rate_per_s": "4"})

    status = errors.status_of(error)

    assert status.code == code_pb2.RESOURCE_EXHAUSTED
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert [status.details[0].Unpack(info), status.details[1].Unpack(retry)] == [True, True]
    assert (info.reason, dict(info.metadata)) == ("RATE_LIMITED", {"rate_per_s": "4"})
    assert retry.retry_delay.ToNanoseconds() == 250_000_000


def test_code_of() -> None:
    assert errors.code_of(Rejected(Reason.ACCOUNT_NOT_FOUND, "gone")) is grpc.StatusCode.NOT_FOUND
    no_token = EdgeError(EdgeReason.TOKEN_MISSING, "no token")
    assert errors.code_of(no_token) is grpc.StatusCode.UNAUTHENTICATED


# --- SQL -------------------------------------------------------------------------------


def test_every_named_query_parses() -> None:
    named = queries.all_queries()

    assert named, "no queries found in storage/sql"
    empty = [name for name, sql in named.items() if not sql]
    assert empty == []
    assert "-- name:" not in "".join(named.values())


def test_parse_splits_on_name_lines() -> None:
    text = "-- name: one\nSELECT 1;\n\n-- name: two\nSELECT $1;\n"

    assert queries.parse(text) == {"one": "SELECT 1;", "two": "SELECT $1;"}


def test_parse_refuses_a_duplicate_name() -> None:
    with pytest.raises(ValueError, match="twice"):
        queries.parse("-- name: one\nSELECT 1;\n-- name: one\nSELECT 2;\n")


# --- docs ------------------------------------------------------------------------------


def test_docs_errors_mentions_every_reason() -> None:
    path = ROOT / "docs" / "errors.md"
    assert path.is_file(), f"{path} is missing: it must document every ErrorReason"
    words = set(re.findall(r"[A-Z][A-Z0-9_]+", path.read_text(encoding="utf-8")))
    words |= {word.removeprefix(PROTO_PREFIX) for word in words}

    missing = [reason.value for reason in ALL_REASONS if reason.value not in words]

    assert missing == [], f"{path} does not mention: {', '.join(missing)}"


def test_docs_errors_lists_the_metadata_keys_of_every_reason() -> None:
    from tests.e2e.conftest import DOCUMENTED_KEYS

    sent = {r.value for r in Reason} | {r.value for r in EdgeReason}
    assert set(DOCUMENTED_KEYS) == sent
    # The table is read, not empty: the reasons that name an account say so.
    assert DOCUMENTED_KEYS["ACCOUNT_NOT_FOUND"] == {"account_id"}
    assert DOCUMENTED_KEYS["INSUFFICIENT_FUNDS"] >= {
        "asked_minor",
        "available_minor",
        "floor_minor",
    }
