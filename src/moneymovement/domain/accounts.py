"""Accounts: their policy, their lifecycle and the rules that guard their balances."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from moneymovement.domain.balances import Balances, NormalBalance
from moneymovement.domain.errors import (
    FieldReason,
    FieldViolation,
    InvalidInput,
    Reason,
    Rejected,
)


class AccountState(enum.Enum):
    """The lifecycle of an account: ACTIVE <-> FROZEN -> CLOSED (final)."""

    ACTIVE = "ACTIVE"
    FROZEN = "FROZEN"
    CLOSED = "CLOSED"


class OverdraftMode(enum.Enum):
    """How far the available balance may go below zero."""

    NONE = "NONE"
    LIMITED = "LIMITED"
    UNLIMITED = "UNLIMITED"


@dataclass(frozen=True)
class Account:
    """An account with its stored balances, as of `version`."""

    id: str
    currency_code: str
    normal_balance: NormalBalance
    overdraft_mode: OverdraftMode
    overdraft_limit_minor: int
    state: AccountState
    version: int
    created_at: datetime
    updated_at: datetime
    external_id: str | None = None
    name: str = ""
    holder_id: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    balances: Balances = field(default_factory=Balances)

    def floor_minor(self) -> int | None:
        """The lowest available balance the policy allows; None when unbounded."""
        if self.overdraft_mode is OverdraftMode.UNLIMITED:
            return None
        if self.overdraft_mode is OverdraftMode.LIMITED:
            return -self.overdraft_limit_minor
        return 0


def require_open_for_transfers(account: Account) -> None:
    """Refuses transfers touching a frozen or closed account."""
    if account.state is AccountState.CLOSED:
        raise Rejected(
            Reason.ACCOUNT_CLOSED, f"account {account.id} is closed", {"account_id": account.id}
        )
    if account.state is AccountState.FROZEN:
        raise Rejected(
            Reason.ACCOUNT_FROZEN, f"account {account.id} is frozen", {"account_id": account.id}
        )


def require_within_policy(account: Account, before: Balances, after: Balances) -> None:
    """Refuses a change that leaves the available balance below the overdraft floor.

    The same rule as the accounts_within_overdraft_policy constraint, so the database never
    has to refuse what the domain accepted. (No account is ever below its floor: a
    tighter policy than the balance allows is refused with OVERDRAFT_LIMIT_IN_USE.)
    """
    floor = account.floor_minor()
    normal = account.normal_balance
    if floor is None or after.available(normal) >= floor:
        return
    raise Rejected(
        Reason.INSUFFICIENT_FUNDS,
        f"account {account.id} has insufficient funds",
        {"account_id": account.id, "available_minor": str(before.available(normal))},
    )


def require_version(account: Account, expected_version: int | None) -> None:
    """Optimistic concurrency: refuses when the caller saw another version."""
    if expected_version is not None and expected_version != account.version:
        raise Rejected(
            Reason.VERSION_MISMATCH,
            f"account {account.id} is at version {account.version}, not {expected_version}",
            {"account_id": account.id, "current_version": str(account.version)},
        )


def freeze(account: Account) -> Account:
    """FROZEN; freezing a frozen account is a no-op (same version)."""
    if account.state is AccountState.CLOSED:
        raise Rejected(Reason.ACCOUNT_CLOSED, f"account {account.id} is closed")
    if account.state is AccountState.FROZEN:
        return account
    return replace(account, state=AccountState.FROZEN, version=account.version + 1)


def unfreeze(account: Account) -> Account:
    """ACTIVE again; unfreezing an active account is a no-op."""
    if account.state is AccountState.CLOSED:
        raise Rejected(Reason.ACCOUNT_CLOSED, f"account {account.id} is closed")
    if account.state is AccountState.ACTIVE:
        return account
    return replace(account, state=AccountState.ACTIVE, version=account.version + 1)


def close(account: Account) -> Account:
    """CLOSED for good; only with a zero posted balance and nothing pending."""
    if account.state is AccountState.CLOSED:
        return account
    if not account.balances.is_zero():
        raise Rejected(
            Reason.ACCOUNT_NOT_EMPTY,
            f"account {account.id} has a balance or pending holds",
            {"account_id": account.id},
        )
    return replace(account, state=AccountState.CLOSED, version=account.version + 1)


@dataclass(frozen=True)
class AccountChanges:
    """The changes UpdateAccount may make; None means unchanged."""

    name: str | None = None
    metadata_patch: Mapping[str, str] = field(default_factory=dict)
    overdraft_mode: OverdraftMode | None = None
    overdraft_limit_minor: int | None = None


def update(account: Account, changes: AccountChanges, metadata_limit: int) -> Account:
    """Applies name, metadata and overdraft changes; an update that changes nothing keeps
    the version.

    Raises:
        InvalidInput: the merged metadata holds too many keys, or a limit is given for a
            mode other than LIMITED.
        Rejected: ACCOUNT_CLOSED; OVERDRAFT_LIMIT_IN_USE when the account's available
            balance is already below the new floor.
    """
    if account.state is AccountState.CLOSED:
        raise Rejected(Reason.ACCOUNT_CLOSED, f"account {account.id} is closed")
    metadata = dict(account.metadata)
    for key, value in changes.metadata_patch.items():
        if value:
            metadata[key] = value
        else:
            metadata.pop(key, None)
    if len(metadata) > metadata_limit:
        raise InvalidInput(
            [FieldViolation("metadata", FieldReason.TOO_MANY, f"at most {metadata_limit} keys")]
        )
    mode = changes.overdraft_mode or account.overdraft_mode
    limit = changes.overdraft_limit_minor
    if limit is None:
        limit = account.overdraft_limit_minor if mode is OverdraftMode.LIMITED else 0
    elif limit != 0 and mode is not OverdraftMode.LIMITED:
        raise InvalidInput(
            [
                FieldViolation(
                    "overdraft_limit_minor",
                    FieldReason.OUT_OF_RANGE,
                    "a non-zero limit needs OVERDRAFT_MODE_LIMITED",
                )
            ]
        )
    updated = replace(
        account,
        name=account.name if changes.name is None else changes.name,
        metadata=metadata,
        overdraft_mode=mode,
        overdraft_limit_minor=limit,
    )
    floor = updated.floor_minor()
    available = account.balances.available(account.normal_balance)
    if floor is not None and available < floor:
        raise Rejected(
            Reason.OVERDRAFT_LIMIT_IN_USE,
            f"account {account.id} already uses more than the new overdraft policy allows",
            {"account_id": account.id, "available_minor": str(available)},
        )
    if updated == account:
        return account
    return replace(updated, version=account.version + 1)
