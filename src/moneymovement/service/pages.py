"""Opaque page tokens for keyset pagination.

A token carries the (created_at, id) of the last row served and a digest of the filters
it was issued for, so it cannot be replayed against another listing (AIP-158).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from moneymovement.domain.errors import FieldReason, FieldViolation, InvalidInput

T = TypeVar("T")
Cursor = tuple[datetime, str]


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing."""

    items: list[T]
    next_token: str


def scope_of(*filters: object) -> str:
    """A short digest of a listing's filters."""
    text = json.dumps(filters, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def encode_token(cursor: Cursor, scope: str) -> str:
    """The token that continues after `cursor`."""
    raw = json.dumps({"t": cursor[0].isoformat(), "id": cursor[1], "s": scope})
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_token(token: str, scope: str) -> Cursor | None:
    """The cursor of a token issued for the same filters; None for the first page.

    Raises:
        InvalidInput: the token is malformed or belongs to other filters.
    """
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        cursor = (datetime.fromisoformat(data["t"]), str(data["id"]))
        valid = data["s"] == scope and cursor[0].tzinfo is not None
    except (ValueError, KeyError, TypeError, binascii.Error):
        valid = False
    if not valid:
        raise InvalidInput(
            [
                FieldViolation(
                    "page_token",
                    FieldReason.INVALID_PAGE_TOKEN,
                    "not a page token of this listing with these filters",
                )
            ]
        )
    return cursor


def paginate(rows: list[T], size: int, cursor_of: Callable[[T], Cursor], scope: str) -> Page[T]:
    """Turns `size + 1` fetched rows into a page and the token for the next one."""
    if len(rows) <= size:
        return Page(rows, "")
    items = rows[:size]
    return Page(items, encode_token(cursor_of(items[-1]), scope))
