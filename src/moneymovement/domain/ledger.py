"""The ledger as one write transaction sees it, and how each command changes it.

A batch of commands is decided here, one after another in arrival order, against the
state the previous ones left: the accounts and transfers the transaction locked, and
what the commands before created. Each command is decided on a fork of the state and
merged only when it succeeds, so a rejected command leaves no trace and never fails
another. What all of them changed is then written at once (`Ledger.writes`).

Pure: no I/O, no clock (the transaction's time comes in), ids from domain/ids.py.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar, cast

from moneymovement.domain import accounts as rules
from moneymovement.domain import ids
from moneymovement.domain.accounts import Account, AccountState
from moneymovement.domain.commands import (
    CloseAccount,
    Command,
    CreateAccount,
    CreateTransfer,
    CreateTransfers,
    ExpireHold,
    FreezeAccount,
    PostTransfer,
    ReverseTransfer,
    UnfreezeAccount,
    UpdateAccount,
    VoidTransfer,
)
from moneymovement.domain.errors import (
    FieldViolation,
    InvalidInput,
    Reason,
    Rejected,
    account_not_found,
    transfer_not_found,
)
from moneymovement.domain.events import Event, EventType
from moneymovement.domain.holds import expire_hold, post_hold, void_hold
from moneymovement.domain.reversals import reverse
from moneymovement.domain.transfers import (
    Entry,
    NewTransfer,
    Transfer,
    TransferState,
    open_transfer,
)
from moneymovement.domain.validation import MAX_METADATA_KEYS

R = TypeVar("R")


@dataclass(frozen=True)
class Issued:
    """Who asks: the request id a command came with and the trace of its request."""

    request_id: str
    trace_id: str | None = None


@dataclass(frozen=True)
class Writes:
    """Everything a transaction writes, in one statement: accounts opened and accounts
    changed (their new totals, attributes and versions), transfers created (in creation
    order, each in its final state) and changed, the entries, and the events, each in
    the order they happened."""

    new_accounts: list[Account]
    changed_accounts: list[Account]
    new_transfers: list[Transfer]
    changed_transfers: list[Transfer]
    entries: list[Entry]
    events: list[Event]

    def __bool__(self) -> bool:
        return bool(
            self.new_accounts
            or self.changed_accounts
            or self.new_transfers
            or self.changed_transfers
            or self.entries
            or self.events
        )


class Ledger:
    """The running state of one write transaction."""

    def __init__(
        self,
        now: datetime,
        accounts: Mapping[str, Account],
        transfers: Mapping[str, Transfer],
        taken_external_ids: set[str],
    ) -> None:
        self.now = now
        self._locked_accounts = dict(accounts)
        self._locked_transfers = dict(transfers)
        self.accounts: ChainMap[str, Account] = ChainMap({}, self._locked_accounts)
        self.transfers: ChainMap[str, Transfer] = ChainMap({}, self._locked_transfers)
        self.taken_external_ids = ChainMap[str, bool]({}, dict.fromkeys(taken_external_ids, True))
        self.new_account_ids: list[str] = []
        self.new_transfer_ids: list[str] = []
        self.entries: list[Entry] = []
        self.events: list[Event] = []

    def apply(self, command: Command[R], issued: Issued) -> R:
        """Decides `command` and, when it succeeds, applies it to this state.

        Raises:
            Rejected: the command's business rejection; the state is unchanged.
            InvalidInput: input found invalid only now (a hold expiry that has passed);
                the state is unchanged.
        """
        fork = _Fork(self)
        result = _HANDLERS[type(command)](fork, command, issued)
        fork.merge()
        return cast(R, result)

    def writes(self) -> Writes:
        """What the commands applied so far changed, as rows to write."""
        new_accounts = set(self.new_account_ids)
        changed_accounts = [
            account
            for account_id, account in sorted(self.accounts.maps[0].items())
            if account_id not in new_accounts
        ]
        new_transfers = set(self.new_transfer_ids)
        changed_transfers = [
            transfer
            for transfer_id, transfer in sorted(self.transfers.maps[0].items())
            if transfer_id not in new_transfers
        ]
        return Writes(
            new_accounts=[self.accounts[a] for a in self.new_account_ids],
            changed_accounts=changed_accounts,
            new_transfers=[self.transfers[t] for t in self.new_transfer_ids],
            changed_transfers=changed_transfers,
            entries=list(self.entries),
            events=list(self.events),
        )


class _Fork:
    """One command's view of the ledger: its changes stay here until `merge`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.now = ledger.now
        self.accounts = ledger.accounts.new_child()
        self.transfers = ledger.transfers.new_child()
        self.taken_external_ids = ledger.taken_external_ids.new_child()
        self.new_account_ids: list[str] = []
        self.new_transfer_ids: list[str] = []
        self.entries: list[Entry] = []
        self.events: list[Event] = []

    def merge(self) -> None:
        ledger = self.ledger
        ledger.accounts.maps[0].update(self.accounts.maps[0])
        ledger.transfers.maps[0].update(self.transfers.maps[0])
        ledger.taken_external_ids.maps[0].update(self.taken_external_ids.maps[0])
        ledger.new_account_ids += self.new_account_ids
        ledger.new_transfer_ids += self.new_transfer_ids
        ledger.entries += self.entries
        ledger.events += self.events

    def locked_transfer(self, transfer_id: str) -> Transfer:
        transfer = self.transfers.get(transfer_id)
        if transfer is None:
            raise transfer_not_found(transfer_id)
        return transfer

    def add_transfer(self, transfer: Transfer, entries: list[Entry]) -> None:
        self.transfers[transfer.id] = transfer
        self.new_transfer_ids.append(transfer.id)
        self.entries += entries

    def change_transfer(self, transfer: Transfer, entries: list[Entry]) -> None:
        self.transfers[transfer.id] = transfer
        self.entries += entries

    def tell(self, kind: EventType, issued: Issued, transfer: Transfer) -> None:
        """Records the event of a change to `transfer`, with its accounts as they are now
        (right after the change)."""
        accounts = self._accounts_of([transfer])
        self.events.append(Event(kind, issued.request_id, issued.trace_id, (transfer,), accounts))

    def tell_batch(self, issued: Issued, items: list[Transfer]) -> None:
        """Records BATCH_COMMITTED: the items by id, every account they moved as it is
        after the whole batch."""
        self.events.append(
            Event(
                EventType.BATCH_COMMITTED,
                issued.request_id,
                issued.trace_id,
                accounts=self._accounts_of(items),
                item_ids=tuple(t.id for t in items),
            )
        )

    def _accounts_of(self, transfers: list[Transfer]) -> tuple[Account, ...]:
        """The accounts `transfers` move, as they are now, in id order."""
        ids = {a for t in transfers for a in (t.debit_account_id, t.credit_account_id)}
        return tuple(self.accounts[a] for a in sorted(ids))


