"""Filters of the list operations; None means any."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

# A filter added after page tokens were first issued: left out of a token's scope while
# unused (service/pages.py scope_of), so tokens issued before it keep working.
ADDED_LATER = {"added_later": True}


@dataclass(frozen=True)
class AccountQuery:
    """ListAccounts filters; None means any."""

    currency_code: str | None = None
    state: str | None = None
    holder_id: str | None = None
    external_id: str | None = None
    metadata: Mapping[str, str] | None = None
    # Keys that must be present, sorted, once each.
    metadata_keys: tuple[str, ...] = field(default=(), metadata=ADDED_LATER)


@dataclass(frozen=True)
class TransferQuery:
    """ListTransfers filters; None means any."""

    account_id: str | None = None
    state: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    metadata: Mapping[str, str] | None = None
    batch_id: str | None = None
    trace_id: str | None = None
    # Keys that must be present, sorted, once each.
    metadata_keys: tuple[str, ...] = field(default=(), metadata=ADDED_LATER)
    # Only transfers touching an account of this holder (a call acting for it).
    holder_id: str | None = field(default=None, metadata=ADDED_LATER)
