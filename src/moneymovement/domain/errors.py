"""Domain errors: each carries a stable reason; transport/ maps reasons to gRPC codes.

The reasons here are those a use case can give. The ones only the edge gives (a missing or
unknown token, a limit reached before any work began) live in transport/errors.py; the two
enums together are the proto's ErrorReason.

Three families, because the service layer treats them differently:
- `InvalidInput`: the request itself is malformed. Found before any database work and
  never recorded against the request id.
- `Rejected`: a business outcome (not found, insufficient funds, ...). It is recorded with
  the request id, so a replay of the same request gets the same rejection.
- `DomainError` itself: everything else (conflicts, deadlines, an unreachable database);
  never recorded, because a retry may well succeed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Reason(enum.StrEnum):
    """The stable machine-readable reasons of the use cases (ErrorReason in the proto,
    docs/errors.md; the edge's own are transport.errors.EdgeReason)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"
    TRANSFER_NOT_FOUND = "TRANSFER_NOT_FOUND"
    REQUEST_ID_REUSED = "REQUEST_ID_REUSED"
    EXTERNAL_ID_TAKEN = "EXTERNAL_ID_TAKEN"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    ACCOUNT_FROZEN = "ACCOUNT_FROZEN"
    ACCOUNT_CLOSED = "ACCOUNT_CLOSED"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    ACCOUNT_NOT_EMPTY = "ACCOUNT_NOT_EMPTY"
    VERSION_MISMATCH = "VERSION_MISMATCH"
    OVERDRAFT_LIMIT_IN_USE = "OVERDRAFT_LIMIT_IN_USE"
    BALANCE_OVERFLOW = "BALANCE_OVERFLOW"
    TRANSFER_NOT_PENDING = "TRANSFER_NOT_PENDING"
    HOLD_EXPIRED = "HOLD_EXPIRED"
    POST_EXCEEDS_HOLD = "POST_EXCEEDS_HOLD"
    TRANSFER_NOT_POSTED = "TRANSFER_NOT_POSTED"
    REVERSAL_EXCEEDS_ORIGINAL = "REVERSAL_EXCEEDS_ORIGINAL"
    REQUEST_IN_PROGRESS = "REQUEST_IN_PROGRESS"
    CONCURRENCY_CONFLICT = "CONCURRENCY_CONFLICT"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    NOT_IMPLEMENTED = "NOT_IMPLEMENTED"
    INTERNAL = "INTERNAL"
    CURSOR_EXPIRED = "CURSOR_EXPIRED"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    EARLY_RELEASE_NOT_ALLOWED = "EARLY_RELEASE_NOT_ALLOWED"
    FUNDS_NOT_FOUND = "FUNDS_NOT_FOUND"
    FUNDS_NOT_SCHEDULED = "FUNDS_NOT_SCHEDULED"
    RELEASE_EXCEEDS_PENDING = "RELEASE_EXCEEDS_PENDING"
    DEBIT_LIMIT_EXCEEDED = "DEBIT_LIMIT_EXCEEDED"
    BALANCE_LIMIT_EXCEEDED = "BALANCE_LIMIT_EXCEEDED"
    MONITOR_NOT_FOUND = "MONITOR_NOT_FOUND"
    MONITOR_LIMIT_REACHED = "MONITOR_LIMIT_REACHED"
    AVAILABILITY_NOT_APPLICABLE = "AVAILABILITY_NOT_APPLICABLE"
    EXTERNAL_ACCOUNT_NOT_FOUND = "EXTERNAL_ACCOUNT_NOT_FOUND"
    EXTERNAL_ACCOUNT_DISABLED = "EXTERNAL_ACCOUNT_DISABLED"
    PAYOUT_NOT_FOUND = "PAYOUT_NOT_FOUND"
    PAYOUT_NOT_CANCELABLE = "PAYOUT_NOT_CANCELABLE"
    FUNDS_NOT_YET_AVAILABLE = "FUNDS_NOT_YET_AVAILABLE"
    TRANSFER_OWNED = "TRANSFER_OWNED"
    INBOUND_TRANSFER_NOT_FOUND = "INBOUND_TRANSFER_NOT_FOUND"
    INVALID_PAYOUT_SOURCE = "INVALID_PAYOUT_SOURCE"
    HOLD_EXTENSION_OUT_OF_RANGE = "HOLD_EXTENSION_OUT_OF_RANGE"
    ASSET_CODE_TAKEN = "ASSET_CODE_TAKEN"
    ASSET_CODE_RESERVED = "ASSET_CODE_RESERVED"
    ASSET_LIMIT_REACHED = "ASSET_LIMIT_REACHED"
    TENANT_NOT_FOUND = "TENANT_NOT_FOUND"
    TOKEN_NOT_FOUND = "TOKEN_NOT_FOUND"
    HOLDER_NOT_FOUND = "HOLDER_NOT_FOUND"
    HOLDER_EXTERNAL_ID_TAKEN = "HOLDER_EXTERNAL_ID_TAKEN"
    HOLDER_RESTRICTED = "HOLDER_RESTRICTED"
    HOLDER_NOT_EMPTY = "HOLDER_NOT_EMPTY"
    HOLDER_CLOSED = "HOLDER_CLOSED"
    HOLDER_SCOPE_FORBIDS = "HOLDER_SCOPE_FORBIDS"
    HOLDER_SCOPE_MISMATCH = "HOLDER_SCOPE_MISMATCH"
    RESERVE_ACCOUNT_INELIGIBLE = "RESERVE_ACCOUNT_INELIGIBLE"
    RESERVE_DEBT_OUTSTANDING = "RESERVE_DEBT_OUTSTANDING"
    RESERVE_TRANSFER_NOT_REVERSIBLE = "RESERVE_TRANSFER_NOT_REVERSIBLE"


class FieldReason(enum.StrEnum):
    """Why one field of a request was refused (BadRequest.FieldViolation.reason)."""

    REQUIRED = "REQUIRED"
    INVALID_FORMAT = "INVALID_FORMAT"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    TOO_LONG = "TOO_LONG"
    TOO_MANY = "TOO_MANY"
    UNKNOWN_CURRENCY = "UNKNOWN_CURRENCY"
    MUST_DIFFER = "MUST_DIFFER"
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"
    DUPLICATE = "DUPLICATE"


@dataclass(frozen=True)
class FieldViolation:
    """One refused field, named by its path in the request (e.g. `transfers[3].amount_minor`)."""

    field: str
    reason: FieldReason
    description: str


class DomainError(Exception):
    """A failure with a stable reason, safe to show to the caller."""

    def __init__(
        self, reason: Reason, message: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})


