"""Commands: every mutation as a typed value, decided by the ledger (domain/ledger.py).

A command says what a caller asks for, validated at the edge; it is handed to the write
pipeline with the request id and decided inside a transaction against the locked state.
Each kind names the accounts and transfers it touches when that is known beforehand
(the pipeline locks and routes by them) and what its request fingerprint covers.

`Command[R]`: R is what the command returns when it succeeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar, Generic, TypeVar

from moneymovement.domain.accounts import Account, AccountChanges, FreezeScope, OverdraftMode
from moneymovement.domain.assets import Asset
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.funds import NO_POLICY, FundsPolicy, Part, ScheduledFunds
from moneymovement.domain.holders import Holder, HolderChanges, HolderState, is_holder_id
from moneymovement.domain.money import is_known_currency
from moneymovement.domain.monitors import BalanceMonitor, MonitorField, MonitorOperator
from moneymovement.domain.payouts import (
    ExternalAccount,
    InboundTransfer,
    Payout,
    PayoutMethod,
    PayoutState,
    settlement_external_id,
)
from moneymovement.domain.reversals import ReversalRequest
from moneymovement.domain.transfers import Transfer, TransferSpec

R = TypeVar("R")


class Command(Generic[R]):
    """A mutation. Subclasses are frozen dataclasses."""

    # The RPC's name: part of the request fingerprint, so that one request id used for
    # two different methods is refused even when their fields look alike.
    method: ClassVar[str]
    # Whether a repeat of the request id is answered from the recorded outcome; only the
    # sweeper's expiries, which carry no request id, are not recorded.
    recorded: ClassVar[bool] = True
    # Whether deciding it needs how many assets the tenant has (read only then).
    counts_assets: ClassVar[bool] = False

    def account_ids(self) -> tuple[str, ...]:
        """The accounts the command touches, when known before reading anything."""
        return ()

    def transfer_ids(self) -> tuple[str, ...]:
        """The existing transfers the command changes (locked before their accounts)."""
        return ()

    def external_ids(self) -> tuple[str, ...]:
        """External account ids the command claims (checked for uniqueness)."""
        return ()

    def funds_account_ids(self) -> tuple[str, ...]:
        """Accounts whose every unended scheduled part the command needs (releases)."""
        return ()

    def named_funds_ids(self) -> tuple[str, ...]:
        """Scheduled parts the command names by id (read whether ended or not)."""
        return ()

    def monitor_ids(self) -> tuple[str, ...]:
        """Existing balance monitors the command changes by id."""
        return ()

    def record_ids(self) -> tuple[str, ...]:
        """External accounts, payouts and inbound transfers the command reads by id
        (their prefixes tell them apart, domain/ids.py)."""
        return ()

    def asset_codes(self) -> tuple[str, ...]:
        """The currency codes outside the ISO 4217 table the command names: the tenant's
        assets of these codes are read with the locks (domain/assets.py)."""
        return ()

    def holder_ids(self) -> tuple[str, ...]:
        """The holders the command names by id (locked with the batch; the holders of
        its accounts are read without being named)."""
        return ()

    def holder_external_ids(self) -> tuple[str, ...]:
        """Holder external ids the command claims (checked for uniqueness)."""
        return ()

    def counted_holder_ids(self) -> tuple[str, ...]:
        """Holders whose accounts not yet closed must be counted (to close them)."""
        return ()

    def closed_account_ids(self) -> tuple[str, ...]:
        """Accounts it closes: what accounts owe each as their negative-balance reserve
        is read (a reserve is not closed while owed)."""
        return ()

    def fingerprint_payload(self) -> object:
        """What the request fingerprint covers (stable across releases: a changed
        payload would make retries across a deploy look like reused request ids)."""
        return self

    def items(self) -> int:
        """How much of a batch's capacity the command takes (transfers it may write)."""
        return 1


