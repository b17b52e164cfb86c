"""Holders: whoever a tenant's ledger accounts belong to (a platform's sellers, drivers,
merchants; docs/platforms.md).

A holder has an external id unique in its tenant (the platform's own id for it), a name,
metadata and a state: ACTIVE; RESTRICTED (its accounts take money in, nothing new goes
out of them); CLOSED (for good, once every one of its accounts is closed). It owns the
accounts opened for it by its `hld_` id.

Pure: no I/O; the transaction's time comes in.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from moneymovement.domain import ids
from moneymovement.domain.accounts import Account
from moneymovement.domain.errors import FieldReason, FieldViolation, InvalidInput, Reason, Rejected
from moneymovement.domain.validation import MAX_METADATA_KEYS


class HolderState(enum.Enum):
    ACTIVE = "ACTIVE"
    RESTRICTED = "RESTRICTED"
    CLOSED = "CLOSED"


@dataclass(frozen=True)
class Holder:
    """A holder as stored; `version` rises with every change."""

    id: str
    external_id: str
    name: str
    metadata: Mapping[str, str]
    state: HolderState
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class HolderChanges:
    """What UpdateHolder asks to change: None (or an empty mapping) leaves it as it is;
    a metadata key with an empty value is removed."""

    name: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    state: HolderState | None = None


@dataclass(frozen=True)
class HolderQuery:
    """ListHolders' filters: None (or empty) matches every holder."""

    state: HolderState | None = None
    external_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    # Only this holder (a call acting for it lists itself alone).
    holder_id: str | None = field(default=None, metadata={"added_later": True})


@dataclass(frozen=True)
class HolderReads:
    """What the write transaction read of holders: the holders the commands name and
    those of the locked accounts; which claimed external ids are taken (id -> holder);
    for holders being closed, how many of their accounts were not closed."""

    holders: Sequence[Holder] = ()
    taken_external_ids: Mapping[str, str] = field(default_factory=dict)
    open_accounts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class HolderBalance:
    """The sums of one holder's accounts in one currency, each account's amounts signed
    by its own normal balance (as its Balance is)."""

    currency_code: str
    account_count: int
    posted_minor: int
    pending_inbound_minor: int
    pending_outbound_minor: int
    available_minor: int
    pending_availability_minor: int
    reserved_minor: int


def is_holder_id(value: str) -> bool:
    """Whether an account's holder_id names a holder (a `hld_` id) rather than being the
    free-form reference it was before holders existed."""
    return ids.is_id(value, ids.HOLDER)


def holder_not_found(holder_id: str) -> Rejected:
    """The rejection for a holder that is missing or belongs to another tenant."""
    return Rejected(Reason.HOLDER_NOT_FOUND, f"holder {holder_id} not found",
                    {"holder_id": holder_id})  # fmt: skip


def external_id_taken(external_id: str, holder_id: str) -> Rejected:
    """HOLDER_EXTERNAL_ID_TAKEN, naming the holder that has it."""
    return Rejected(
        Reason.HOLDER_EXTERNAL_ID_TAKEN,
        f"holder {holder_id} has this external_id",
        {"external_id": external_id, "holder_id": holder_id},
    )


def require_not_closed(holder: Holder) -> None:
    """Raises:
    Rejected: HOLDER_CLOSED (a closed holder takes no new account and never changes)."""
    if holder.state is HolderState.CLOSED:
        raise Rejected(Reason.HOLDER_CLOSED, f"holder {holder.id} is closed",
                       {"holder_id": holder.id})  # fmt: skip


def require_may_debit(holder: Holder | None, account: Account) -> None:
    """Refuses a new debit of `account` (a transfer, a hold or its increase, a payout)
    when its holder is restricted; credits are never refused for it.

    Raises:
        Rejected: HOLDER_RESTRICTED.
    """
    if holder is not None and holder.state is HolderState.RESTRICTED:
        raise Rejected(
            Reason.HOLDER_RESTRICTED,
            f"holder {holder.id} is restricted: account {account.id} takes no new debits",
            {"holder_id": holder.id, "account_id": account.id},
        )


def changed(holder: Holder, changes: HolderChanges, open_accounts: int, now: datetime) -> Holder:
    """The holder after `changes` (itself when nothing changes). `open_accounts`: how
    many of its accounts are not closed (closing needs none).

    Raises:
        InvalidInput: the merged metadata holds too many keys.
        Rejected: HOLDER_CLOSED, HOLDER_NOT_EMPTY.
    """
    require_not_closed(holder)
    metadata = dict(holder.metadata)
    for key, value in changes.metadata.items():
        if value:
            metadata[key] = value
        else:
            metadata.pop(key, None)
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidInput(
            [FieldViolation("metadata", FieldReason.TOO_MANY, f"at most {MAX_METADATA_KEYS} keys")]
        )
    after = replace(
        holder,
        name=holder.name if changes.name is None else changes.name,
        metadata=metadata,
        state=holder.state if changes.state is None else changes.state,
    )
    if after == holder:
        return holder
    if after.state is HolderState.CLOSED and open_accounts:
        raise Rejected(
            Reason.HOLDER_NOT_EMPTY,
            f"holder {holder.id} has {open_accounts} accounts not closed",
            {"holder_id": holder.id, "open_account_count": str(open_accounts)},
        )
    return replace(after, version=holder.version + 1, updated_at=now)