def _create_account(fork: _Fork, command: CreateAccount, issued: Issued) -> Account:
    if command.external_id is not None and command.external_id in fork.taken_external_ids:
        raise Rejected(
            Reason.EXTERNAL_ID_TAKEN,
            "another account has this external_id",
            {"external_id": command.external_id},
        )
    account = Account(
        id=ids.new_id(ids.ACCOUNT),
        external_id=command.external_id,
        name=command.name,
        currency_code=command.currency_code,
        normal_balance=command.normal_balance,
        overdraft_mode=command.overdraft_mode,
        overdraft_limit_minor=command.overdraft_limit_minor,
        holder_id=command.holder_id,
        metadata=command.metadata,
        state=AccountState.ACTIVE,
        version=1,
        created_at=fork.now,
        updated_at=fork.now,
    )
    fork.accounts[account.id] = account
    fork.new_account_ids.append(account.id)
    if command.external_id is not None:
        fork.taken_external_ids[command.external_id] = True
    fork.events.append(
        Event(EventType.ACCOUNT_CREATED, issued.request_id, issued.trace_id, (), (account,))
    )
    return account


def _account_change(
    change: Callable[[Account, Any], Account], kind: EventType
) -> Callable[[_Fork, Any, Issued], Account]:
    """A handler for the commands that change one account's attributes or state; a
    change that changes nothing writes nothing and tells nothing."""

    def handle(fork: _Fork, command: Any, issued: Issued) -> Account:
        account = fork.accounts.get(command.account_id)
        if account is None:
            raise account_not_found(command.account_id)
        rules.require_version(account, command.expected_version)
        changed = change(account, command)
        if changed is account:
            return account
        changed = replace(changed, updated_at=fork.now)
        fork.accounts[changed.id] = changed
        fork.events.append(Event(kind, issued.request_id, issued.trace_id, (), (changed,)))
        return changed

    return handle


def _create_transfer(fork: _Fork, command: CreateTransfer, issued: Issued) -> Transfer:
    new = NewTransfer(ids.new_id(ids.TRANSFER), issued.request_id, fork.now, issued.trace_id)
    transfer, entries = open_transfer(fork.accounts, command.spec, new)
    fork.add_transfer(transfer, entries)
    fork.tell(EventType.TRANSFER_CREATED, issued, transfer)
    return transfer