@dataclass(frozen=True)
class CreateAccount(Command[Account]):
    """CreateAccount, validated."""

    method: ClassVar[str] = "CreateAccount"

    currency_code: str
    normal_balance: NormalBalance
    overdraft_mode: OverdraftMode = OverdraftMode.NONE
    overdraft_limit_minor: int = 0
    external_id: str | None = None
    name: str = ""
    holder_id: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    funds_policy: FundsPolicy = NO_POLICY
    open_to_holders: bool = False
    negative_balance_reserve_account_id: str = ""

    def account_ids(self) -> tuple[str, ...]:
        # The reserve it names, read (and locked) to check it may be one.
        reserve = self.negative_balance_reserve_account_id
        return (reserve,) if reserve else ()

    def external_ids(self) -> tuple[str, ...]:
        return () if self.external_id is None else (self.external_id,)

    def asset_codes(self) -> tuple[str, ...]:
        return _not_iso(self.currency_code)

    def holder_ids(self) -> tuple[str, ...]:
        return (self.holder_id,) if is_holder_id(self.holder_id) else ()


@dataclass(frozen=True)
class _AccountChange(Command[Account]):
    account_id: str
    expected_version: int | None = None
    expected_attributes_version: int | None = None

    def account_ids(self) -> tuple[str, ...]:
        return (self.account_id,)

    def versions(self) -> tuple[object, ...]:
        """What the fingerprint covers of the expected versions: the attributes version
        only when asked, so requests without it keep the digest they had before it."""
        if self.expected_attributes_version is None:
            return (self.expected_version,)
        return (self.expected_version, self.expected_attributes_version)

    def fingerprint_payload(self) -> object:
        return (self.account_id, *self.versions())


@dataclass(frozen=True)
class UpdateAccount(_AccountChange):
    """Name, metadata or overdraft policy."""

    method: ClassVar[str] = "UpdateAccount"

    changes: AccountChanges = field(default_factory=AccountChanges)

    def account_ids(self) -> tuple[str, ...]:
        reserve = self.changes.negative_balance_reserve_account_id
        return (self.account_id, reserve) if reserve else (self.account_id,)

    def fingerprint_payload(self) -> object:
        return (self.account_id, self.changes, *self.versions())


@dataclass(frozen=True)
class FreezeAccount(_AccountChange):
    """Refuse transfers touching the account (scope ALL) or debiting it (DEBITS)."""

    method: ClassVar[str] = "FreezeAccount"

    scope: FreezeScope = FreezeScope.ALL
    reason: str = ""

    def fingerprint_payload(self) -> object:
        # The scope and reason join the payload only when set, so a plain freeze keeps the
        # digest it had before they existed (a retry across a deploy still replays).
        if self.scope is FreezeScope.ALL and not self.reason:
            return (self.account_id, self.expected_version)
        return (self.account_id, self.expected_version, self.scope, self.reason)


@dataclass(frozen=True)
class UnfreezeAccount(_AccountChange):
    """Accept transfers again."""

    method: ClassVar[str] = "UnfreezeAccount"


@dataclass(frozen=True)
class CloseAccount(_AccountChange):
    """Close an empty account for good."""

    method: ClassVar[str] = "CloseAccount"

    def closed_account_ids(self) -> tuple[str, ...]:
        return (self.account_id,)


@dataclass(frozen=True)
class CreateTransfer(Command[Transfer]):
    """An immediate transfer, or a hold when `spec.pending`."""

    method: ClassVar[str] = "CreateTransfer"

    spec: TransferSpec

    def account_ids(self) -> tuple[str, ...]:
        return (self.spec.debit_account_id, self.spec.credit_account_id)

    def asset_codes(self) -> tuple[str, ...]:
        return _not_iso(self.spec.currency_code)

    def fingerprint_payload(self) -> object:
        return self.spec


@dataclass(frozen=True)
class CaptureHold:
    """A batch's capture of an existing hold (as PostTransfer)."""

    transfer_id: str
    amount_minor: int = 0
    final: bool = True


@dataclass(frozen=True)
class VoidHold:
    """A batch's void of an existing hold (as VoidTransfer)."""

    transfer_id: str


# A batch's reversal of a posted transfer is a ReversalRequest (as ReverseTransfer).
BatchItem = TransferSpec | CaptureHold | VoidHold | ReversalRequest


