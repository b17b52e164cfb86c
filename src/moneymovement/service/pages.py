"""Opaque page tokens for keyset pagination.

A token carries the position after which the next page starts (the (created_at, id) of
the last row, or an account version for statements) and a digest of the filters it was
issued for, so it cannot be replayed against another listing (AIP-158).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from moneymovement.domain.errors import FieldReason, FieldViolation, InvalidInput
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.session import Session

T = TypeVar("T")
Position = list[str | int]
TimeCursor = tuple[datetime, str]


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing."""

    items: list[T]
    next_token: str


def scope_of(*filters: object) -> str:
    """A short digest of a listing's filters."""
    text = json.dumps(filters, sort_keys=True, default=_text)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _text(value: object) -> str:
    """A filter as text: its repr, without the fields added later that it does not use
    (domain/queries.py ADDED_LATER), so the digest of a token issued before a field
    existed is unchanged."""
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return str(value)
    shown = [
        f"{f.name}={getattr(value, f.name)!r}"
        for f in dataclasses.fields(value)
        if f.repr and not (f.metadata.get("added_later") and getattr(value, f.name) == f.default)
    ]
    return f"{type(value).__qualname__}({', '.join(shown)})"


def encode_token(position: Position, scope: str) -> str:
    """The token that continues after `position`."""
    raw = json.dumps({"p": position, "s": scope})
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def _invalid() -> InvalidInput:
    return InvalidInput(
        [
            FieldViolation(
                "page_token",
                FieldReason.INVALID_PAGE_TOKEN,
                "not a page token of this listing with these filters",
            )
        ]
    )


def decode_token(token: str, scope: str) -> Position | None:
    """The position of a token issued for the same filters; None for the first page.

    Raises:
        InvalidInput: the token is malformed or belongs to other filters.
    """
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        position = data["p"]
        valid = data["s"] == scope and isinstance(position, list)
    except (ValueError, KeyError, TypeError, binascii.Error):
        valid = False
    if not valid:
        raise _invalid()
    return list(position)


def decode_time_cursor(token: str, scope: str) -> TimeCursor | None:
    """A (created_at, id) cursor from a token."""
    position = decode_token(token, scope)
    if position is None:
        return None
    try:
        when, last_id = position
        if not isinstance(when, str) or not isinstance(last_id, str) or len(last_id) > 64:
            raise ValueError("not a time cursor")
        cursor = (datetime.fromisoformat(when), last_id)
    except ValueError as error:
        raise _invalid() from error
    if cursor[0].tzinfo is None:
        raise _invalid()
    return cursor


def decode_version_cursor(token: str, scope: str) -> int | None:
    """An account-version cursor (statements) from a token."""
    position = decode_token(token, scope)
    if position is None:
        return None
    if len(position) != 1 or not isinstance(position[0], int) or not 0 <= position[0] < 2**63:
        raise _invalid()
    return position[0]


def paginate(rows: list[T], size: int, position_of: Callable[[T], Position], scope: str) -> Page[T]:
    """Turns `size + 1` fetched rows into a page and the token for the next one."""
    if len(rows) <= size:
        return Page(rows, "")
    items = rows[:size]
    return Page(items, encode_token(position_of(items[-1]), scope))


def time_position(created_at: datetime, item_id: str) -> Position:
    """The position of a row listed by (created_at, id)."""
    return [created_at.isoformat(), item_id]


class Listed(Protocol):
    """A row listed newest first by (created_at, id)."""

    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...


L = TypeVar("L", bound=Listed)


async def newest_first(
    uow: UnitOfWork,
    caller: Caller,
    listing: str,
    where: object,
    size: int,
    token: str,
    fetch: Callable[[Session, TimeCursor | None, int], Awaitable[list[L]]],
    *,
    statements: int = 1,
) -> Page[L]:
    """One page of a (created_at, id) keyset listing, read in a snapshot.

    `fetch(session, after, limit)` returns up to `limit` rows after the cursor, in
    `statements` statements (more than one: in one read-only transaction).
    """
    scope = scope_of(listing, where)
    after = decode_time_cursor(token, scope)

    async def work(session: Session) -> list[L]:
        return await fetch(session, after, size + 1)

    rows = await uow.read(caller, work, statements=statements)
    return paginate(rows, size, lambda row: time_position(row.created_at, row.id), scope)
