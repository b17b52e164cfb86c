"""Page tokens: opaque, bound to their filters, refused when foreign or malformed."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from moneymovement.domain.errors import FieldReason, InvalidInput, Reason
from moneymovement.service.pages import decode_token, encode_token, paginate, scope_of

AT = datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
SCOPE = scope_of("accounts", "USD", None)


def raw_token(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_round_trip() -> None:
    token = encode_token((AT, "acct_x"), SCOPE)

    assert decode_token(token, SCOPE) == (AT, "acct_x")
    assert "=" not in token


def test_empty_token_is_the_first_page() -> None:
    assert decode_token("", SCOPE) is None


def test_scope_depends_on_the_filters() -> None:
    assert scope_of("accounts", "USD", None) == SCOPE
    assert scope_of("accounts", "EUR", None) != SCOPE


@pytest.mark.parametrize(
    "token",
    [
        encode_token((AT, "acct_x"), scope_of("accounts", "EUR", None)),
        "not a token",
        "%%%%",
        "eyJ0Ij",
        raw_token({"t": "2025-03-01T12:00:00", "id": "acct_x", "s": SCOPE}),
        raw_token({"t": "yesterday", "id": "acct_x", "s": SCOPE}),
        raw_token({"id": "acct_x", "s": SCOPE}),
        raw_token({"t": 5, "id": "acct_x", "s": SCOPE}),
        raw_token(["2025-03-01T12:00:00+00:00", "acct_x", SCOPE]),
        raw_token(None),
        base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
    ],
    ids=[
        "other-scope",
        "garbage",
        "not-base64",
        "truncated",
        "naive-datetime",
        "bad-datetime",
        "no-time",
        "time-not-text",
        "list",
        "null",
        "not-utf8",
    ],
)
def test_bad_token_is_invalid_input(token: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_token(token, SCOPE)

    assert caught.value.reason is Reason.INVALID_ARGUMENT
    assert [(v.field, v.reason) for v in caught.value.violations] == [
        ("page_token", FieldReason.INVALID_PAGE_TOKEN)
    ]


def rows(count: int) -> list[tuple[datetime, str]]:
    return [(AT + timedelta(seconds=i), f"acct_{i}") for i in range(count)]


def test_paginate_with_one_extra_row_returns_a_token_after_the_last_item() -> None:
    page = paginate(rows(4), 3, lambda row: row, SCOPE)

    assert page.items == rows(3)
    assert decode_token(page.next_token, SCOPE) == (AT + timedelta(seconds=2), "acct_2")


@pytest.mark.parametrize("count", [0, 1, 3])
def test_paginate_last_page_has_no_token(count: int) -> None:
    page = paginate(rows(count), 3, lambda row: row, SCOPE)

    assert page.items == rows(count)
    assert page.next_token == ""
