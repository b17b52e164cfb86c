"""How holder commands change the ledger (docs/platforms.md): creating a holder and
changing its name, metadata or state, decided in the write transaction with the rest
of its batch (domain/ledger.py).

A holder's restriction is read by every later command of the same transaction (the
fork's holders), and by every later transaction from its row. A debit's transaction
holds a share lock on its account's holder row until it commits (sql/ledger.sql,
lock_batch), so a restriction commits only after the debits already decided, and a
debit decided after it sees it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moneymovement.domain import ids
from moneymovement.domain.accounts import Account, AccountState
from moneymovement.domain.commands import CreateHolder, UpdateHolder
from moneymovement.domain.events import Event, EventType
from moneymovement.domain.holders import (
    Holder,
    HolderState,
    changed,
    external_id_taken,
    holder_not_found,
)

if TYPE_CHECKING:
    from moneymovement.domain.ledger import Issued, _Fork


def create_holder(fork: _Fork, command: CreateHolder, issued: Issued) -> Holder:
    taken = fork.taken_holder_external_ids.get(command.external_id)
    if taken is not None:
        raise external_id_taken(command.external_id, taken)
    holder = Holder(
        id=ids.new_id(ids.HOLDER),
        external_id=command.external_id,
        name=command.name,
        metadata=dict(command.metadata),
        state=HolderState.ACTIVE,
        version=1,
        created_at=fork.now,
        updated_at=fork.now,
    )
    fork.holders[holder.id] = holder
    fork.taken_holder_external_ids[holder.external_id] = holder.id
    fork.events.append(
        Event(EventType.HOLDER_CREATED, issued.request_id, issued.trace_id, holder=holder)
    )
    return holder


def update_holder(fork: _Fork, command: UpdateHolder, issued: Issued) -> Holder:
    holder = fork.holders.get(command.holder_id)
    if holder is None:
        raise holder_not_found(command.holder_id)
    after = changed(holder, command.changes, _open_accounts(fork, holder.id), fork.now)
    if after is holder:
        return holder
    fork.holders[after.id] = after
    fork.events.append(
        Event(EventType.HOLDER_UPDATED, issued.request_id, issued.trace_id, holder=after)
    )
    return after


def _open_accounts(fork: _Fork, holder_id: str) -> int:
    """How many of the holder's accounts are not closed: as read (only for a command
    that closes it, Command.counted_holder_ids; 0 otherwise, and then unused), give or
    take those this transaction opened or closed before this command."""
    read = fork.accounts.maps[-1]
    count = fork.ledger.holder_open_accounts.get(holder_id, 0)
    for account_id in {a for m in fork.accounts.maps[:-1] for a in m}:
        count += _is_open(fork.accounts[account_id], holder_id)
        count -= _is_open(read.get(account_id), holder_id)
    return count


def _is_open(account: Account | None, holder_id: str) -> int:
    return int(
        account is not None
        and account.holder_id == holder_id
        and account.state is not AccountState.CLOSED
    )
