"""Page tokens: round trips, refusals of foreign or forged tokens, and paging."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from moneymovement.domain.errors import FieldReason, InvalidInput
from moneymovement.domain.queries import AccountQuery, TransferQuery
from moneymovement.service import pages

WHEN = datetime(2026, 11, 22, 10, 30, 15, 123456, tzinfo=UTC)
SCOPE = pages.scope_of("accounts", {"currency": "USD"})


def test_a_position_round_trips() -> None:
    token = pages.encode_token([7, "x"], SCOPE)
    assert pages.decode_token(token, SCOPE) == [7, "x"]


def test_a_time_cursor_round_trips() -> None:
    token = pages.encode_token(pages.time_position(WHEN, "acct_x"), SCOPE)
    assert pages.decode_time_cursor(token, SCOPE) == (WHEN, "acct_x")


def test_no_token_means_the_first_page() -> None:
    assert pages.decode_token("", SCOPE) is None
    assert pages.decode_time_cursor("", SCOPE) is None


def test_scopes_differ_with_filters() -> None:
    assert pages.scope_of("accounts", {"currency": "EUR"}) != SCOPE
    assert pages.scope_of("transfers", {"currency": "USD"}) != SCOPE


def _forged(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        pages.encode_token([1], pages.scope_of("other")),  # another listing's token
        "not base64 at all!",
        _forged(["just", "a", "list"]),
        _forged({"p": "not a list", "s": SCOPE}),
        _forged({"p": ["2026-11-22T10:30:15", "acct_x"], "s": SCOPE}),  # naive time
        _forged({"p": ["yesterday", "acct_x"], "s": SCOPE}),
    ],
)
def test_bad_tokens_are_refused_naming_page_token(token: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        pages.decode_time_cursor(token, SCOPE)
    [violation] = raised.value.violations
    assert violation.field == "page_token"
    assert violation.reason is FieldReason.INVALID_PAGE_TOKEN


def test_paginate_cuts_at_size_and_points_after_the_last_item() -> None:
    rows = list(range(11))
    page = pages.paginate(rows, 10, lambda n: [n], SCOPE)
    assert page.items == list(range(10))
    assert pages.decode_token(page.next_token, SCOPE) == [9]


def test_paginate_without_more_rows_has_no_next_token() -> None:
    page = pages.paginate([1, 2, 3], 3, lambda n: [n], SCOPE)
    assert page.items == [1, 2, 3]
    assert page.next_token == ""


def test_a_filter_added_later_keeps_the_scope_of_tokens_issued_before_it() -> None:
    # Tokens issued before ListTransfers had metadata_keys were scoped by the query's
    # repr without it: a query that does not use the new filter keeps that scope.
    query = TransferQuery(account_id="acct_x", metadata={"order": "o-1"})
    before = (
        "TransferQuery(account_id='acct_x', state=None, start_time=None, end_time=None, "
        "metadata={'order': 'o-1'}, batch_id=None, trace_id=None)"
    )
    assert pages.scope_of("transfers", query) == pages.scope_of("transfers", before)
    keyed = TransferQuery(account_id="acct_x", metadata_keys=("order",))
    assert pages.scope_of("transfers", keyed) != pages.scope_of("transfers", query)
    assert pages.scope_of("accounts", AccountQuery(metadata_keys=("a",))) != pages.scope_of(
        "accounts", AccountQuery(metadata_keys=("b",))
    )