def _create_transfers(fork: _Fork, command: CreateTransfers, issued: Issued) -> list[Transfer]:
    batch_id = ids.new_id(ids.BATCH)
    created = []
    for index, spec in enumerate(command.specs):
        new = NewTransfer(
            ids.new_id(ids.TRANSFER), issued.request_id, fork.now, issued.trace_id, batch_id
        )
        try:
            transfer, entries = open_transfer(fork.accounts, spec, new)
        except (Rejected, InvalidInput) as error:
            raise _for_item(error, index) from None
        fork.add_transfer(transfer, entries)
        fork.tell(EventType.TRANSFER_CREATED, issued, transfer)
        created.append(transfer)
    fork.tell_batch(issued, created)
    return created


def _post(fork: _Fork, command: PostTransfer, issued: Issued) -> Transfer:
    hold = fork.locked_transfer(command.transfer_id)
    posted, entries = post_hold(
        fork.accounts, hold, command.amount_minor, fork.now, issued.request_id
    )
    fork.change_transfer(posted, entries)
    fork.tell(EventType.TRANSFER_POSTED, issued, posted)
    return posted


def _void(fork: _Fork, command: VoidTransfer, issued: Issued) -> Transfer:
    hold = fork.locked_transfer(command.transfer_id)
    voided, entries = void_hold(fork.accounts, hold, fork.now, issued.request_id)
    fork.change_transfer(voided, entries)
    if voided.state is TransferState.EXPIRED:
        # It expired before the void came (the sweeper had not reached it yet): told as
        # the expiry it is, with no request of its own, as the sweeper would have.
        fork.tell(EventType.TRANSFER_EXPIRED, replace(issued, request_id=""), voided)
    else:
        fork.tell(EventType.TRANSFER_VOIDED, issued, voided)
    return voided


def _expire(fork: _Fork, command: ExpireHold, issued: Issued) -> Transfer | None:
    hold = fork.transfers.get(command.transfer_id)
    if hold is None:
        return None
    ended = expire_hold(fork.accounts, hold, fork.now)
    if ended is None:
        return None
    expired, entries = ended
    fork.change_transfer(expired, entries)
    fork.tell(EventType.TRANSFER_EXPIRED, issued, expired)
    return expired


def _reverse(fork: _Fork, command: ReverseTransfer, issued: Issued) -> tuple[Transfer, Transfer]:
    original = fork.locked_transfer(command.request.transfer_id)
    new = NewTransfer(ids.new_id(ids.TRANSFER), issued.request_id, fork.now, issued.trace_id)
    reversal, updated, entries = reverse(fork.accounts, original, command.request, new)
    fork.add_transfer(reversal, entries)
    fork.change_transfer(updated, [])
    fork.tell(EventType.TRANSFER_CREATED, issued, reversal)
    fork.tell(EventType.TRANSFER_REVERSED, issued, updated)
    return reversal, updated


def _for_item(error: Rejected | InvalidInput, index: int) -> Rejected | InvalidInput:
    """The error of batch item `index`, naming it."""
    if isinstance(error, InvalidInput):
        return InvalidInput(
            [
                FieldViolation(f"transfers[{index}].{v.field}", v.reason, v.description)
                for v in error.violations
            ]
        )
    return Rejected(
        error.reason,
        f"transfers[{index}]: {error.message}",
        {**error.metadata, "item_index": str(index)},
    )


_HANDLERS: dict[type[Command[Any]], Callable[[_Fork, Any, Issued], Any]] = {
    CreateAccount: _create_account,
    UpdateAccount: _account_change(
        lambda account, command: rules.update(account, command.changes, MAX_METADATA_KEYS),
        EventType.ACCOUNT_UPDATED,
    ),
    FreezeAccount: _account_change(lambda a, _: rules.freeze(a), EventType.ACCOUNT_FROZEN),
    UnfreezeAccount: _account_change(lambda a, _: rules.unfreeze(a), EventType.ACCOUNT_UNFROZEN),
    CloseAccount: _account_change(lambda a, _: rules.close(a), EventType.ACCOUNT_CLOSED),
    CreateTransfer: _create_transfer,
    CreateTransfers: _create_transfers,
    PostTransfer: _post,
    VoidTransfer: _void,
    ReverseTransfer: _reverse,
    ExpireHold: _expire,
}


def handled_commands() -> Sequence[type[Command[Any]]]:
    """Every command kind the ledger decides (for tests)."""
    return list(_HANDLERS)
