"""Accounts: their policy, their lifecycle and the rules that guard their balances."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from moneymovement.domain.balances import Balances, BalanceSnapshot, NormalBalance
from moneymovement.domain.errors import (
    FieldReason,
    FieldViolation,
    InvalidInput,
    Reason,
    Rejected,
)
from moneymovement.domain.funds import NO_POLICY, FundsPolicy, Part, validate_policy


class AccountState(enum.Enum):
    """The lifecycle of an account: ACTIVE <-> FROZEN -> CLOSED (final)."""

    ACTIVE = "ACTIVE"
    FROZEN = "FROZEN"
    CLOSED = "CLOSED"


class FreezeScope(enum.Enum):
    """What a freeze stops: every transfer, or only those taking money out."""

    ALL = "ALL"
    DEBITS = "DEBITS"


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
    funds_policy: FundsPolicy = NO_POLICY
    freeze_scope: FreezeScope | None = None  # set exactly when FROZEN
    freeze_reason: str = ""
    # Rises with a change of the attributes or state only (not of the balances): what
    # expected_attributes_version is compared with.
    attributes_version: int = 1
    # A platform account calls acting for a holder may credit (domain/holder_scope.py).
    open_to_holders: bool = False
    # The platform account that covers a reversal this account cannot pay, and what
    # this account owes it for the covers (domain/reserve.py, docs/platforms.md).
    negative_balance_reserve_account_id: str = ""
    reserve_debt_minor: int = 0

    def floor_minor(self) -> int | None:
        """The lowest available balance the overdraft policy allows; None when unbounded."""
        if self.overdraft_mode is OverdraftMode.UNLIMITED:
            return None
        if self.overdraft_mode is OverdraftMode.LIMITED:
            return -self.overdraft_limit_minor
        return 0

    def spending_floor_minor(self) -> int | None:
        """The lowest available balance a debit may leave: the overdraft floor raised by
        the minimum reserve; None when unbounded."""
        floor = self.floor_minor()
        if floor is None:
            return None
        return floor + self.funds_policy.reserve.minimum_minor


def balance_snapshot(
    account: Account, as_of: datetime, schedule: tuple[Part, ...] = ()
) -> BalanceSnapshot:
    """The account's balances as they stand in `account`, as of `as_of`."""
    return BalanceSnapshot(
        account_id=account.id,
        currency_code=account.currency_code,
        normal_balance=account.normal_balance,
        balances=account.balances,
        version=account.version,
        as_of=as_of,
        minimum_reserve_minor=account.funds_policy.reserve.minimum_minor,
        schedule=schedule,
        reserve_debt_minor=account.reserve_debt_minor,
    )


def _refuse_closed_or_frozen(account: Account) -> None:
    if account.state is AccountState.CLOSED:
        raise Rejected(
            Reason.ACCOUNT_CLOSED, f"account {account.id} is closed", {"account_id": account.id}
        )
    scope = account.freeze_scope or FreezeScope.ALL
    raise Rejected(
        Reason.ACCOUNT_FROZEN,
        f"account {account.id} is frozen"
        + (" for debits" if scope is FreezeScope.DEBITS else "")
        + (f": {account.freeze_reason}" if account.freeze_reason else ""),
        {"account_id": account.id, "scope": scope.value, "freeze_reason": account.freeze_reason},
    )


def require_open_for_debits(account: Account) -> None:
    """Refuses money out of a closed or frozen account (either freeze scope)."""
    if account.state is not AccountState.ACTIVE:
        _refuse_closed_or_frozen(account)


def require_open_for_credits(account: Account) -> None:
    """Refuses money into a closed account or one frozen for everything; a debit-only
    freeze lets credits in."""
    if account.state is AccountState.CLOSED or (
        account.state is AccountState.FROZEN and account.freeze_scope is not FreezeScope.DEBITS
    ):
        _refuse_closed_or_frozen(account)