@dataclass(frozen=True)
class CreateTransfers(Command[list[Transfer]]):
    """An atomic batch: every item, in order, or none. An item is a new transfer or hold,
    a capture or void of an existing hold, or a reversal of a posted transfer.
    `operations`: the items came as CreateTransfersRequest.operations (errors name them
    so), not as transfers."""

    method: ClassVar[str] = "CreateTransfers"

    specs: Sequence[BatchItem]
    operations: bool = False

    def account_ids(self) -> tuple[str, ...]:
        return tuple(
            {
                a
                for s in self.specs
                if isinstance(s, TransferSpec)
                for a in (s.debit_account_id, s.credit_account_id)
            }
        )

    def transfer_ids(self) -> tuple[str, ...]:
        return tuple({s.transfer_id for s in self.specs if not isinstance(s, TransferSpec)})

    def asset_codes(self) -> tuple[str, ...]:
        return _not_iso(*(s.currency_code for s in self.specs if isinstance(s, TransferSpec)))

    def fingerprint_payload(self) -> object:
        # A batch of new transfers only keeps the digest it had before batches could
        # change holds; a capture and a void of the same hold must differ.
        if not self.operations:
            return list(self.specs)
        return [(type(s).__name__, s) for s in self.specs]

    def items(self) -> int:
        return max(1, len(self.specs))


@dataclass(frozen=True)
class PostTransfer(Command[Transfer]):
    """Capture a hold, fully (amount 0) or partly; a capture that is not `final` leaves
    the rest held for later captures."""

    method: ClassVar[str] = "PostTransfer"

    transfer_id: str
    amount_minor: int = 0
    final: bool = True

    def transfer_ids(self) -> tuple[str, ...]:
        return (self.transfer_id,)

    def fingerprint_payload(self) -> object:
        if self.final:  # the digest it had before captures could leave a rest held
            return (self.transfer_id, self.amount_minor)
        return (self.transfer_id, self.amount_minor, self.final)


@dataclass(frozen=True)
class VoidTransfer(Command[Transfer]):
    """Release a hold."""

    method: ClassVar[str] = "VoidTransfer"

    transfer_id: str

    def transfer_ids(self) -> tuple[str, ...]:
        return (self.transfer_id,)

    def fingerprint_payload(self) -> object:
        return self.transfer_id


@dataclass(frozen=True)
class IncrementHold(Command[Transfer]):
    """Raise a hold's amount (incremental authorisation)."""

    method: ClassVar[str] = "IncrementHold"

    transfer_id: str
    amount_minor: int

    def transfer_ids(self) -> tuple[str, ...]:
        return (self.transfer_id,)


@dataclass(frozen=True)
class ExtendHold(Command[Transfer]):
    """Move a hold's expiry later: to `expires_at`, or by `extend_by` past the current."""

    method: ClassVar[str] = "ExtendHold"

    transfer_id: str
    expires_at: datetime | None = None
    extend_by: timedelta | None = None

    def transfer_ids(self) -> tuple[str, ...]:
        return (self.transfer_id,)


@dataclass(frozen=True)
class ReverseTransfer(Command[tuple[Transfer, Transfer]]):
    """Move posted money back; answers (reversal, original)."""

    method: ClassVar[str] = "ReverseTransfer"

    request: ReversalRequest

    def transfer_ids(self) -> tuple[str, ...]:
        return (self.request.transfer_id,)

    def fingerprint_payload(self) -> object:
        return self.request


@dataclass(frozen=True)
class ExpireHold(Command["Transfer | None"]):
    """The sweeper's: release a hold whose time is up (None: nothing to do)."""

    method: ClassVar[str] = "ExpireHold"
    recorded: ClassVar[bool] = False

    transfer_id: str

    def transfer_ids(self) -> tuple[str, ...]:
        return (self.transfer_id,)


@dataclass(frozen=True)
class FundsRelease:
    """What ReleaseFunds did: the parts ended early (a part ended for less than its
    amount names its remainder, remainder_id), the amount made available, the fee
    transfer, the account after, and its availability schedule after."""

    released: tuple[ScheduledFunds, ...]
    released_minor: int
    fee_transfer: Transfer | None
    account: Account
    schedule: tuple[Part, ...] = ()  # the account's unended parts after it, by time and kind


