"""The one interface every rail implements, and the values that cross it.

The worker codes against `Rail` only. The rules it can rely on, whatever the network:

- A payout's key (our payout id) is the idempotency key: submitting the same key twice
  never pays twice, the rail answers the status of the first submission.
- `RailTimeout` means the answer was lost, not the request: the rail may have the payout.
  The worker asks `status(key)` and submits again only when that says None.
- `RailUnavailable` means nothing was received: retrying later is safe.
- `callbacks()` are hints (repeated, reordered, stale, lost with the process); `status()`
  is the truth.
- `inbound()` redelivers every notice until `ack_inbound()`, so the worker acknowledges
  only after the ledger has applied it, and dedupes by `reference` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class RailState(StrEnum):
    """Where a payout is on the rail. POSTED can still become RETURNED later."""

    PROCESSING = "PROCESSING"
    POSTED = "POSTED"
    FAILED = "FAILED"
    RETURNED = "RETURNED"


@dataclass(frozen=True)
class RailPayout:
    """A payout as the rail sees it: the destination is a routing reference, the last four
    digits and a fingerprint of the account number, never the number itself."""

    key: str
    tenant_id: str
    amount_minor: int
    currency_code: str
    method: str  # "STANDARD" | "INSTANT"
    routing_reference: str
    last4: str
    fingerprint: str


@dataclass(frozen=True)
class RailStatus:
    """The rail's answer about one payout at one moment."""

    key: str
    state: RailState
    amount_minor: int
    currency_code: str
    reason: str = ""  # the rail's failure or return reason code, e.g. "account_closed"


class InboundKind(StrEnum):
    CREDIT = "CREDIT"
    RETURN = "RETURN"


@dataclass(frozen=True)
class InboundNotice:
    """Money in, or money taken back.

    CREDIT: money arrived for our account `account_id` of `tenant_id`; `reference` is the
    rail's own unique reference of the credit.
    RETURN: the rail took back the earlier CREDIT whose reference is `reference` (same
    amount), for `reason`.
    """

    kind: InboundKind
    reference: str
    tenant_id: str
    account_id: str
    amount_minor: int
    currency_code: str
    description: str = ""
    reason: str = ""


class RailTimeout(Exception):
    """The answer was lost: the rail may or may not have the request. Ask `status()`."""


class RailUnavailable(Exception):
    """Refused before anything was received; safe to retry later."""


class SettlementKind(StrEnum):
    PAYOUT = "PAYOUT"
    INBOUND = "INBOUND"


class InboundState(StrEnum):
    """The state of an inbound credit in a settlement report."""

    RECEIVED = "RECEIVED"
    RETURNED = "RETURNED"


@dataclass(frozen=True)
class SettlementLine:
    """One line of a rail's settlement report.

    PAYOUT: `reference` is the payout key, `state` a `RailState` name.
    INBOUND: `reference` is the credit's reference, `state` an `InboundState` name.
    """

    kind: SettlementKind
    tenant_id: str
    reference: str
    amount_minor: int
    currency_code: str
    state: str


class Rail(Protocol):
    """A network that pays out and brings money in. See the module docstring for the rules."""

    name: str

    async def submit(self, payout: RailPayout) -> RailStatus:
        """Send a payout; idempotent by key. May raise RailTimeout (possibly accepted) or
        RailUnavailable (not received)."""
        ...

    async def status(self, key: str) -> RailStatus | None:
        """The payout's state now; None when the rail never received the key."""
        ...

    async def callbacks(self) -> list[RailStatus]:
        """Status notices since the last call: they may repeat, come out of order or be
        stale, and are not durable, so the worker polls `status()` as well."""
        ...

    async def inbound(self) -> list[InboundNotice]:
        """Every notice not yet acknowledged, oldest first (redelivered until acked)."""
        ...

    async def ack_inbound(self, notices: Sequence[InboundNotice]) -> None:
        """Acknowledge notices the ledger has applied; acknowledging twice is harmless."""
        ...

    async def settlement_report(self) -> list[SettlementLine]:
        """Every payout received with its state now, every inbound credit RECEIVED or
        RETURNED."""
        ...