def require_within_policy(account: Account, before: Balances, after: Balances) -> None:
    """Refuses a change that lowers the available balance below the spending floor (the
    overdraft floor plus the minimum reserve), and one that raises the posted balance
    above the policy's maximum balance.

    The overdraft part is the accounts_within_overdraft_policy constraint, so the
    database never has to refuse what the domain accepted: any change that leaves the
    available balance below the overdraft floor is refused. The minimum reserve refuses
    only changes that lower the available balance: an account below it (the minimum was
    raised, or never reached) can always receive money.
    """
    normal = account.normal_balance
    maximum = account.funds_policy.max_balance_minor
    if maximum and after.posted(normal) > max(maximum, before.posted(normal)):
        raise Rejected(
            Reason.BALANCE_LIMIT_EXCEEDED,
            f"account {account.id} may hold at most {maximum}",
            {
                "account_id": account.id,
                "max_balance_minor": str(maximum),
                "posted_minor": str(before.posted(normal)),
            },
        )
    available = after.available(normal)
    overdraft_floor = account.floor_minor()
    spending_floor = account.spending_floor_minor()
    if overdraft_floor is None or spending_floor is None:
        return
    if available >= spending_floor:
        return
    if available >= overdraft_floor and available >= before.available(normal):
        return  # below the minimum reserve, but not lowered: money may still come in
    raise Rejected(
        Reason.INSUFFICIENT_FUNDS,
        f"account {account.id} has insufficient funds",
        {
            "account_id": account.id,
            "asked_minor": str(before.available(normal) - available),
            "available_minor": str(before.available(normal)),
            "floor_minor": str(spending_floor),
            "pending_availability_minor": str(before.pending_availability_minor),
            "reserved_minor": str(before.reserved_minor),
            "minimum_reserve_minor": str(account.funds_policy.reserve.minimum_minor),
        },
    )


def require_version(
    account: Account, expected_version: int | None, expected_attributes_version: int | None = None
) -> None:
    """Optimistic concurrency: refuses when the caller saw another version (any change,
    balances included) or another attributes version (a change of the attributes)."""
    mismatch = (expected_version is not None and expected_version != account.version) or (
        expected_attributes_version is not None
        and expected_attributes_version != account.attributes_version
    )
    if mismatch:
        raise Rejected(
            Reason.VERSION_MISMATCH,
            f"account {account.id} is at version {account.version}, attributes version "
            f"{account.attributes_version}",
            {
                "account_id": account.id,
                "current_version": str(account.version),
                "current_attributes_version": str(account.attributes_version),
            },
        )


def _changed(before: Account, after: Account) -> Account:
    """`after`, a change of `before`'s attributes or state: both versions rise."""
    return replace(
        after, version=before.version + 1, attributes_version=before.attributes_version + 1
    )


def _closed(account: Account) -> Rejected:
    return Rejected(
        Reason.ACCOUNT_CLOSED, f"account {account.id} is closed", {"account_id": account.id}
    )


def freeze(account: Account, scope: FreezeScope = FreezeScope.ALL, reason: str = "") -> Account:
    """FROZEN for `scope`, with a reason; freezing again with the same scope and reason
    is a no-op (same version), with another changes them."""
    if account.state is AccountState.CLOSED:
        raise _closed(account)
    if (
        account.state is AccountState.FROZEN
        and (account.freeze_scope or FreezeScope.ALL) is scope
        and account.freeze_reason == reason
    ):
        return account
    frozen = replace(account, state=AccountState.FROZEN, freeze_scope=scope, freeze_reason=reason)
    return _changed(account, frozen)


def unfreeze(account: Account) -> Account:
    """ACTIVE again; unfreezing an active account is a no-op."""
    if account.state is AccountState.CLOSED:
        raise _closed(account)
    if account.state is AccountState.ACTIVE:
        return account
    return _changed(
        account,
        replace(account, state=AccountState.ACTIVE, freeze_scope=None, freeze_reason=""),
    )


def _left(account: Account) -> dict[str, str]:
    """What keeps an account from closing, for ACCOUNT_NOT_EMPTY's metadata."""
    b, normal = account.balances, account.normal_balance
    return {
        "posted_minor": str(b.posted(normal)),
        "pending_inbound_minor": str(b.pending_inbound(normal)),
        "pending_outbound_minor": str(b.pending_outbound(normal)),
        "pending_availability_minor": str(b.pending_availability_minor),
        "reserved_minor": str(b.reserved_minor),
    }