@dataclass(frozen=True)
class ReleaseFunds(Command[FundsRelease]):
    """Make pending funds available now: these parts, or an amount oldest first; with an
    optional fee moved to another account in the same transaction."""

    method: ClassVar[str] = "ReleaseFunds"

    account_id: str
    funds_ids: tuple[str, ...] = ()
    amount_minor: int = 0
    fee_minor: int = 0
    fee_account_id: str = ""
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    def account_ids(self) -> tuple[str, ...]:
        return (self.account_id, self.fee_account_id) if self.fee_account_id else (self.account_id,)

    def funds_account_ids(self) -> tuple[str, ...]:
        return (self.account_id,)

    def named_funds_ids(self) -> tuple[str, ...]:
        return self.funds_ids


@dataclass(frozen=True)
class ReleaseDueFunds(Command["tuple[ScheduledFunds, ...]"]):
    """The sweeper's: release every part of the account whose time has come."""

    method: ClassVar[str] = "ReleaseDueFunds"
    recorded: ClassVar[bool] = False

    account_id: str

    def account_ids(self) -> tuple[str, ...]:
        return (self.account_id,)

    def funds_account_ids(self) -> tuple[str, ...]:
        return (self.account_id,)


@dataclass(frozen=True)
class CreateBalanceMonitor(Command[BalanceMonitor]):
    """Watch one of an account's balances against a threshold."""

    method: ClassVar[str] = "CreateBalanceMonitor"

    account_id: str
    field: MonitorField
    operator: MonitorOperator
    threshold_minor: int
    description: str = ""

    def account_ids(self) -> tuple[str, ...]:
        return (self.account_id,)


@dataclass(frozen=True)
class DeleteBalanceMonitor(Command[BalanceMonitor]):
    """Stop a monitor; deleting a deleted one answers it as it is."""

    method: ClassVar[str] = "DeleteBalanceMonitor"

    monitor_id: str

    def monitor_ids(self) -> tuple[str, ...]:
        return (self.monitor_id,)


@dataclass(frozen=True)
class CreateExternalAccount(Command[ExternalAccount]):
    """Register a bank destination: its rail, routing reference, the account number's
    last four digits and fingerprint (the number itself never comes this far)."""

    method: ClassVar[str] = "CreateExternalAccount"

    rail: str
    currency_code: str
    routing_reference: str
    last4: str
    fingerprint: str
    holder_name: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DisableExternalAccount(Command[ExternalAccount]):
    """No more payouts to it; those already made go on."""

    method: ClassVar[str] = "DisableExternalAccount"

    external_account_id: str

    def record_ids(self) -> tuple[str, ...]:
        return (self.external_account_id,)


@dataclass(frozen=True)
class CreatePayout(Command[Payout]):
    """Hold the amount (and fee) on the source account now; the worker hands it to the
    rail after `submit_delay_s` (0: at once). `settlement_account_id` is the rail's
    settlement account for the currency, found by the service."""

    method: ClassVar[str] = "CreatePayout"

    account_id: str
    external_account_id: str
    amount_minor: int
    currency_code: str
    payout_method: PayoutMethod
    settlement_account_id: str = ""  # the service's: of the external account's rail
    rail: str = ""  # the external account's, found by the service
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    fee_minor: int = 0
    fee_account_id: str = ""
    submit_delay_s: float = 0.0

    def account_ids(self) -> tuple[str, ...]:
        named = (self.account_id, self.settlement_account_id, self.fee_account_id)
        return tuple(a for a in named if a)

    def external_ids(self) -> tuple[str, ...]:
        # The settlement account's, which this payout opens if it is the rail's first.
        return (settlement_external_id(self.rail, self.currency_code),) if self.rail else ()

    def record_ids(self) -> tuple[str, ...]:
        return (self.external_account_id,)

    def fingerprint_payload(self) -> object:
        # What the caller asked; not what the server found or is configured with.
        return (
            self.account_id, self.external_account_id, self.amount_minor, self.currency_code,
            self.payout_method, self.description, dict(self.metadata), self.fee_minor,
            self.fee_account_id,
        )  # fmt: skip


