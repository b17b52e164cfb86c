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
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from moneymovement.domain import accounts as rules
from moneymovement.domain import holder_ledger, ids, rail_ledger
from moneymovement.domain import holder_scope as scope
from moneymovement.domain import reserve as reserve_rules
from moneymovement.domain.accounts import Account, AccountState
from moneymovement.domain.assets import Asset, register, require_known
from moneymovement.domain.commands import (
    CancelPayout,
    CaptureHold,
    CloseAccount,
    Command,
    CreateAccount,
    CreateBalanceMonitor,
    CreateExternalAccount,
    CreateHolder,
    CreatePayout,
    CreateTransfer,
    CreateTransfers,
    DeleteBalanceMonitor,
    DisableExternalAccount,
    ExpireHold,
    ExtendHold,
    FreezeAccount,
    FundsRelease,
    IncrementHold,
    PostTransfer,
    ReceiveInbound,
    RegisterAsset,
    ReleaseDueFunds,
    ReleaseFunds,
    ReturnInbound,
    ReverseTransfer,
    SettlePayout,
    StartPayout,
    UnfreezeAccount,
    UpdateAccount,
    UpdateHolder,
    VoidHold,
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
from moneymovement.domain.funds import (
    NO_POLICY,
    NO_USAGE,
    DebitUsage,
    Ending,
    EndKind,
    FundsKind,
    FundsPolicy,
    Part,
    ScheduledFunds,
    end,
    latest_first,
    oldest_first,
    require_within_debit_limits,
    schedule_of,
    take,
    taken_back,
    validate_policy,
)
from moneymovement.domain.holders import (
    Holder,
    HolderReads,
    holder_not_found,
    is_holder_id,
    require_may_debit,
    require_not_closed,
)
from moneymovement.domain.holds import (
    expire_hold,
    extend_hold,
    increment_hold,
    post_hold,
    void_hold,
)
from moneymovement.domain.monitors import (
    MAX_MONITORS_PER_ACCOUNT,
    BalanceMonitor,
    monitor_not_found,
)
from moneymovement.domain.payouts import ExternalAccount, InboundTransfer, Payout
from moneymovement.domain.reversals import ReversalRequest, reversal_amount, reverse
from moneymovement.domain.transfers import (
    Entry,
    EventKind,
    NewTransfer,
    ReserveMovement,
    Transfer,
    TransferSpec,
    TransferState,
    open_transfer,
)
from moneymovement.domain.validation import MAX_METADATA_KEYS

R = TypeVar("R")
Record = ExternalAccount | Payout | InboundTransfer


@dataclass(frozen=True)
class Issued:
    """Who asks: the request id a command came with, the trace of its request, and the
    holder the call acts for (None: the platform; domain/holder_scope.py)."""

    request_id: str
    trace_id: str | None = None
    holder_id: str | None = None


@dataclass(frozen=True)
class PolicyChange:
    """An account's funds policy changed (or was first set): the audit trail's row."""

    account_id: str
    version: int
    before: FundsPolicy
    after: FundsPolicy
    request_id: str
    trace_id: str | None
    at: datetime


@dataclass(frozen=True)
class Writes:
    """Everything a transaction writes, in one statement: accounts opened and accounts
    changed (their new totals, attributes and versions), transfers created (in creation
    order, each in its final state) and changed, the entries, scheduled funds created
    and ended, monitors created or changed, policy changes, and the events, each in the
    order they happened."""

    new_accounts: list[Account]
    changed_accounts: list[Account]
    new_transfers: list[Transfer]
    changed_transfers: list[Transfer]
    entries: list[Entry]
    events: list[Event]
    new_funds: list[ScheduledFunds] = field(default_factory=list)
    ended_funds: list[ScheduledFunds] = field(default_factory=list)
    monitors: list[BalanceMonitor] = field(default_factory=list)
    policy_changes: list[PolicyChange] = field(default_factory=list)
    external_accounts: list[ExternalAccount] = field(default_factory=list)
    payouts: list[Payout] = field(default_factory=list)
    inbound: list[InboundTransfer] = field(default_factory=list)
    assets: list[Asset] = field(default_factory=list)
    holders: list[Holder] = field(default_factory=list)  # created or changed

    def __bool__(self) -> bool:
        return bool(
            self.new_accounts
            or self.changed_accounts
            or self.new_transfers
            or self.changed_transfers
            or self.entries
            or self.events
            or self.new_funds
            or self.ended_funds
            or self.monitors
            or self.policy_changes
            or self.external_accounts
            or self.payouts
            or self.inbound
            or self.assets
            or self.holders
        )


class Ledger:
    """The running state of one write transaction."""

    def __init__(
        self,
        now: datetime,
        accounts: Mapping[str, Account],
        transfers: Mapping[str, Transfer],
        taken_external_ids: Mapping[str, str],
        funds: Sequence[ScheduledFunds] = (),
        monitors: Sequence[BalanceMonitor] = (),
        usage: Mapping[str, DebitUsage] | None = None,
        records: Sequence[Record] = (),
        assets: Sequence[Asset] = (),
        asset_count: int = 0,
        holders: HolderReads | None = None,
        reserve_debts_owed: Mapping[str, int] | None = None,
    ) -> None:
        """`funds`: the unended scheduled parts read (those of the accounts releases
        name and of the locked transfers); `monitors`: the live monitors of the locked
        accounts and those named by id; `usage`: what the locked accounts with debit
        limits have used of each window; `records`: the external accounts, payouts and
        inbound transfers named by id; `assets`: the tenant's assets of the codes the
        commands name (never changed once registered, so not locked); `asset_count`: how
        many assets the tenant has, when a command registers one; `holders`: the holders
        named and those of the locked accounts (domain/holder_ledger.py)."""
        self.now = now
        self.accounts: ChainMap[str, Account] = ChainMap({}, dict(accounts))
        self.transfers: ChainMap[str, Transfer] = ChainMap({}, dict(transfers))
        # External id -> the account that has it (read, or opened by this batch).
        self.taken_external_ids = ChainMap[str, str]({}, dict(taken_external_ids))
        self.funds: ChainMap[str, ScheduledFunds] = ChainMap({}, {f.id: f for f in funds})
        self.monitors: ChainMap[str, BalanceMonitor] = ChainMap({}, {m.id: m for m in monitors})
        self.usage: ChainMap[str, DebitUsage] = ChainMap({}, dict(usage or {}))
        self.records: ChainMap[str, Record] = ChainMap({}, {r.id: r for r in records})
        self.assets: ChainMap[str, Asset] = ChainMap({}, {a.code: a for a in assets})
        self.asset_count = asset_count
        read = holders or HolderReads()
        self.holders: ChainMap[str, Holder] = ChainMap({}, {h.id: h for h in read.holders})
        # Holder external id -> the holder that has it (read, or created by this batch).
        self.taken_holder_external_ids = ChainMap[str, str]({}, dict(read.taken_external_ids))
        self.holder_open_accounts = dict(read.open_accounts)
        # What accounts owed, as read, to each account a command closes (as a reserve).
        self.reserve_debts_owed = dict(reserve_debts_owed or {})
        self.new_account_ids: list[str] = []
        self.new_transfer_ids: list[str] = []
        self.new_funds_ids: list[str] = []
        self.new_monitor_ids: list[str] = []
        self.entries: list[Entry] = []
        self.events: list[Event] = []
        self.policy_changes: list[PolicyChange] = []

    def apply(self, command: Command[R], issued: Issued) -> R:
        """Decides `command` and, when it succeeds, applies it to this state.

        Raises:
            Rejected: the command's business rejection; the state is unchanged.
            InvalidInput: input found invalid only now (a hold expiry that has passed);
                the state is unchanged.
        """
        fork = _Fork(self)
        if issued.holder_id is not None:
            _see_as_holder(fork, command, issued.holder_id)
        result = _HANDLERS[type(command)](fork, command, issued)
        fork.recover(issued)
        if issued.holder_id is not None:
            _require_holder_debits_only(fork, issued.holder_id)
        fork.watch(issued)
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
        new_funds = set(self.new_funds_ids)
        records = [r for _, r in sorted(self.records.maps[0].items())]
        return Writes(
            new_accounts=[self.accounts[a] for a in self.new_account_ids],
            changed_accounts=changed_accounts,
            new_transfers=[self.transfers[t] for t in self.new_transfer_ids],
            changed_transfers=changed_transfers,
            entries=list(self.entries),
            events=list(self.events),
            new_funds=[self.funds[f] for f in self.new_funds_ids],
            ended_funds=[
                funds
                for funds_id, funds in sorted(self.funds.maps[0].items())
                if funds_id not in new_funds
            ],
            monitors=[m for _, m in sorted(self.monitors.maps[0].items())],
            policy_changes=list(self.policy_changes),
            external_accounts=[r for r in records if isinstance(r, ExternalAccount)],
            payouts=[r for r in records if isinstance(r, Payout)],
            inbound=[r for r in records if isinstance(r, InboundTransfer)],
            assets=[a for _, a in sorted(self.assets.maps[0].items())],
            holders=[h for _, h in sorted(self.holders.maps[0].items())],
        )


class _Fork:
    """One command's view of the ledger: its changes stay here until `merge`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.now = ledger.now
        self.accounts = ledger.accounts.new_child()
        self.transfers = ledger.transfers.new_child()
        self.taken_external_ids = ledger.taken_external_ids.new_child()
        self.funds = ledger.funds.new_child()
        self.monitors = ledger.monitors.new_child()
        self.usage = ledger.usage.new_child()
        self.records = ledger.records.new_child()
        self.assets = ledger.assets.new_child()
        self.holders = ledger.holders.new_child()
        self.taken_holder_external_ids = ledger.taken_holder_external_ids.new_child()
        # The holder the command acts for (None: the platform; _see_as_holder).
        self.holder_id: str | None = None
        self.new_account_ids: list[str] = []
        self.new_transfer_ids: list[str] = []
        self.new_funds_ids: list[str] = []
        self.entries: list[Entry] = []
        self.events: list[Event] = []
        self.policy_changes: list[PolicyChange] = []
        # The negative-balance reserve's work in this command, per account: what covers
        # credited it and what credits were already weighed for a recovery; and the
        # covers and recoveries made (domain/reserve.py).
        self.covered: dict[str, int] = {}
        self.credits_weighed: dict[str, int] = {}
        self.reserve_transfers: list[Transfer] = []

    def merge(self) -> None:
        ledger = self.ledger
        ledger.accounts.maps[0].update(self.accounts.maps[0])
        ledger.transfers.maps[0].update(self.transfers.maps[0])
        ledger.taken_external_ids.maps[0].update(self.taken_external_ids.maps[0])
        ledger.funds.maps[0].update(self.funds.maps[0])
        ledger.monitors.maps[0].update(self.monitors.maps[0])
        ledger.usage.maps[0].update(self.usage.maps[0])
        ledger.records.maps[0].update(self.records.maps[0])
        ledger.assets.maps[0].update(self.assets.maps[0])
        ledger.asset_count += len(self.assets.maps[0])
        ledger.holders.maps[0].update(self.holders.maps[0])
        ledger.taken_holder_external_ids.maps[0].update(self.taken_holder_external_ids.maps[0])
        ledger.new_account_ids += self.new_account_ids
        ledger.new_transfer_ids += self.new_transfer_ids
        ledger.new_funds_ids += self.new_funds_ids
        ledger.entries += self.entries
        ledger.events += self.events
        ledger.policy_changes += self.policy_changes

    def watch(self, issued: Issued) -> None:
        """Evaluates the monitors of every account this command changed, telling each
        one whose condition flipped (domain/monitors.py)."""
        if not self.monitors:  # no account of the batch has one: the usual case
            return
        for account_id in sorted(self.accounts.maps[0]):
            account = self.accounts[account_id]
            for monitor in self.monitors_of(account_id):
                holds = monitor.holds(account.balances, account.normal_balance)
                if holds != monitor.triggered:
                    self.flip(monitor, holds, account, issued)

    def flip(self, monitor: BalanceMonitor, holds: bool, account: Account, issued: Issued) -> None:
        changed = replace(monitor, triggered=holds, updated_at=self.now)
        self.monitors[changed.id] = changed
        kind = EventType.BALANCE_MONITOR_TRIGGERED if holds else EventType.BALANCE_MONITOR_CLEARED
        self.events.append(
            Event(kind, issued.request_id, issued.trace_id, accounts=(account,), monitor=changed)
        )

    def monitors_of(self, account_id: str) -> list[BalanceMonitor]:
        return sorted(
            (m for m in self.monitors.values() if m.account_id == account_id and not m.deleted),
            key=lambda m: m.id,
        )

    def debit_usage(self, account_id: str) -> DebitUsage:
        return self.usage.get(account_id, NO_USAGE)

    def recount(self, before: Transfer, after: Transfer) -> None:
        """Keeps the debit account's limits counting a hold as the database will count it
        for the next transaction (at its amount while PENDING, its posted amount once
        POSTED, not at all once voided or expired, in the windows it was made in). What a
        change adds (an increment, an over-capture) must fit the limits too.

        Raises:
            Rejected: DEBIT_LIMIT_EXCEEDED.
        """
        account = self.accounts.get(before.debit_account_id)
        if account is None or not account.funds_policy.debit_limits:
            return
        amount = _counted(after) - _counted(before)
        count = (_counted(after) > 0) - (_counted(before) > 0)
        usage = self.debit_usage(account.id)
        if amount > 0:
            require_within_debit_limits(
                account.id, account.funds_policy, usage, amount, count=count,
                made_at=before.created_at, now=self.now,
            )  # fmt: skip
        self.usage[account.id] = usage.changed(amount, count, before.created_at, self.now)

    def open_transfer(
        self, spec: TransferSpec, new: NewTransfer
    ) -> tuple[Transfer, list[Entry], list[Part]]:
        """A new transfer (domain/transfers.py) with its debit counted against the
        debit account's limits."""
        require_known(spec.currency_code, self.assets)  # as the edge answers a bad code
        self.require_may_debit(spec.debit_account_id)
        self.require_may_credit(spec.credit_account_id)
        usage = self.debit_usage(spec.debit_account_id)
        transfer, entries, parts = open_transfer(self.accounts, spec, new, usage)
        self.count_debit(transfer.debit_account_id, transfer.amount_minor)
        return transfer, entries, parts

    def cover(
        self, original: Transfer, amount_minor: int, reversal_id: str, issued: Issued
    ) -> None:
        """Before a reversal of `amount_minor` of `original` debits its credit account:
        when that account names a negative-balance reserve and cannot pay all of what
        the reversal takes from its available balance (what it does not take back from
        the original's parts not available yet), the reserve moves the shortfall into
        it first, under the reserve's own overdraft policy, and the account's debt rises
        by it.

        Raises:
            Rejected: those of a transfer from the reserve (INSUFFICIENT_FUNDS naming
                the reserve when it cannot pay).
        """
        account = self.accounts.get(original.credit_account_id)
        if account is None or not account.negative_balance_reserve_account_id:
            return
        parts = take(latest_first(self.open_funds_of(original)), amount_minor)
        shortfall = reserve_rules.shortfall_minor(
            account, amount_minor - sum(e.amount_minor for e in parts)
        )
        if shortfall:
            if self.holder_id is not None:  # the platform's money: its call to make
                reserve_id = account.negative_balance_reserve_account_id
                raise scope.forbidden(
                    self.holder_id, "draw on a negative-balance reserve", reserve_id
                )
            self.covered[account.id] = self.covered.get(account.id, 0) + shortfall
            link = {"reversal_transfer_id": reversal_id}
            self.move_reserve(ReserveMovement.COVER, account, shortfall, issued, link)

    def recover(self, issued: Issued) -> None:
        """Pays the negative-balance reserve back out of what this command credited to
        accounts that owe theirs (not counting the covers themselves), as much as
        domain/reserve.py's recovery_minor allows; each credit is weighed once, however
        often this runs."""
        for account_id in sorted(self.accounts.maps[0]):
            account = self.accounts[account_id]
            if not account.reserve_debt_minor:
                continue
            before = self.ledger.accounts.get(account_id)
            credited = account.balances.posted_credits_minor - (
                before.balances.posted_credits_minor if before else 0
            )
            weighed = self.covered.get(account_id, 0) + self.credits_weighed.get(account_id, 0)
            if credited <= weighed:
                continue
            self.credits_weighed[account_id] = self.credits_weighed.get(account_id, 0) + (
                credited - weighed
            )
            reserve = self.accounts.get(account.negative_balance_reserve_account_id)
            amount = reserve_rules.recovery_minor(account, reserve, credited - weighed)
            if amount:
                try:
                    self.move_reserve(ReserveMovement.RECOVERY, account, amount, issued, {})
                except Rejected:
                    # The reserve cannot take it (a balance limit, say): the credit still
                    # goes through, and the debt waits for a later one. Nothing of the
                    # refused recovery was applied (move_reserve decides first).
                    continue

    def move_reserve(
        self,
        movement: ReserveMovement,
        account: Account,
        amount_minor: int,
        issued: Issued,
        link: Mapping[str, str],
    ) -> Transfer:
        """A cover (reserve to `account`) or a recovery (`account` to its reserve): a
        POSTED transfer marked as the reserve's, told as any transfer, with the
        account's debt changed by it. A cover is a debit of the reserve like any other;
        a recovery is not the holder's spending, so a restricted holder's account still
        repays (its account has no funds policy, so no debit limits either)."""
        cover = movement is ReserveMovement.COVER
        reserve_id = account.negative_balance_reserve_account_id
        spec = TransferSpec(
            debit_account_id=reserve_id if cover else account.id,
            credit_account_id=account.id if cover else reserve_id,
            amount_minor=amount_minor,
            currency_code=account.currency_code,
            description=f"negative-balance reserve {movement.value.lower()}",
            metadata={reserve_rules.METADATA_KEY: movement.value, **link},
        )
        new = NewTransfer(ids.new_id(ids.TRANSFER), issued.request_id, self.now, issued.trace_id)
        if cover:
            transfer, entries, parts = self.open_transfer(spec, new)
        else:
            transfer, entries, parts = open_transfer(self.accounts, spec, new)
        transfer = replace(transfer, reserve_movement=movement)
        self.add_transfer(transfer, entries)
        self.schedule(transfer, parts)
        owes = self.accounts[account.id]
        debt = owes.reserve_debt_minor + (amount_minor if cover else -amount_minor)
        self.accounts[account.id] = replace(owes, reserve_debt_minor=debt)
        self.reserve_transfers.append(transfer)
        self.tell(EventType.TRANSFER_CREATED, issued, transfer)
        return transfer

    def holder_of(self, account: Account) -> Holder | None:
        """The holder `account` was opened for (None: a free-form holder_id or none)."""
        return self.holders.get(account.holder_id) if is_holder_id(account.holder_id) else None

    def require_may_debit(self, account_id: str) -> None:
        """Refuses a new debit of an account whose holder is restricted, or, acting for a
        holder, of an account not the holder's (an unknown account is left to the
        caller's own check)."""
        account = self.accounts.get(account_id)
        if account is not None:
            self.require_holders_own(account)
            require_may_debit(self.holder_of(account), account)

    def owed_as_reserve(self, account_id: str) -> int:
        """What accounts owe `account_id` as their negative-balance reserve now: as read
        for a command closing it (Command.closed_account_ids), with what this batch's
        covers and recoveries changed since."""
        owed = self.ledger.reserve_debts_owed.get(account_id, 0)
        read = self.ledger.accounts.maps[-1]
        for changed in {*self.accounts.maps[0], *self.ledger.accounts.maps[0]}:
            account = self.accounts.maps[0].get(changed) or self.ledger.accounts[changed]
            if account.negative_balance_reserve_account_id != account_id:
                continue
            before = read.get(changed)
            owed += account.reserve_debt_minor - (before.reserve_debt_minor if before else 0)
        return owed

    def require_holders_own(self, account: Account) -> None:
        """Acting for a holder, refuses moving money out of an account not the holder's,
        before anything else is checked: what a refusal would say of it (its balance,
        its freeze) is not the holder's to learn.

        Raises:
            Rejected: HOLDER_SCOPE_FORBIDS.
        """
        if self.holder_id is not None and not scope.owns(self.holder_id, account):
            raise scope.forbidden(self.holder_id, "debit a platform account", account.id)

    def require_may_credit(self, account_id: str) -> None:
        """Acting for a holder, a new transfer goes into its own account or a platform
        account open to holders only. The negative-balance reserve of one of its accounts
        is in view only for its repayments (a payment of its own would not lower the
        debt): named in a transfer, it answers as in every other command, not found.

        Raises:
            Rejected: ACCOUNT_NOT_FOUND.
        """
        account = self.accounts.get(account_id)
        if self.holder_id is None or account is None:
            return
        if not (scope.owns(self.holder_id, account) or account.open_to_holders):
            raise account_not_found(account.id)

    def count_debit(self, account_id: str, amount_minor: int) -> None:
        """Counts a new debit against the account's limits for the rest of the batch."""
        if self.accounts[account_id].funds_policy.debit_limits:
            self.usage[account_id] = self.debit_usage(account_id).plus(amount_minor)

    def schedule(self, transfer: Transfer, parts: list[Part]) -> None:
        """Files the parts of `transfer`'s credit that are not available yet."""
        for part in parts:
            funds = ScheduledFunds(
                id=ids.new_id(ids.FUNDS),
                account_id=transfer.credit_account_id,
                transfer_id=transfer.id,
                kind=part.kind,
                amount_minor=part.amount_minor,
                available_at=part.available_at,
                created_at=self.now,
            )
            self.funds[funds.id] = funds
            self.new_funds_ids.append(funds.id)

    def end_funds(
        self, endings: list[Ending], kind: EndKind, request_id: str
    ) -> list[ScheduledFunds]:
        """Ends each part (the account's totals are the caller's to change), filing the
        remainder of a part ended for less than all of it; returns the ended parts."""
        ended_parts = []
        for ending in endings:
            ended, remainder = end(ending, kind, self.now, request_id, ids.new_id(ids.FUNDS))
            self.funds[ended.id] = ended
            ended_parts.append(ended)
            if remainder is not None:
                self.funds[remainder.id] = remainder
                self.new_funds_ids.append(remainder.id)
        return ended_parts

    def open_account(self, account_id: str, command: CreateAccount, issued: Issued) -> Account:
        """Opens an account of a given id as CreateAccount would (ACCOUNT_CREATED too)."""
        return _create_account(self, command, issued, account_id)

    def open_funds(self, account_id: str) -> list[ScheduledFunds]:
        """The unended parts read for `account_id` (all of them when a command asked
        for the account's, funds_account_ids)."""
        return [f for f in self.funds.values() if f.account_id == account_id and f.is_open]

    def open_funds_of(self, transfer: Transfer) -> list[ScheduledFunds]:
        """The unended parts of `transfer`'s credit (read with the locked transfer)."""
        return [
            f
            for f in self.funds.values()
            if f.transfer_id == transfer.id
            and f.account_id == transfer.credit_account_id
            and f.is_open
        ]

    def locked_transfer(self, transfer_id: str) -> Transfer:
        """A transfer the transfer RPCs may move: not one a payout or inbound transfer
        owns (it moves only with its owner's state, domain/rail_ledger.py)."""
        transfer = self.transfers.get(transfer_id)
        if transfer is None:
            raise transfer_not_found(transfer_id)
        if transfer.owner_id is not None:
            raise Rejected(
                Reason.TRANSFER_OWNED,
                f"transfer {transfer_id} moves with {transfer.owner_id}, through PayoutService",
                {"transfer_id": transfer_id, "owner_id": transfer.owner_id},
            )
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
        accounts = self.accounts_of([transfer])
        self.events.append(Event(kind, issued.request_id, issued.trace_id, (transfer,), accounts))

    def release(
        self, account: Account, endings: list[Ending], kind: EndKind, issued: Issued
    ) -> list[ScheduledFunds]:
        """Makes these parts of `account` available (RELEASED by their time, the
        sweeper's, or RELEASED_EARLY): its totals lose them, its version rises, the parts
        end, and FUNDS_RELEASED tells them with the account after."""
        self.accounts[account.id] = replace(
            account,
            balances=account.balances.held_back(taken_back(endings)),
            version=account.version + 1,
            updated_at=self.now,
        )
        # A release by time belongs to no request (the sweeper's), whoever asked for it.
        request_id = "" if kind is EndKind.RELEASED else issued.request_id
        ended = self.end_funds(endings, kind, request_id)
        self.events.append(
            Event(
                EventType.FUNDS_RELEASED,
                issued.request_id,
                issued.trace_id,
                accounts=(self.accounts[account.id],),
                funds=tuple(ended),
            )
        )
        return ended

    def tell_batch(self, issued: Issued, items: list[Transfer]) -> None:
        """Records BATCH_COMMITTED: the items by id, every account they (and the
        negative-balance reserve's covers and recoveries among them) moved as it is
        after the whole batch."""
        self.events.append(
            Event(
                EventType.BATCH_COMMITTED,
                issued.request_id,
                issued.trace_id,
                accounts=self.accounts_of(items + self.reserve_transfers),
                item_ids=tuple(t.id for t in items),
            )
        )

    def accounts_of(self, transfers: list[Transfer]) -> tuple[Account, ...]:
        """The accounts `transfers` move, as they are now, in id order."""
        ids = {a for t in transfers for a in (t.debit_account_id, t.credit_account_id)}
        return tuple(self.accounts[a] for a in sorted(ids))


# The commands that move money, in which a call acting for a holder may also name the
# platform accounts open to holders (to credit them).
_MOVEMENTS = (
    CreateTransfer, CreateTransfers, PostTransfer, VoidTransfer, IncrementHold, ExtendHold,
    ReverseTransfer,
)  # fmt: skip


def _see_as_holder(fork: _Fork, command: Command[Any], holder_id: str) -> None:
    """Leaves the command, acting for a holder, only what the holder may see: its own
    accounts (and, in a movement, the platform accounts open to holders and its
    accounts' negative-balance reserves, which it may credit: repay), the transfers
    between those that touch its own, its own scheduled parts, and itself. Everything
    else is absent, so it answers exactly as ids that do not exist do. The fork's own
    changes are still empty here; the batch's running state is untouched."""
    fork.holder_id = holder_id
    movement = isinstance(command, _MOVEMENTS)
    reserves = {
        account.negative_balance_reserve_account_id
        for account in fork.accounts.values()
        if scope.owns(holder_id, account)
    }
    accounts = {
        account_id: account
        for account_id, account in fork.accounts.items()
        if scope.owns(holder_id, account)
        or (movement and scope.may_name_in_movement(holder_id, account, reserves))
    }
    owned = {a for a, account in accounts.items() if scope.owns(holder_id, account)}
    fork.accounts = ChainMap({}, accounts)
    fork.transfers = ChainMap(
        {},
        {
            transfer_id: transfer
            for transfer_id, transfer in fork.transfers.items()
            if {transfer.debit_account_id, transfer.credit_account_id} <= accounts.keys()
            and not owned.isdisjoint((transfer.debit_account_id, transfer.credit_account_id))
        },
    )
    fork.funds = ChainMap({}, {f: p for f, p in fork.funds.items() if p.account_id in owned})
    fork.records = ChainMap({})  # bank destinations and payouts are the platform's
    fork.holders = ChainMap({}, {h: v for h, v in fork.holders.items() if h == holder_id})


def _require_holder_debits_only(fork: _Fork, holder_id: str) -> None:
    """A call acting for a holder moves money out of the holder's own accounts only: a
    platform account open to holders may be credited, never debited (by a new transfer
    or hold, or a capture, increment, void or extension of a hold from it: the
    platform's hold is the platform's to end; reversing what it paid the holder is no
    debit of it). New debits (transfers, holds, increments, over-captures, reversals)
    are refused before anything else by _Fork.require_holders_own, so a refusal tells
    nothing of the account; a capture, void or extension of a platform's hold is
    refused here only, after the handler: its refusals tell only of the hold, which
    the holder sees anyway (it touches its account).

    Raises:
        Rejected: HOLDER_SCOPE_FORBIDS, naming the platform account.
    """
    for transfer_id, after in fork.transfers.maps[0].items():
        debited = fork.accounts[after.debit_account_id]
        if scope.owns(holder_id, debited):
            continue
        before = fork.ledger.transfers.get(transfer_id)
        if before is None or _moved(before) != _moved(after):
            raise scope.forbidden(holder_id, "debit a platform account", debited.id)


def _moved(transfer: Transfer) -> tuple[object, ...]:
    """What a change of a transfer changes of the money out of its debit account (its
    reversal, which moves money back into it, changes none of this)."""
    return (
        transfer.state,
        transfer.amount_minor,
        transfer.posted_amount_minor,
        transfer.expires_at,
    )


def _create_account(
    fork: _Fork, command: CreateAccount, issued: Issued, account_id: str | None = None
) -> Account:
    """A new account, with a new id unless `account_id` (a rail's settlement account,
    domain/rail_ledger.py) gives it."""
    validate_policy(command.funds_policy, command.normal_balance)  # the edge did; again here
    rules.require_platform_account(command.holder_id, command.open_to_holders)
    # The edge let any code of an asset's shape through: only now is it known whether
    # this tenant registered it.
    require_known(command.currency_code, fork.assets)
    if is_holder_id(command.holder_id):
        owner = fork.holders.get(command.holder_id)
        if owner is None:
            raise holder_not_found(command.holder_id)
        require_not_closed(owner)
    if command.external_id is not None and command.external_id in fork.taken_external_ids:
        # Acting for a holder, whose account has it is not the holder's to learn.
        holder = "" if fork.holder_id else fork.taken_external_ids[command.external_id]
        raise Rejected(
            Reason.EXTERNAL_ID_TAKEN,
            f"account {holder or '(not yours)'} has this external_id",
            {"external_id": command.external_id, "account_id": holder},
        )
    account = Account(
        id=account_id or ids.new_id(ids.ACCOUNT),
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
        funds_policy=command.funds_policy,
        open_to_holders=command.open_to_holders,
        negative_balance_reserve_account_id=command.negative_balance_reserve_account_id,
    )
    reserve_id = command.negative_balance_reserve_account_id
    if reserve_id:
        reserve_rules.require_eligible(account, reserve_id, fork.accounts.get(reserve_id))
    fork.accounts[account.id] = account
    if command.funds_policy:
        fork.policy_changes.append(
            PolicyChange(
                account.id, 1, NO_POLICY, command.funds_policy, issued.request_id,
                issued.trace_id, fork.now,
            )
        )  # fmt: skip
    fork.new_account_ids.append(account.id)
    if command.external_id is not None:
        fork.taken_external_ids[command.external_id] = account.id
    fork.events.append(
        Event(EventType.ACCOUNT_CREATED, issued.request_id, issued.trace_id, (), (account,))
    )
    return account


def _account_change(
    change: Callable[[_Fork, Account, Any], Account], kind: EventType
) -> Callable[[_Fork, Any, Issued], Account]:
    """A handler for the commands that change one account's attributes or state; a
    change that changes nothing writes nothing and tells nothing."""

    def handle(fork: _Fork, command: Any, issued: Issued) -> Account:
        account = fork.accounts.get(command.account_id)
        if account is None:
            raise account_not_found(command.account_id)
        rules.require_version(
            account, command.expected_version, command.expected_attributes_version
        )
        changed = change(fork, account, command)
        if changed is account:
            return account
        changed = replace(changed, updated_at=fork.now)
        fork.accounts[changed.id] = changed
        if changed.funds_policy != account.funds_policy:
            fork.policy_changes.append(
                PolicyChange(
                    changed.id, changed.version, account.funds_policy, changed.funds_policy,
                    issued.request_id, issued.trace_id, fork.now,
                )
            )  # fmt: skip
        fork.events.append(Event(kind, issued.request_id, issued.trace_id, (), (changed,)))
        return changed

    return handle


def _update_account(fork: _Fork, account: Account, command: UpdateAccount) -> Account:
    """UpdateAccount's change (domain/accounts.py), with a new negative-balance reserve
    checked as CreateAccount checks one, and no funds policy given to an account that
    has a reserve (its credits must be available at once to repay it)."""
    changed = rules.update(account, command.changes, MAX_METADATA_KEYS)
    reserve_id = changed.negative_balance_reserve_account_id
    if reserve_id and reserve_id != account.negative_balance_reserve_account_id:
        reserve_rules.require_eligible(changed, reserve_id, fork.accounts.get(reserve_id))
    elif reserve_id and changed.funds_policy and changed.funds_policy != account.funds_policy:
        raise reserve_rules.ineligible(changed, reserve_id, "FUNDS_POLICY", "funds_policy")
    return changed


def _create_transfer(fork: _Fork, command: CreateTransfer, issued: Issued) -> Transfer:
    new = NewTransfer(ids.new_id(ids.TRANSFER), issued.request_id, fork.now, issued.trace_id)
    transfer, entries, parts = fork.open_transfer(command.spec, new)
    fork.add_transfer(transfer, entries)
    fork.schedule(transfer, parts)
    fork.tell(EventType.TRANSFER_CREATED, issued, transfer)
    return transfer


def _create_transfers(fork: _Fork, command: CreateTransfers, issued: Issued) -> list[Transfer]:
    batch_id = ids.new_id(ids.BATCH)
    done = []
    for index, item in enumerate(command.specs):
        try:
            if isinstance(item, CaptureHold):
                transfer = _capture(fork, item.transfer_id, item.amount_minor, item.final, issued)
            elif isinstance(item, VoidHold):
                transfer = _void(fork, VoidTransfer(item.transfer_id), issued)
            elif isinstance(item, ReversalRequest):
                transfer, _ = _reverse_one(fork, item, issued, batch_id)
            else:
                new = NewTransfer(
                    ids.new_id(ids.TRANSFER), issued.request_id, fork.now, issued.trace_id,
                    batch_id,
                )  # fmt: skip
                transfer, entries, parts = fork.open_transfer(item, new)
                fork.add_transfer(transfer, entries)
                fork.schedule(transfer, parts)
                fork.tell(EventType.TRANSFER_CREATED, issued, transfer)
        except (Rejected, InvalidInput) as error:
            raise _for_item(error, index, _item_path(command, index)) from None
        done.append(transfer)
    fork.recover(issued)  # before BATCH_COMMITTED, which shows the accounts after it
    fork.tell_batch(issued, done)
    return done


def _item_path(command: CreateTransfers, index: int) -> str:
    """Where a batch item's fields are in the request, as errors name them."""
    if not command.operations:
        return f"transfers[{index}]."
    item = command.specs[index]
    field = {
        CaptureHold: "capture_hold",
        VoidHold: "void_hold",
        ReversalRequest: "reverse_transfer",
    }.get(type(item), "transfer")
    return f"operations[{index}].{field}."


def _post(fork: _Fork, command: PostTransfer, issued: Issued) -> Transfer:
    return _capture(fork, command.transfer_id, command.amount_minor, command.final, issued)


def _capture(
    fork: _Fork, transfer_id: str, amount_minor: int, final: bool, issued: Issued
) -> Transfer:
    hold = fork.locked_transfer(transfer_id)
    posted, entries, parts = post_hold(
        fork.accounts, hold, amount_minor, fork.now, issued.request_id, final=final
    )
    if posted.posted_amount_minor > hold.amount_minor:
        # What an over-capture takes past the hold is a new debit, as an increment is.
        fork.require_may_debit(hold.debit_account_id)
    fork.recount(hold, posted)
    fork.change_transfer(posted, entries)
    fork.schedule(posted, parts)
    if posted.state is TransferState.PENDING:
        fork.tell(EventType.TRANSFER_CAPTURED, issued, posted)
    else:
        fork.tell(EventType.TRANSFER_POSTED, issued, posted)
    return posted


def _void(fork: _Fork, command: VoidTransfer, issued: Issued) -> Transfer:
    hold = fork.locked_transfer(command.transfer_id)
    voided, entries = void_hold(fork.accounts, hold, fork.now, issued.request_id)
    fork.recount(hold, voided)
    fork.change_transfer(voided, entries)
    if voided.history[-1].kind is EventKind.EXPIRED:
        # It expired before the void came (the sweeper had not reached it yet): told as
        # the expiry it is, with no request of its own, as the sweeper would have.
        fork.tell(EventType.TRANSFER_EXPIRED, replace(issued, request_id=""), voided)
    else:
        fork.tell(EventType.TRANSFER_VOIDED, issued, voided)
    return voided


def _increment(fork: _Fork, command: IncrementHold, issued: Issued) -> Transfer:
    hold = fork.locked_transfer(command.transfer_id)
    fork.require_may_debit(hold.debit_account_id)
    raised, entries = increment_hold(
        fork.accounts, hold, command.amount_minor, fork.now, issued.request_id
    )
    fork.recount(hold, raised)
    fork.change_transfer(raised, entries)
    fork.tell(EventType.TRANSFER_INCREMENTED, issued, raised)
    return raised


def _extend(fork: _Fork, command: ExtendHold, issued: Issued) -> Transfer:
    hold = fork.locked_transfer(command.transfer_id)
    expires_at = command.expires_at
    if expires_at is None:  # by a duration, from the current expiry
        expires_at = (hold.expires_at or fork.now) + (command.extend_by or timedelta(0))
    extended = extend_hold(hold, expires_at, fork.now, issued.request_id)
    fork.change_transfer(extended, [])
    fork.tell(EventType.TRANSFER_EXTENDED, issued, extended)
    return extended


def _expire(fork: _Fork, command: ExpireHold, issued: Issued) -> Transfer | None:
    hold = fork.transfers.get(command.transfer_id)
    if hold is None:
        return None
    ended = expire_hold(fork.accounts, hold, fork.now)
    if ended is None:
        return None
    expired, entries = ended
    fork.recount(hold, expired)
    fork.change_transfer(expired, entries)
    fork.tell(EventType.TRANSFER_EXPIRED, issued, expired)
    return expired


def _reverse(fork: _Fork, command: ReverseTransfer, issued: Issued) -> tuple[Transfer, Transfer]:
    return _reverse_one(fork, command.request, issued)


def _reverse_one(
    fork: _Fork, request: ReversalRequest, issued: Issued, batch_id: str | None = None
) -> tuple[Transfer, Transfer]:
    """ReverseTransfer, alone or as a batch's reverse_transfer (then filed in the batch):
    the negative-balance reserve covers first what the account paying it back cannot."""
    original = fork.locked_transfer(request.transfer_id)
    if original.credit_account_id in fork.accounts:  # else reverse() answers NOT_FOUND
        fork.require_holders_own(fork.accounts[original.credit_account_id])
    amount = reversal_amount(original, request)
    new = NewTransfer(
        ids.new_id(ids.TRANSFER), issued.request_id, fork.now, issued.trace_id, batch_id
    )
    fork.cover(original, amount, new.transfer_id, issued)
    reversal, updated, entries, endings = reverse(
        fork.accounts,
        original,
        request,
        new,
        fork.open_funds_of(original),
        fork.debit_usage(original.credit_account_id),
    )
    fork.count_debit(reversal.debit_account_id, reversal.amount_minor)
    fork.add_transfer(reversal, entries)
    fork.change_transfer(updated, [])
    fork.end_funds(endings, EndKind.REVERSED, issued.request_id)
    fork.tell(EventType.TRANSFER_CREATED, issued, reversal)
    fork.tell(EventType.TRANSFER_REVERSED, issued, updated)
    return reversal, updated


def _release_funds(fork: _Fork, command: ReleaseFunds, issued: Issued) -> FundsRelease:
    account = fork.accounts.get(command.account_id)
    if account is None:
        raise account_not_found(command.account_id)
    if not account.funds_policy.early_release_allowed:
        raise Rejected(
            Reason.EARLY_RELEASE_NOT_ALLOWED,
            f"account {account.id}'s funds policy does not allow early release",
            {"account_id": account.id},
        )
    pending = oldest_first(
        f for f in fork.open_funds(account.id) if f.kind is FundsKind.AVAILABILITY
    )
    if command.funds_ids:
        endings = [Ending(part, part.amount_minor) for part in _named_funds(fork, command)]
    else:
        unreleased = sum(f.amount_minor for f in pending)
        if command.amount_minor > unreleased:
            raise Rejected(
                Reason.RELEASE_EXCEEDS_PENDING,
                f"account {account.id} has {unreleased} pending availability",
                {"account_id": account.id, "pending_availability_minor": str(unreleased)},
            )
        endings = take(pending, command.amount_minor)
    released_minor = sum(e.amount_minor for e in endings)
    ended = fork.release(account, endings, EndKind.RELEASED_EARLY, issued)
    fee = None
    if command.fee_minor:
        spec = TransferSpec(
            debit_account_id=account.id,
            credit_account_id=command.fee_account_id,
            amount_minor=command.fee_minor,
            currency_code=account.currency_code,
            description=command.description or "early release fee",
            metadata=command.metadata,
        )
        new = NewTransfer(ids.new_id(ids.TRANSFER), issued.request_id, fork.now, issued.trace_id)
        fee, entries, parts = fork.open_transfer(spec, new)
        fork.add_transfer(fee, entries)
        fork.schedule(fee, parts)
        fork.tell(EventType.TRANSFER_CREATED, issued, fee)
    return FundsRelease(
        released=tuple(fork.funds[f.id] for f in ended),
        released_minor=released_minor,
        fee_transfer=fee,
        account=fork.accounts[account.id],
        schedule=schedule_of(fork.open_funds(account.id)),
    )


def _named_funds(fork: _Fork, command: ReleaseFunds) -> list[ScheduledFunds]:
    """The parts ReleaseFunds names, each of its account, pending availability, open."""
    named = []
    for funds_id in dict.fromkeys(command.funds_ids):  # a part named twice ends once
        part = fork.funds.get(funds_id)
        if part is None or part.account_id != command.account_id:
            raise Rejected(
                Reason.FUNDS_NOT_FOUND,
                f"no scheduled funds {funds_id} on account {command.account_id}",
                {"funds_id": funds_id, "account_id": command.account_id},
            )
        if part.kind is not FundsKind.AVAILABILITY or not part.is_open:
            raise Rejected(
                Reason.FUNDS_NOT_SCHEDULED,
                f"funds {funds_id} are not pending availability (a reserve, or ended)",
                {
                    "funds_id": funds_id,
                    "kind": part.kind.value,
                    "state": part.end_kind.value if part.end_kind else "SCHEDULED",
                },
            )
        named.append(part)
    return named


def _release_due(
    fork: _Fork, command: ReleaseDueFunds, issued: Issued
) -> tuple[ScheduledFunds, ...]:
    account = fork.accounts.get(command.account_id)
    if account is None:
        return ()
    due = oldest_first(f for f in fork.open_funds(account.id) if f.available_at <= fork.now)
    if not due:
        return ()
    endings = [Ending(part, part.amount_minor) for part in due]
    return tuple(fork.release(account, endings, EndKind.RELEASED, issued))


def _create_monitor(fork: _Fork, command: CreateBalanceMonitor, issued: Issued) -> BalanceMonitor:
    account = fork.accounts.get(command.account_id)
    if account is None:
        raise account_not_found(command.account_id)
    if len(fork.monitors_of(account.id)) >= MAX_MONITORS_PER_ACCOUNT:
        raise Rejected(
            Reason.MONITOR_LIMIT_REACHED,
            f"account {account.id} has {MAX_MONITORS_PER_ACCOUNT} monitors already",
            {"account_id": account.id, "limit": str(MAX_MONITORS_PER_ACCOUNT)},
        )
    monitor = BalanceMonitor(
        id=ids.new_id(ids.MONITOR),
        account_id=account.id,
        field=command.field,
        operator=command.operator,
        threshold_minor=command.threshold_minor,
        description=command.description,
        triggered=False,
        created_at=fork.now,
        updated_at=fork.now,
    )
    fork.monitors[monitor.id] = monitor
    if monitor.holds(account.balances, account.normal_balance):
        fork.flip(monitor, True, account, issued)  # true from the start: told at once
    return fork.monitors[monitor.id]


def _delete_monitor(fork: _Fork, command: DeleteBalanceMonitor, issued: Issued) -> BalanceMonitor:
    monitor = fork.monitors.get(command.monitor_id)
    if monitor is None:
        raise monitor_not_found(command.monitor_id)
    if monitor.deleted:
        return monitor
    deleted = replace(monitor, deleted=True, updated_at=fork.now)
    fork.monitors[deleted.id] = deleted
    return deleted


def _register_asset(fork: _Fork, command: RegisterAsset, issued: Issued) -> Asset:
    wanted = Asset(
        code=command.code,
        exponent=command.exponent,
        name=command.name,
        description=command.description,
        request_id=issued.request_id,
        created_at=fork.now,
    )
    existing = fork.assets.get(command.code)
    asset = register(existing, fork.ledger.asset_count, wanted)
    if asset is wanted:
        fork.assets[asset.code] = asset
    return asset


def _for_item(error: Rejected | InvalidInput, index: int, path: str) -> Rejected | InvalidInput:
    """The error of batch item `index` (whose fields are at `path`), naming it."""
    if isinstance(error, InvalidInput):
        return InvalidInput(
            [FieldViolation(f"{path}{v.field}", v.reason, v.description) for v in error.violations]
        )
    return Rejected(
        error.reason,
        f"{path.rstrip('.')}: {error.message}",
        {**error.metadata, "item_index": str(index)},
    )


def _counted(transfer: Transfer) -> int:
    """What a transfer counts toward its debit account's limits (as lock_batch reads it)."""
    if transfer.state is TransferState.PENDING:
        return transfer.amount_minor
    if transfer.state is TransferState.POSTED:
        return transfer.posted_amount_minor
    return 0


_HANDLERS: dict[type[Command[Any]], Callable[[_Fork, Any, Issued], Any]] = {
    CreateAccount: _create_account,
    UpdateAccount: _account_change(_update_account, EventType.ACCOUNT_UPDATED),
    FreezeAccount: _account_change(
        lambda _, a, command: rules.freeze(a, command.scope, command.reason),
        EventType.ACCOUNT_FROZEN,
    ),
    UnfreezeAccount: _account_change(
        lambda _, a, __: rules.unfreeze(a), EventType.ACCOUNT_UNFROZEN
    ),
    CloseAccount: _account_change(
        lambda fork, a, __: rules.close(a, fork.owed_as_reserve(a.id)), EventType.ACCOUNT_CLOSED
    ),
    CreateTransfer: _create_transfer,
    CreateTransfers: _create_transfers,
    PostTransfer: _post,
    VoidTransfer: _void,
    IncrementHold: _increment,
    ExtendHold: _extend,
    ReverseTransfer: _reverse,
    ExpireHold: _expire,
    ReleaseFunds: _release_funds,
    ReleaseDueFunds: _release_due,
    CreateBalanceMonitor: _create_monitor,
    DeleteBalanceMonitor: _delete_monitor,
    CreateExternalAccount: rail_ledger.create_external_account,
    DisableExternalAccount: rail_ledger.disable_external_account,
    CreatePayout: rail_ledger.create_payout,
    CancelPayout: rail_ledger.cancel_payout,
    StartPayout: rail_ledger.start_payout,
    SettlePayout: rail_ledger.settle_payout,
    ReceiveInbound: rail_ledger.receive_inbound,
    ReturnInbound: rail_ledger.return_inbound,
    RegisterAsset: _register_asset,
    CreateHolder: holder_ledger.create_holder,
    UpdateHolder: holder_ledger.update_holder,
}


def handled_commands() -> Sequence[type[Command[Any]]]:
    """Every command kind the ledger decides (for tests)."""
    return list(_HANDLERS)