MAX_VIOLATIONS_REPORTED = 50


class InvalidInput(DomainError):
    """The request is malformed; `violations` names the offending fields.

    At most MAX_VIOLATIONS_REPORTED are kept: a 1,000-item batch with bad items must not
    produce error details larger than gRPC's metadata limit.
    """

    def __init__(self, violations: list[FieldViolation]) -> None:
        kept = violations[:MAX_VIOLATIONS_REPORTED]
        fields = ", ".join(v.field for v in kept[:10])
        more = len(violations) - min(len(violations), 10)
        suffix = f" and {more} more" if more else ""
        super().__init__(Reason.INVALID_ARGUMENT, f"invalid request: {fields}{suffix}")
        self.violations = kept


class Rejected(DomainError):
    """A business outcome: recorded with the request id and replayed identically."""


def deadline_exceeded() -> DomainError:
    """The caller's deadline passed before the work finished (outcome: see errors.md)."""
    return DomainError(Reason.DEADLINE_EXCEEDED, "the deadline passed before the work finished")


def database_unavailable() -> DomainError:
    """The database could not be reached; nothing is known to have been done."""
    return DomainError(Reason.DATABASE_UNAVAILABLE, "the database is unavailable; retry later")


def account_not_found(account_id: str) -> Rejected:
    """The rejection for an account that is missing or belongs to another tenant."""
    return Rejected(
        Reason.ACCOUNT_NOT_FOUND,
        f"account {account_id} not found",
        {"account_id": account_id},
    )


def transfer_not_found(transfer_id: str) -> Rejected:
    """The rejection for a transfer that is missing or belongs to another tenant."""
    return Rejected(
        Reason.TRANSFER_NOT_FOUND,
        f"transfer {transfer_id} not found",
        {"transfer_id": transfer_id},
    )


def tenant_not_found(tenant_id: str) -> Rejected:
    """AdminService's rejection for a tenant id no tenant has."""
    return Rejected(
        Reason.TENANT_NOT_FOUND, f"tenant {tenant_id} not found", {"tenant_id": tenant_id}
    )


def token_not_found(token_id: str) -> Rejected:
    """AdminService's rejection for a token id no token has."""
    return Rejected(Reason.TOKEN_NOT_FOUND, f"token {token_id} not found", {"token_id": token_id})