@dataclass(frozen=True)
class _PayoutChange:
    """A payout named by id, with the holds it owns (read by the service beforehand: a
    payout's holds never change, and locking them locks the payout's changes)."""

    payout_id: str
    holds: tuple[str, ...] = ()

    def transfer_ids(self) -> tuple[str, ...]:
        return self.holds

    def record_ids(self) -> tuple[str, ...]:
        return (self.payout_id,)


@dataclass(frozen=True)
class CancelPayout(_PayoutChange, Command[Payout]):
    """Only while PENDING: the holds are voided."""

    method: ClassVar[str] = "CancelPayout"

    def fingerprint_payload(self) -> object:
        return self.payout_id


@dataclass(frozen=True)
class StartPayout(_PayoutChange, Command["Payout | None"]):
    """The worker's, just before it hands the payout to the rail: PENDING -> PROCESSING
    (None: it is not PENDING any more, canceled or started by another worker)."""

    method: ClassVar[str] = "StartPayout"
    recorded: ClassVar[bool] = False


@dataclass(frozen=True)
class SettlePayout(_PayoutChange, Command["Payout | None"]):
    """The worker's, as the rail tells: POSTED, FAILED (with the rail's reason) or
    RETURNED (with its reason). None: the payout is already there or past it."""

    method: ClassVar[str] = "SettlePayout"
    recorded: ClassVar[bool] = False

    state: PayoutState = PayoutState.POSTED
    reason: str = ""


@dataclass(frozen=True)
class ReceiveInbound(Command[InboundTransfer]):
    """Credit money that arrived from a rail, once per rail reference (the request id
    is derived from it)."""

    method: ClassVar[str] = "ReceiveInbound"

    rail: str
    rail_reference: str
    account_id: str
    settlement_account_id: str
    amount_minor: int
    currency_code: str
    description: str = ""

    def account_ids(self) -> tuple[str, ...]:
        return (self.account_id, self.settlement_account_id)

    def external_ids(self) -> tuple[str, ...]:
        return (settlement_external_id(self.rail, self.currency_code),)


@dataclass(frozen=True)
class ReturnInbound(Command["InboundTransfer | None"]):
    """The rail took an inbound credit back: its transfer is reversed in full. None:
    returned already."""

    method: ClassVar[str] = "ReturnInbound"
    recorded: ClassVar[bool] = False

    inbound_id: str
    transfer_id: str
    reason: str = ""

    def transfer_ids(self) -> tuple[str, ...]:
        return (self.transfer_id,)

    def record_ids(self) -> tuple[str, ...]:
        return (self.inbound_id,)


@dataclass(frozen=True)
class RegisterAsset(Command[Asset]):
    """Register a tenant asset code with its exponent (domain/assets.py)."""

    method: ClassVar[str] = "RegisterAsset"
    counts_assets: ClassVar[bool] = True

    code: str
    exponent: int
    name: str
    description: str = ""

    def asset_codes(self) -> tuple[str, ...]:
        return (self.code,)


@dataclass(frozen=True)
class CreateHolder(Command[Holder]):
    """A new holder with an external id unique in the tenant (domain/holders.py)."""

    method: ClassVar[str] = "CreateHolder"

    external_id: str
    name: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    def holder_external_ids(self) -> tuple[str, ...]:
        return (self.external_id,)


@dataclass(frozen=True)
class UpdateHolder(Command[Holder]):
    """A holder's name, metadata or state (restricting, lifting a restriction, closing)."""

    method: ClassVar[str] = "UpdateHolder"

    holder_id: str
    changes: HolderChanges = field(default_factory=HolderChanges)

    def holder_ids(self) -> tuple[str, ...]:
        return (self.holder_id,)

    def counted_holder_ids(self) -> tuple[str, ...]:
        return (self.holder_id,) if self.changes.state is HolderState.CLOSED else ()


def _not_iso(*codes: str) -> tuple[str, ...]:
    """The codes not in the ISO 4217 table, each once."""
    return tuple(dict.fromkeys(c for c in codes if not is_known_currency(c)))