def require_no_reserve_debt(account: Account) -> None:
    """Refuses what would lose track of a debt to the negative-balance reserve (closing
    the account, changing or removing its reserve) while the account owes it."""
    if account.reserve_debt_minor:
        raise Rejected(
            Reason.RESERVE_DEBT_OUTSTANDING,
            f"account {account.id} owes its negative-balance reserve {account.reserve_debt_minor}",
            {
                "account_id": account.id,
                "reserve_account_id": account.negative_balance_reserve_account_id,
                "reserve_debt_minor": str(account.reserve_debt_minor),
            },
        )


def close(account: Account, owed_as_reserve: int = 0) -> Account:
    """CLOSED for good; only with a zero posted balance, nothing pending, no debt to its
    negative-balance reserve and, for a reserve, nothing owed to it (`owed_as_reserve`:
    what accounts owe it; a debt owed to a closed reserve could never be repaid)."""
    if account.state is AccountState.CLOSED:
        return account
    require_no_reserve_debt(account)
    if owed_as_reserve:
        raise Rejected(
            Reason.RESERVE_DEBT_OUTSTANDING,
            f"accounts owe account {account.id}, their negative-balance reserve, {owed_as_reserve}",
            {
                "account_id": account.id,
                "reserve_account_id": account.id,
                "reserve_debt_minor": str(owed_as_reserve),
            },
        )
    if not account.balances.is_zero():
        raise Rejected(
            Reason.ACCOUNT_NOT_EMPTY,
            f"account {account.id} has a balance or pending holds",
            {"account_id": account.id, **_left(account)},
        )
    return _changed(account, replace(account, state=AccountState.CLOSED))


@dataclass(frozen=True)
class AccountChanges:
    """The changes UpdateAccount may make; None means unchanged."""

    name: str | None = None
    metadata_patch: Mapping[str, str] = field(default_factory=dict)
    overdraft_mode: OverdraftMode | None = None
    overdraft_limit_minor: int | None = None
    funds_policy: FundsPolicy | None = None  # replaces the whole policy
    open_to_holders: bool | None = None
    # The negative-balance reserve: an account id, or "" to remove it.
    negative_balance_reserve_account_id: str | None = None


def update(account: Account, changes: AccountChanges, metadata_limit: int) -> Account:
    """Applies name, metadata and overdraft changes; an update that changes nothing keeps
    the version.

    Raises:
        InvalidInput: the merged metadata holds too many keys, a limit is given for a
            mode other than LIMITED, or a funds policy for a debit-normal account.
        Rejected: ACCOUNT_CLOSED; OVERDRAFT_LIMIT_IN_USE when the account's available
            balance is already below the new floor.
    """
    if account.state is AccountState.CLOSED:
        raise _closed(account)
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
    if changes.funds_policy is not None:
        validate_policy(changes.funds_policy, account.normal_balance)
        updated = replace(updated, funds_policy=changes.funds_policy)
    if changes.open_to_holders is not None:
        require_platform_account(account.holder_id, changes.open_to_holders)
        updated = replace(updated, open_to_holders=changes.open_to_holders)
    reserve_id = changes.negative_balance_reserve_account_id
    if reserve_id is not None and reserve_id != account.negative_balance_reserve_account_id:
        require_no_reserve_debt(account)
        updated = replace(updated, negative_balance_reserve_account_id=reserve_id)
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
    return _changed(account, updated)


def require_platform_account(holder_id: str, open_to_holders: bool) -> None:
    """Only a platform account (one without a holder id) may be open to holders: a
    holder's account is its own, and the database checks it too (migration 0015).

    Raises:
        InvalidInput: open_to_holders for an account with a holder id.
    """
    if open_to_holders and holder_id:
        raise InvalidInput(
            [
                FieldViolation(
                    "open_to_holders",
                    FieldReason.OUT_OF_RANGE,
                    "only an account without a holder_id can be open to holders",
                )
            ]
        )
