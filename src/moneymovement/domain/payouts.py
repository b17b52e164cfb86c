"""Money in and out over bank rails: external accounts, payouts and inbound transfers
(docs/payouts.md). Pure data and the payout state machine; the ledger moves their money
(domain/rail_ledger.py).

A payout's states: PENDING -> PROCESSING -> POSTED -> RETURNED, or PENDING -> CANCELED,
or PROCESSING -> FAILED. Only the payout worker moves it to PROCESSING (just before it
hands it to the rail) and on from there, as the rail tells; a caller may only cancel it
while it is PENDING.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from moneymovement.domain import ids
from moneymovement.domain.errors import Reason, Rejected


class PayoutState(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    POSTED = "POSTED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    RETURNED = "RETURNED"


class PayoutMethod(StrEnum):
    # STANDARD waits for the next submission cut-off (Settings.payout_standard_delay_s);
    # INSTANT is handed to the rail at once.
    STANDARD = "STANDARD"
    INSTANT = "INSTANT"


class ExternalAccountState(StrEnum):
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"


class InboundState(StrEnum):
    RECEIVED = "RECEIVED"
    RETURNED = "RETURNED"


# Where a state may go, and who moves it there (the rail's answers, the worker's
# submission, a caller's cancel).
_NEXT: Mapping[PayoutState, frozenset[PayoutState]] = {
    PayoutState.PENDING: frozenset({PayoutState.PROCESSING, PayoutState.CANCELED}),
    PayoutState.PROCESSING: frozenset({PayoutState.POSTED, PayoutState.FAILED}),
    PayoutState.POSTED: frozenset({PayoutState.RETURNED}),
    PayoutState.FAILED: frozenset(),
    PayoutState.CANCELED: frozenset(),
    PayoutState.RETURNED: frozenset(),
}

TERMINAL = frozenset(s for s, nexts in _NEXT.items() if not nexts)


def can_move(state: PayoutState, to: PayoutState) -> bool:
    return to in _NEXT[state]


@dataclass(frozen=True)
class ExternalAccount:
    """A bank destination, as a ledger needs it: never the full account number."""

    id: str
    rail: str
    currency_code: str
    routing_reference: str
    last4: str
    fingerprint: str
    state: ExternalAccountState
    request_id: str
    created_at: datetime
    updated_at: datetime
    holder_name: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Payout:
    """Money out of `account_id` to an external account through its rail."""

    id: str
    request_id: str
    account_id: str
    external_account_id: str
    settlement_account_id: str
    rail: str
    amount_minor: int
    currency_code: str
    method: PayoutMethod
    state: PayoutState
    hold_transfer_id: str
    submit_after: datetime
    created_at: datetime
    updated_at: datetime
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    fee_minor: int = 0
    fee_account_id: str | None = None
    fee_transfer_id: str | None = None
    return_transfer_id: str | None = None
    failure_reason: str = ""
    return_reason: str = ""
    trace_id: str | None = None
    processing_at: datetime | None = None
    settled_at: datetime | None = None
    returned_at: datetime | None = None

    @property
    def transfer_ids(self) -> tuple[str, ...]:
        """The holds it owns (the amount's, the fee's)."""
        if self.fee_transfer_id is None:
            return (self.hold_transfer_id,)
        return (self.hold_transfer_id, self.fee_transfer_id)


@dataclass(frozen=True)
class InboundTransfer:
    """Money that arrived from a rail, credited to `account_id`."""

    id: str
    request_id: str
    rail: str
    rail_reference: str
    account_id: str
    settlement_account_id: str
    amount_minor: int
    currency_code: str
    state: InboundState
    transfer_id: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    return_transfer_id: str | None = None
    return_reason: str = ""
    trace_id: str | None = None
    returned_at: datetime | None = None


def fingerprint(tenant_id: str, routing_reference: str, account_number: str) -> str:
    """The same destination's fingerprint, within a tenant: a keyed hash, so equal
    destinations of two tenants do not look alike. It identifies duplicates; it is not
    a secret (account numbers are short enough to guess by brute force)."""
    digest = hmac.new(
        tenant_id.encode(), f"{routing_reference}|{account_number}".encode(), hashlib.sha256
    )
    return digest.hexdigest()[:32]


def settlement_account_id(tenant_id: str, rail: str, currency_code: str) -> str:
    """The id of a tenant's settlement account of a rail and currency: the same in every
    process (a hash, in the shape of an account id), so that the first payout or credit
    opens it in its own transaction and a concurrent one meets it on the key. The tenant
    is in the hash: no two tenants' accounts share an id."""
    text = f"settlement:{tenant_id}:{rail}:{currency_code}"
    digest = hashlib.sha256(text.encode()).digest()[:16]
    body = base64.b32encode(digest).decode("ascii").rstrip("=").lower()
    return f"{ids.ACCOUNT}_{body}"


def settlement_external_id(rail: str, currency_code: str) -> str:
    return f"rail:{rail}:settlement:{currency_code}"


def payout_not_found(payout_id: str) -> Rejected:
    return Rejected(
        Reason.PAYOUT_NOT_FOUND, f"payout {payout_id} not found", {"payout_id": payout_id}
    )


def external_account_not_found(external_account_id: str) -> Rejected:
    return Rejected(
        Reason.EXTERNAL_ACCOUNT_NOT_FOUND,
        f"external account {external_account_id} not found",
        {"external_account_id": external_account_id},
    )


def inbound_not_found(inbound_id: str) -> Rejected:
    return Rejected(
        Reason.INBOUND_TRANSFER_NOT_FOUND,
        f"inbound transfer {inbound_id} not found",
        {"inbound_transfer_id": inbound_id},
    )
