"""Tenant A sends every RPC naming tenant B's account, transfer, batch, trace, request,
scheduled funds, monitor, external account, payout, inbound transfer and fingerprint ids,
and B's asset code, and B's holder (HolderService) and its external id.
Nothing of B's is read or changed, and every answer is the answer for a made-up id of the
same format: same code, same ErrorInfo reason, same message and ErrorInfo metadata once
the id is replaced by a placeholder, same trailer keys.

The body is `check_tenant_isolation(channel, attacker, victim, dsn, bank, victim_tenant)`,
so that it can run against any server with a simulated rail (`bank` is its bank side,
which sends B an inbound credit). Both tests start their server with STANDARD payouts
waiting an hour, so that B's payout stays PENDING (cancelable) and the payout worker
changes nothing of B's while A probes. The first runs it against the normal server; the
second variant (the application-level tenant filter disabled in a test build, row-level
security alone holding) calls the same function with that server's clients.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message

from moneymovement.domain import ids
from moneymovement.rails.simulated import SimulatedBank
from moneymovement.storage import queries
from moneymovement.v1 import account_pb2, funds_pb2, holder_pb2, payout_pb2, transfer_pb2
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import admin_service_pb2 as adpb
from moneymovement.v1 import admin_service_pb2_grpc as adgrpc
from moneymovement.v1 import asset_service_pb2 as aspb
from moneymovement.v1 import balance_service_pb2 as bpb
from moneymovement.v1 import event_service_pb2 as epb
from moneymovement.v1 import funds_service_pb2 as fpb
from moneymovement.v1 import holder_service_pb2 as hpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from moneymovement.v1 import payout_service_pb2 as ppb
from tests.e2e.conftest import Client, start_api, stop_api
from tests.e2e.hostile import Answer, Code, all_rpcs, ask, tenant_id_of, tenant_rows
from tests.ledger_checks import assert_ledger_consistent

RPCS = {rpc.name: rpc for rpc in all_rpcs()}
_serial = itertools.count()
# B's payout and inbound credit, and the bank routing both tenants' destinations use.
B_PAYOUT_MINOR, B_INBOUND_MINOR, ROUTING = 250, 400, "021000021"
STANDARD = payout_pb2.PAYOUT_METHOD_STANDARD
# The servers' MM_PAYOUT_STANDARD_DELAY_S: B's STANDARD payout stays PENDING throughout.
STANDARD_DELAY_S = "3600"


@dataclass(frozen=True)
class Names:
    """The identifiers a probe names: the victim's, or made-up ones of the same format."""

    account: str  # holds money
    empty_account: str  # zero balance, could be closed
    transfer: str  # POSTED, reversible
    hold: str  # PENDING
    hold_to_void: str  # PENDING
    batch: str
    trace: str
    external_id: str
    holder: str
    metadata_value: str
    account_request_id: str  # the request that created `empty_account`
    transfer_request_id: str  # the request that created `transfer`
    hold_request_id: str
    funds: str  # a scheduled part of a credit to `account`, not available yet
    monitor: str  # a balance monitor on `account`
    external_account: str  # ACTIVE, USD
    external_request_id: str  # the request that created `external_account`
    bank_account_number: str  # what `external_account` was registered with
    fingerprint: str  # of `external_account`
    payout: str  # STANDARD, PENDING (cancelable), from `account` to `external_account`
    payout_hold: str  # the hold `payout` owns
    payout_request_id: str  # the request that created `payout`
    inbound: str  # RECEIVED, credited to `account`
    inbound_reference: str  # the rail's reference of `inbound`
    asset: str  # a tenant asset code, with an account in it
    asset_request_id: str  # the request that registered `asset`
    holder_record: str  # a holder (HolderService) with an account opened for it
    holder_external_id: str  # `holder_record`'s external id
    holder_request_id: str  # the request that created `holder_record`

    def values(self) -> list[str]:
        """Every identifier, longest first (so that one never hides inside another)."""
        return sorted(vars(self).values(), key=len, reverse=True)


def made_up(real: Names) -> Names:
    """Identifiers of the same format as `real` that exist nowhere."""
    tag = secrets.token_hex(4)
    return Names(
        account=ids.new_id(ids.ACCOUNT),
        empty_account=ids.new_id(ids.ACCOUNT),
        transfer=ids.new_id(ids.TRANSFER),
        hold=ids.new_id(ids.TRANSFER),
        hold_to_void=ids.new_id(ids.TRANSFER),
        batch=ids.new_id(ids.BATCH),
        trace=secrets.token_hex(16),
        external_id=f"ext-{tag}",
        holder=f"holder-{tag}",
        metadata_value=f"secret-{tag}",
        account_request_id=f"b-open-{tag}",
        transfer_request_id=f"b-pay-{tag}",
        hold_request_id=f"b-hold-{tag}",
        funds=ids.new_id(ids.FUNDS),
        monitor=ids.new_id(ids.MONITOR),
        external_account=ids.new_id(ids.EXTERNAL_ACCOUNT),
        external_request_id=f"b-xacct-{tag}",
        bank_account_number="".join(secrets.choice("0123456789") for _ in real.bank_account_number),
        fingerprint=secrets.token_hex(len(real.fingerprint) // 2),
        payout=ids.new_id(ids.PAYOUT),
        payout_hold=ids.new_id(ids.TRANSFER),
        payout_request_id=f"b-payout-{tag}",
        inbound=ids.new_id(ids.INBOUND),
        inbound_reference=f"b-wire-{tag}",
        asset="Z" + secrets.token_hex(4).upper()[: len(real.asset) - 1],
        asset_request_id=f"b-asset-{tag}",
        holder_record=ids.new_id(ids.HOLDER),
        holder_external_id=f"b-seller-{tag}",
        holder_request_id=f"b-holder-{tag}",
    )


@dataclass(frozen=True)
class Mine:
    """The attacker's own accounts, named in probes next to the victim's ids."""

    wallet: str  # holds money
    funding: str
    external: str  # an ACTIVE USD external account


def fresh(label: str) -> str:
    """A request id the attacker has not used."""
    return f"a-{label}-{next(_serial)}"


Probe = tuple[str, str, Callable[[Names, Mine], Message]]


def probes() -> list[Probe]:
    """(label, RPC name, request built from the names) for every RPC, often several."""
    t = timestamp_pb2.Timestamp(seconds=2_000_000_000)
    hour = duration_pb2.Duration(seconds=3600)

    def item(debit: str, credit: str) -> mpb.CreateTransfersRequest.Item:
        return mpb.CreateTransfersRequest.Item(
            debit_account_id=debit, credit_account_id=credit, amount_minor=1, currency_code="USD"
        )

    return [
        ("get account", "GetAccount", lambda n, m: apb.GetAccountRequest(account_id=n.account)),
        ("list by external id", "ListAccounts",
         lambda n, m: apb.ListAccountsRequest(external_id=n.external_id)),
        ("list by holder", "ListAccounts",
         lambda n, m: apb.ListAccountsRequest(holder_id=n.holder)),
        ("list by metadata", "ListAccounts",
         lambda n, m: apb.ListAccountsRequest(metadata={"owner": n.metadata_value})),
        ("update", "UpdateAccount", lambda n, m: apb.UpdateAccountRequest(
            request_id=fresh("update"), account_id=n.account, name="mine now",
            metadata={"owner": "a"})),
        ("update with B's request id", "UpdateAccount", lambda n, m: apb.UpdateAccountRequest(
            request_id=n.account_request_id, account_id=n.empty_account, name="x")),
        ("freeze", "FreezeAccount",
         lambda n, m: apb.FreezeAccountRequest(request_id=fresh("freeze"), account_id=n.account)),
        ("freeze, versioned", "FreezeAccount", lambda n, m: apb.FreezeAccountRequest(
            request_id=fresh("freeze"), account_id=n.account, expected_version=1)),
        ("unfreeze", "UnfreezeAccount", lambda n, m: apb.UnfreezeAccountRequest(
            request_id=fresh("unfreeze"), account_id=n.account)),
        ("close an empty account", "CloseAccount", lambda n, m: apb.CloseAccountRequest(
            request_id=fresh("close"), account_id=n.empty_account)),
        ("close with B's request id", "CloseAccount", lambda n, m: apb.CloseAccountRequest(
            request_id=n.account_request_id, account_id=n.empty_account)),
        ("balance", "GetBalance", lambda n, m: bpb.GetBalanceRequest(account_id=n.account)),
        ("balance as of", "GetBalance",
         lambda n, m: bpb.GetBalanceRequest(account_id=n.account, as_of_time=t)),
        ("batch balances", "BatchGetBalances",
         lambda n, m: bpb.BatchGetBalancesRequest(account_ids=[m.wallet, n.account])),
        ("statement", "ListEntries", lambda n, m: bpb.ListEntriesRequest(account_id=n.account)),
        ("pay from B", "CreateTransfer", lambda n, m: mpb.CreateTransferRequest(
            request_id=fresh("pay"), debit_account_id=n.account, credit_account_id=m.wallet,
            amount_minor=1, currency_code="USD")),
        ("pay to B", "CreateTransfer", lambda n, m: mpb.CreateTransferRequest(
            request_id=fresh("pay"), debit_account_id=m.funding, credit_account_id=n.account,
            amount_minor=1, currency_code="USD")),
        ("hold on B", "CreateTransfer", lambda n, m: mpb.CreateTransferRequest(
            request_id=fresh("hold"), debit_account_id=n.account, credit_account_id=m.wallet,
            amount_minor=1, currency_code="USD", pending=True, hold_timeout=hour)),
        ("B's request id and body", "CreateTransfer", lambda n, m: mpb.CreateTransferRequest(
            request_id=n.transfer_request_id, debit_account_id=n.account,
            credit_account_id=n.empty_account, amount_minor=1, currency_code="USD")),
        ("post B's hold", "PostTransfer", lambda n, m: mpb.PostTransferRequest(
            request_id=fresh("post"), transfer_id=n.hold)),
        ("post B's hold, B's request id", "PostTransfer", lambda n, m: mpb.PostTransferRequest(
            request_id=n.hold_request_id, transfer_id=n.hold, amount_minor=1)),
        ("void B's hold", "VoidTransfer", lambda n, m: mpb.VoidTransferRequest(
            request_id=fresh("void"), transfer_id=n.hold_to_void)),
        ("capture part of B's hold", "PostTransfer", lambda n, m: mpb.PostTransferRequest(
            request_id=fresh("post"), transfer_id=n.hold, amount_minor=1, final_capture=False)),
        ("increment B's hold", "IncrementHold", lambda n, m: mpb.IncrementHoldRequest(
            request_id=fresh("increment"), transfer_id=n.hold, amount_minor=1)),
        ("extend B's hold", "ExtendHold", lambda n, m: mpb.ExtendHoldRequest(
            request_id=fresh("extend"), transfer_id=n.hold, extend_by=hour)),
        ("capture B's hold in a batch", "CreateTransfers", lambda n, m: mpb.CreateTransfersRequest(
            request_id=fresh("batch"), operations=[mpb.CreateTransfersRequest.Operation(
                capture_hold=mpb.CreateTransfersRequest.CaptureHold(transfer_id=n.hold))])),
        ("void B's hold in a batch", "CreateTransfers", lambda n, m: mpb.CreateTransfersRequest(
            request_id=fresh("batch"), operations=[mpb.CreateTransfersRequest.Operation(
                void_hold=mpb.CreateTransfersRequest.VoidHold(transfer_id=n.hold_to_void))])),
        ("reverse B's transfer", "ReverseTransfer", lambda n, m: mpb.ReverseTransferRequest(
            request_id=fresh("reverse"), transfer_id=n.transfer)),
        ("reverse B's transfer in a batch", "CreateTransfers", lambda n, m:
         mpb.CreateTransfersRequest(request_id=fresh("batch"), operations=[
             mpb.CreateTransfersRequest.Operation(
                 reverse_transfer=mpb.CreateTransfersRequest.ReverseTransfer(
                     transfer_id=n.transfer, amount_minor=1))])),
        ("reverse B's transfer partly", "ReverseTransfer", lambda n, m: mpb.ReverseTransferRequest(
            request_id=fresh("reverse"), transfer_id=n.transfer, amount_minor=1)),
        ("batch through B", "CreateTransfers", lambda n, m: mpb.CreateTransfersRequest(
            request_id=fresh("batch"),
            transfers=[item(m.funding, m.wallet), item(n.account, m.wallet)])),
        ("get B's transfer", "GetTransfer",
         lambda n, m: mpb.GetTransferRequest(transfer_id=n.transfer)),
        ("get B's hold", "GetTransfer", lambda n, m: mpb.GetTransferRequest(transfer_id=n.hold)),
        ("transfers of B's account", "ListTransfers",
         lambda n, m: mpb.ListTransfersRequest(account_id=n.account)),
        ("B's batch", "ListTransfers", lambda n, m: mpb.ListTransfersRequest(batch_id=n.batch)),
        ("B's trace", "ListTransfers", lambda n, m: mpb.ListTransfersRequest(trace_id=n.trace)),
        ("B's metadata", "ListTransfers",
         lambda n, m: mpb.ListTransfersRequest(metadata={"owner": n.metadata_value})),
        ("events of B's account", "ListEvents", lambda n, m: epb.ListEventsRequest(
            start=epb.EVENT_START_OLDEST, filter=epb.EventFilter(account_id=n.account))),
        ("events of B's holder", "ListEvents", lambda n, m: epb.ListEventsRequest(
            filter=epb.EventFilter(holder_id=n.holder))),
        ("watch B's account", "WatchEvents", lambda n, m: epb.WatchEventsRequest(
            start=epb.EVENT_START_OLDEST, filter=epb.EventFilter(account_id=n.account))),
        ("watch B's holder", "WatchEvents", lambda n, m: epb.WatchEventsRequest(
            start=epb.EVENT_START_OLDEST, filter=epb.EventFilter(holder_id=n.holder))),
        ("events of B's holder record", "ListEvents", lambda n, m: epb.ListEventsRequest(
            start=epb.EVENT_START_OLDEST, filter=epb.EventFilter(holder_id=n.holder_record))),
        ("watch B's holder record", "WatchEvents", lambda n, m: epb.WatchEventsRequest(
            start=epb.EVENT_START_OLDEST, filter=epb.EventFilter(holder_id=n.holder_record))),
        ("release B's pending funds", "ReleaseFunds", lambda n, m: fpb.ReleaseFundsRequest(
            request_id=fresh("release"), account_id=n.account, amount_minor=1)),
        ("release B's part", "ReleaseFunds", lambda n, m: fpb.ReleaseFundsRequest(
            request_id=fresh("release"), account_id=n.account, funds_ids=[n.funds])),
        ("B's scheduled funds", "ListScheduledFunds", lambda n, m:
         fpb.ListScheduledFundsRequest(account_id=n.account, include_ended=True)),
        ("watch B's balance", "CreateBalanceMonitor", lambda n, m:
         fpb.CreateBalanceMonitorRequest(
             request_id=fresh("monitor"), account_id=n.account,
             field=funds_pb2.BalanceMonitor.FIELD_AVAILABLE,
             operator=funds_pb2.BalanceMonitor.OPERATOR_BELOW, threshold_minor=1)),
        ("B's monitors", "ListBalanceMonitors",
         lambda n, m: fpb.ListBalanceMonitorsRequest(account_id=n.account)),
        ("delete B's monitor", "DeleteBalanceMonitor", lambda n, m:
         fpb.DeleteBalanceMonitorRequest(request_id=fresh("unmonitor"), monitor_id=n.monitor)),
        ("B's policy changes", "ListPolicyChanges",
         lambda n, m: fpb.ListPolicyChangesRequest(account_id=n.account)),
        # PayoutService. A registers B's destination (B's routing reference and account
        # number) as its own first: a new external account either way (the responses are
        # not compared), whose fingerprint is not B's (keyed by tenant), so that the
        # listing by B's fingerprint below finds nothing either way.
        ("register B's destination", "CreateExternalAccount", lambda n, m:
         ppb.CreateExternalAccountRequest(
             request_id=fresh("xacct"), rail="simulated", currency_code="USD",
             routing_reference=ROUTING, account_number=n.bank_account_number,
             holder_name="B Holder")),
        ("B's external account", "GetExternalAccount",
         lambda n, m: ppb.GetExternalAccountRequest(id=n.external_account)),
        ("B's fingerprint", "ListExternalAccounts",
         lambda n, m: ppb.ListExternalAccountsRequest(fingerprint=n.fingerprint)),
        ("all external accounts", "ListExternalAccounts",
         lambda n, m: ppb.ListExternalAccountsRequest(page_size=500)),
        ("disable B's external account", "DisableExternalAccount", lambda n, m:
         ppb.DisableExternalAccountRequest(request_id=fresh("disable"), id=n.external_account)),
        ("disable, B's request id", "DisableExternalAccount", lambda n, m:
         ppb.DisableExternalAccountRequest(
             request_id=n.external_request_id, id=n.external_account)),
        ("pay out from B to A's destination", "CreatePayout", lambda n, m:
         ppb.CreatePayoutRequest(
             request_id=fresh("payout"), account_id=n.account, external_account_id=m.external,
             amount_minor=1, currency_code="USD", method=STANDARD)),
        ("pay out from A to B's destination", "CreatePayout", lambda n, m:
         ppb.CreatePayoutRequest(
             request_id=fresh("payout"), account_id=m.wallet,
             external_account_id=n.external_account, amount_minor=1, currency_code="USD",
             method=STANDARD)),
        ("pay out with a fee to B", "CreatePayout", lambda n, m: ppb.CreatePayoutRequest(
            request_id=fresh("payout"), account_id=m.wallet, external_account_id=m.external,
            amount_minor=1, currency_code="USD", method=STANDARD, fee_minor=1,
            fee_account_id=n.account)),
        ("pay out, B's request id and body", "CreatePayout", lambda n, m:
         ppb.CreatePayoutRequest(
             request_id=n.payout_request_id, account_id=n.account,
             external_account_id=n.external_account, amount_minor=B_PAYOUT_MINOR,
             currency_code="USD", method=STANDARD, metadata={"owner": n.metadata_value})),
        ("B's payout", "GetPayout", lambda n, m: ppb.GetPayoutRequest(id=n.payout)),
        ("payouts of B's account", "ListPayouts",
         lambda n, m: ppb.ListPayoutsRequest(account_id=n.account)),
        ("payouts to B's destination", "ListPayouts",
         lambda n, m: ppb.ListPayoutsRequest(external_account_id=n.external_account)),
        ("pending payouts", "ListPayouts", lambda n, m: ppb.ListPayoutsRequest(
            state=payout_pb2.PAYOUT_STATE_PENDING, page_size=500)),
        ("cancel B's payout", "CancelPayout",
         lambda n, m: ppb.CancelPayoutRequest(request_id=fresh("cancel"), id=n.payout)),
        ("cancel B's payout, B's request id", "CancelPayout",
         lambda n, m: ppb.CancelPayoutRequest(request_id=n.payout_request_id, id=n.payout)),
        ("get B's payout hold", "GetTransfer",
         lambda n, m: mpb.GetTransferRequest(transfer_id=n.payout_hold)),
        ("void B's payout hold", "VoidTransfer", lambda n, m: mpb.VoidTransferRequest(
            request_id=fresh("void"), transfer_id=n.payout_hold)),
        ("post B's payout hold", "PostTransfer", lambda n, m: mpb.PostTransferRequest(
            request_id=fresh("post"), transfer_id=n.payout_hold)),
        ("B's inbound transfer", "GetInboundTransfer",
         lambda n, m: ppb.GetInboundTransferRequest(id=n.inbound)),
        ("inbound transfers of B's account", "ListInboundTransfers",
         lambda n, m: ppb.ListInboundTransfersRequest(account_id=n.account)),
        ("all inbound transfers", "ListInboundTransfers",
         lambda n, m: ppb.ListInboundTransfersRequest(page_size=500)),
        ("reconcile B's payout and credit", "Reconcile",
         lambda n, m: ppb.ReconcileRequest(rail="simulated", lines=report_naming(n))),
        ("reconcile the rail's own report", "Reconcile",
         lambda n, m: ppb.ReconcileRequest(rail="simulated")),
        # AssetService, and B's asset code wherever a currency goes: the answer for a code
        # nobody registered.
        ("currencies", "ListCurrencies", lambda n, m: aspb.ListCurrenciesRequest(page_size=1000)),
        ("open in B's asset", "CreateAccount", lambda n, m: apb.CreateAccountRequest(
            request_id=fresh("create"), currency_code=n.asset,
            normal_balance=account_pb2.NORMAL_BALANCE_CREDIT)),
        ("pay in B's asset", "CreateTransfer", lambda n, m: mpb.CreateTransferRequest(
            request_id=fresh("pay"), debit_account_id=m.funding, credit_account_id=m.wallet,
            amount_minor=1, currency_code=n.asset)),
        ("accounts in B's asset", "ListAccounts",
         lambda n, m: apb.ListAccountsRequest(currency_code=n.asset)),
        # After the probes above: A registers B's code (with another exponent) under B's
        # request id, an asset of its own either way.
        ("register B's asset code", "RegisterAsset", lambda n, m: aspb.RegisterAssetRequest(
            request_id=n.asset_request_id, currency_code=n.asset, exponent=3, name="A's")),
        # HolderService: B's holder answers as one nobody created, wherever it goes.
        ("B's holder", "GetHolder",
         lambda n, m: hpb.GetHolderRequest(holder_id=n.holder_record)),
        ("B's holder's balances", "GetHolderBalances",
         lambda n, m: hpb.GetHolderBalancesRequest(holder_id=n.holder_record)),
        ("holders by B's external id", "ListHolders",
         lambda n, m: hpb.ListHoldersRequest(external_id=n.holder_external_id)),
        ("all holders", "ListHolders", lambda n, m: hpb.ListHoldersRequest(page_size=500)),
        ("restrict B's holder", "UpdateHolder", lambda n, m: hpb.UpdateHolderRequest(
            request_id=fresh("restrict"), holder_id=n.holder_record,
            state=holder_pb2.Holder.STATE_RESTRICTED)),
        ("open for B's holder", "CreateAccount", lambda n, m: apb.CreateAccountRequest(
            request_id=fresh("create"), holder_id=n.holder_record, currency_code="USD",
            normal_balance=account_pb2.NORMAL_BALANCE_CREDIT)),
        ("accounts of B's holder", "ListAccounts",
         lambda n, m: apb.ListAccountsRequest(holder_id=n.holder_record)),
        # After the lists: A creates a holder of its own with B's external id, under B's
        # request id (external ids are unique per tenant); the new holders differ.
        ("holder with B's external id", "CreateHolder", lambda n, m: hpb.CreateHolderRequest(
            request_id=n.holder_request_id, external_id=n.holder_external_id)),
        # Last, so that the lists above do not find it. OK both ways (external ids are
        # unique per tenant); the new accounts differ.
        ("create with B's external id", "CreateAccount", lambda n, m: apb.CreateAccountRequest(
            request_id=fresh("create"), external_id=n.external_id, holder_id=n.holder,
            currency_code="USD", normal_balance=account_pb2.NORMAL_BALANCE_CREDIT)),
    ]  # fmt: skip


def report_naming(names: Names) -> list[payout_pb2.SettlementLine]:
    """A settlement report listing B's payout (as paid) and B's inbound credit."""
    kind = payout_pb2.SettlementLineKind
    return [
        payout_pb2.SettlementLine(
            kind=kind.SETTLEMENT_LINE_KIND_PAYOUT, reference=names.payout,
            amount_minor=B_PAYOUT_MINOR, currency_code="USD", state="POSTED",
        ),
        payout_pb2.SettlementLine(
            kind=kind.SETTLEMENT_LINE_KIND_INBOUND, reference=names.inbound_reference,
            amount_minor=B_INBOUND_MINOR, currency_code="USD", state="RECEIVED",
        ),
    ]  # fmt: skip


# Requests that create something new either way: their responses differ by design.
_NEW_EACH_TIME = (
    apb.CreateAccountRequest, ppb.CreateExternalAccountRequest, hpb.CreateHolderRequest,
)  # fmt: skip


def normalized(answer: Answer, names: Names, sent: Message) -> tuple[object, ...]:
    """What a caller can observe of an answer, with the names it sent made anonymous."""
    placeholders = names.values()
    request_id = getattr(sent, "request_id", "")
    if request_id:
        placeholders = sorted({*placeholders, request_id}, key=len, reverse=True)

    def anonymous(text: str) -> str:
        for value in placeholders:
            text = text.replace(value, "<id>")
        return text

    response = None
    if answer.response is not None and not isinstance(sent, _NEW_EACH_TIME):
        shown = answer.response
        if isinstance(shown, aspb.RegisterAssetResponse):  # registered now: its time differs
            shown = aspb.RegisterAssetResponse(currency=shown.currency)
            shown.currency.ClearField("create_time")
        response = anonymous(str(shown))  # a new account differs from any other
    return (
        answer.code,
        answer.reason,
        answer.domain,
        anonymous(answer.message),
        sorted((key, anonymous(value)) for key, value in answer.info_metadata.items()),
        [(anonymous(f), r, anonymous(d)) for f, r, d in answer.violations],
        answer.trailer_keys,
        response,
    )


@dataclass(frozen=True)
class Money:
    """A victim's money (victim_money): its accounts and what moved through them, and
    the requests that made it, in order."""

    funding: str
    wallet: str  # holds money
    empty: str
    paid: transfer_pb2.Transfer  # POSTED, partly reversed
    hold: transfer_pb2.Transfer
    hold_2: transfer_pb2.Transfer
    batch_id: str
    part: funds_pb2.ScheduledFunds
    monitor: funds_pb2.BalanceMonitor
    register: ppb.CreateExternalAccountRequest
    external: payout_pb2.ExternalAccount
    payout: payout_pb2.Payout
    inbound: payout_pb2.InboundTransfer
    requests: list[Message]


async def victim_money(
    victim: Client,
    bank: SimulatedBank,
    victim_tenant: str,
    *,
    tag: str = "b",
    wallet_holder: str = "b-holder",
    holder: str = "",
) -> Money:
    """Accounts (a funding account, a wallet of `wallet_holder`, an empty one; the first
    and last of `holder`), transfers, holds, a batch, a reversal, a scheduled part, a
    monitor, an external account, a PENDING payout and an inbound credit, made by
    `victim`, with request ids, external id and metadata values starting with `tag`."""
    md = victim.md
    opened = [
        apb.CreateAccountRequest(
            request_id=f"{tag}-open-funding", currency_code="USD", holder_id=holder,
            normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
            overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
        ),
        apb.CreateAccountRequest(
            request_id=f"{tag}-open-wallet", currency_code="USD", external_id=f"{tag}-wallet",
            holder_id=wallet_holder, metadata={"owner": f"{tag}-secret"},
            normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
            funds_policy=funds_pb2.FundsPolicy(early_release_allowed=True),
        ),
        apb.CreateAccountRequest(
            request_id=f"{tag}-open-empty", currency_code="USD", holder_id=holder,
            normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
        ),
    ]  # fmt: skip
    funding, wallet, empty = [
        (await victim.accounts.CreateAccount(request, metadata=md)).account.id for request in opened
    ]

    def pay(request_id: str, amount: int, pending: bool = False) -> mpb.CreateTransferRequest:
        request = mpb.CreateTransferRequest(
            request_id=request_id, debit_account_id=funding, credit_account_id=wallet,
            amount_minor=amount, currency_code="USD", pending=pending,
            metadata={"owner": f"{tag}-secret"},
        )  # fmt: skip
        if pending:
            request.hold_timeout.seconds = 86_400
        return request

    delayed = pay(f"{tag}-delayed", 1_000)
    delayed.availability_delay.seconds = 86_400
    moves = [
        pay(f"{tag}-pay", 10_000),
        pay(f"{tag}-hold", 500, True),
        pay(f"{tag}-hold-2", 300, True),
        delayed,
    ]
    paid, hold, hold_2, _ = [
        (await victim.movements.CreateTransfer(request, metadata=md)).transfer for request in moves
    ]
    [part] = (
        await victim.funds.ListScheduledFunds(
            fpb.ListScheduledFundsRequest(account_id=wallet), metadata=md
        )
    ).funds
    watch = fpb.CreateBalanceMonitorRequest(
        request_id=f"{tag}-monitor", account_id=wallet, field=funds_pb2.BalanceMonitor.FIELD_POSTED,
        operator=funds_pb2.BalanceMonitor.OPERATOR_ABOVE, threshold_minor=1_000_000,
    )  # fmt: skip
    monitor = (await victim.funds.CreateBalanceMonitor(watch, metadata=md)).monitor
    batch = mpb.CreateTransfersRequest(
        request_id=f"{tag}-batch",
        transfers=[
            mpb.CreateTransfersRequest.Item(
                debit_account_id=wallet, credit_account_id=funding, amount_minor=amount,
                currency_code="USD",
            )
            for amount in (5, 6)
        ],
    )  # fmt: skip
    batched = (await victim.movements.CreateTransfers(batch, metadata=md)).transfers
    reversal = mpb.ReverseTransferRequest(
        request_id=f"{tag}-reverse", transfer_id=paid.id, amount_minor=7
    )
    await victim.movements.ReverseTransfer(reversal, metadata=md)
    register = ppb.CreateExternalAccountRequest(
        request_id=f"{tag}-xacct", rail="simulated", currency_code="USD", routing_reference=ROUTING,
        account_number="000123456789", holder_name="B Holder", metadata={"owner": f"{tag}-secret"},
    )  # fmt: skip
    external = (await victim.payouts.CreateExternalAccount(register, metadata=md)).external_account
    pay_out = ppb.CreatePayoutRequest(
        request_id=f"{tag}-payout", account_id=wallet, external_account_id=external.id,
        amount_minor=B_PAYOUT_MINOR, currency_code="USD", method=STANDARD,
        metadata={"owner": f"{tag}-secret"},
    )  # fmt: skip
    payout = (await victim.payouts.CreatePayout(pay_out, metadata=md)).payout
    assert payout.state == payout_pb2.PAYOUT_STATE_PENDING, payout
    bank.send_credit(victim_tenant, wallet, B_INBOUND_MINOR, "USD", f"{tag}-wire-1", "b's wire")
    inbound = await _booked(victim, wallet)
    requests: list[Message] = [*opened, *moves, batch, reversal, watch, register, pay_out]
    return Money(
        funding, wallet, empty, paid, hold, hold_2, batched[0].batch_id, part, monitor,
        register, external, payout, inbound, requests,
    )  # fmt: skip


def names_of(
    money: Money,
    tag: str,
    *,
    holder: str,
    asset: str,
    holder_record: str,
    holder_external_id: str,
) -> Names:
    """What the probes name of a victim's money (victim_money, made with `tag`)."""
    return Names(
        account=money.wallet, empty_account=money.empty, transfer=money.paid.id,
        hold=money.hold.id, hold_to_void=money.hold_2.id, batch=money.batch_id,
        trace=money.paid.trace_id or "0" * 32, external_id=f"{tag}-wallet", holder=holder,
        metadata_value=f"{tag}-secret", account_request_id=f"{tag}-open-empty",
        transfer_request_id=f"{tag}-pay", hold_request_id=f"{tag}-hold",
        funds=money.part.id, monitor=money.monitor.id, external_account=money.external.id,
        external_request_id=f"{tag}-xacct", bank_account_number=money.register.account_number,
        fingerprint=money.external.fingerprint, payout=money.payout.id,
        payout_hold=money.payout.hold_transfer_id, payout_request_id=f"{tag}-payout",
        inbound=money.inbound.id, inbound_reference=f"{tag}-wire-1", asset=asset,
        asset_request_id=f"{tag}-asset", holder_record=holder_record,
        holder_external_id=holder_external_id, holder_request_id=f"{tag}-holder",
    )  # fmt: skip


async def victim_ledger(
    victim: Client, attacker: Client, bank: SimulatedBank, victim_tenant: str
) -> tuple[Names, Mine, list[Message]]:
    """B's accounts, transfers, holds, batch, reversal, external account, PENDING payout
    and inbound credit; A's two accounts, external account and PENDING payout. Returns
    B's names, A's accounts, and B's mutations (which B replays at the end)."""
    md = victim.md
    money = await victim_money(victim, bank, victim_tenant)
    asset = aspb.RegisterAssetRequest(
        request_id="b-asset", currency_code="BPOINTS1", exponent=2, name="B's points"
    )
    await victim.assets.RegisterAsset(asset, metadata=md)
    in_asset = apb.CreateAccountRequest(
        request_id="b-open-points", currency_code="BPOINTS1",
        normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
    )  # fmt: skip
    await victim.accounts.CreateAccount(in_asset, metadata=md)
    seller = hpb.CreateHolderRequest(
        request_id="b-holder", external_id="b-seller", name="B's seller",
        metadata={"owner": "b-secret"},
    )  # fmt: skip
    holder = (await victim.holders.CreateHolder(seller, metadata=md)).holder
    for_holder = apb.CreateAccountRequest(
        request_id="b-open-for-holder", holder_id=holder.holder_id, currency_code="USD",
        normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
    )  # fmt: skip
    await victim.accounts.CreateAccount(for_holder, metadata=md)
    names = names_of(
        money, "b", holder="b-holder", asset="BPOINTS1", holder_record=holder.holder_id,
        holder_external_id="b-seller",
    )  # fmt: skip
    a_wallet = await attacker.open("a-wallet")
    a_funding = await attacker.open(
        "a-funding",
        normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
        overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
    )
    await attacker.pay("a-fund-wallet", a_funding.id, a_wallet.id, 1_000)
    a_register = ppb.CreateExternalAccountRequest(
        request_id="a-xacct", rail="simulated", currency_code="USD", routing_reference=ROUTING,
        account_number="555566667777",
    )  # fmt: skip
    a_external = await attacker.payouts.CreateExternalAccount(a_register, metadata=attacker.md)
    a_payout = ppb.CreatePayoutRequest(
        request_id="a-payout", account_id=a_wallet.id,
        external_account_id=a_external.external_account.id, amount_minor=100,
        currency_code="USD", method=STANDARD,
    )  # fmt: skip
    await attacker.payouts.CreatePayout(a_payout, metadata=attacker.md)
    mine = Mine(a_wallet.id, a_funding.id, a_external.external_account.id)
    mutations = [*money.requests, asset, in_asset, seller, for_holder]
    return names, mine, mutations


async def _booked(victim: Client, account: str) -> payout_pb2.InboundTransfer:
    """The inbound transfer the payout worker books for the bank's credit to `account`."""
    listing = ppb.ListInboundTransfersRequest(account_id=account)
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        listed = await victim.payouts.ListInboundTransfers(listing, metadata=victim.md)
        if listed.inbound_transfers:
            [inbound] = listed.inbound_transfers
            return inbound
        assert asyncio.get_running_loop().time() < deadline, "the inbound credit was not booked"
        await asyncio.sleep(0.05)


async def check_tenant_isolation(
    channel: grpc.aio.Channel,
    attacker: Client,
    victim: Client,
    dsn: str,
    bank: SimulatedBank,
    victim_tenant: str,
) -> None:
    """The whole check, for any server: `attacker` and `victim` are two tenants' clients
    on `channel` to it, `dsn` its database (read with a role that sees every tenant),
    `bank` the bank side of its simulated rail and `victim_tenant` the victim's tenant id.
    The server must keep STANDARD payouts PENDING while this runs (a long
    MM_PAYOUT_STANDARD_DELAY_S), or its worker would change B's payout meanwhile."""
    names, mine, victim_requests = await victim_ledger(victim, attacker, bank, victim_tenant)
    connection = await asyncpg.connect(dsn)
    try:
        assert await tenant_id_of(connection, names.account) == victim_tenant
        before = await tenant_rows(connection, victim_tenant)
        covered = set()
        differences = []
        answers: dict[str, Answer] = {}
        decoy = made_up(names)  # one set for all probes: a reused id must behave alike
        for label, rpc_name, build in probes():
            rpc = RPCS[rpc_name]
            covered.add(rpc_name)
            real_request, decoy_request = build(names, mine), build(decoy, mine)
            real = await ask(rpc, channel, real_request, attacker.md)
            fake = await ask(rpc, channel, decoy_request, attacker.md)
            answers[label] = real
            seen = normalized(real, names, real_request)
            expected = normalized(fake, decoy, decoy_request)
            if seen != expected:
                differences.append(
                    f"{label} ({rpc_name}):\n  B's ids: {seen}\n  made up: {expected}"
                )
            leaked = _victim_data_in(real, names, before, real_request)
            if leaked:
                differences.append(f"{label} ({rpc_name}): the answer shows B's {leaked}")
        # For A, B's payout and credit are unknown to its ledger, never matched.
        reconciled = answers["reconcile B's payout and credit"].response
        assert isinstance(reconciled, ppb.ReconcileResponse), answers
        missing_in_ledger = payout_pb2.RECONCILIATION_BREAK_KIND_MISSING_IN_LEDGER
        assert reconciled.matched == 0, reconciled
        assert sorted((b.kind, b.reference) for b in reconciled.breaks) == sorted(
            [(missing_in_ledger, names.payout), (missing_in_ledger, names.inbound_reference)]
        ), reconciled
        # A reuses B's request ids for requests of its own: fresh requests for A, not a
        # replay of B's outcome and not REQUEST_ID_REUSED. (Only b-open-funding: the probes
        # above used b-open-empty for A's own recorded rejections, and b-wallet, the
        # external id of b-open-wallet, for an account of A's.)
        for request in victim_requests[:1]:
            assert isinstance(request, apb.CreateAccountRequest)
            own = await attacker.accounts.CreateAccount(request, metadata=attacker.md)
            if own.account.id in (names.account, names.empty_account) or any(
                own.account.id in row for row in before["accounts"]
            ):
                differences.append(f"A's CreateAccount {request.request_id} replayed B's")
        reuse = mpb.CreateTransferRequest(
            request_id="b-hold-2",  # B's, and not used by A's probes
            debit_account_id=mine.funding,
            credit_account_id=mine.wallet, amount_minor=10_000, currency_code="USD",
        )  # fmt: skip
        moved = await attacker.movements.CreateTransfer(reuse, metadata=attacker.md)
        if moved.transfer.id == names.transfer:
            differences.append("A's CreateTransfer b-hold-2 replayed B's transfer")
        after = await tenant_rows(connection, victim_tenant)
    finally:
        await connection.close()
    missing = set(RPCS) - covered
    assert not missing, f"RPCs the isolation test does not probe: {missing}"
    assert not differences, "\n".join(differences)
    for table in before:
        assert after[table] == before[table], f"A changed B's {table}"
    # B still sees its payout PENDING (not canceled by A), its destination ACTIVE (not
    # disabled by A) and its credit RECEIVED.
    md = victim.md
    got = await victim.payouts.GetPayout(ppb.GetPayoutRequest(id=names.payout), metadata=md)
    assert got.payout.state == payout_pb2.PAYOUT_STATE_PENDING, got
    external = await victim.payouts.GetExternalAccount(
        ppb.GetExternalAccountRequest(id=names.external_account), metadata=md
    )
    assert external.external_account.state == payout_pb2.EXTERNAL_ACCOUNT_STATE_ACTIVE, external
    inbound = await victim.payouts.GetInboundTransfer(
        ppb.GetInboundTransferRequest(id=names.inbound), metadata=md
    )
    assert inbound.inbound_transfer.state == payout_pb2.INBOUND_TRANSFER_STATE_RECEIVED, inbound
    # B's own requests still replay B's outcomes, untouched by A's use of the same ids.
    for request in victim_requests:
        rpc = RPCS[request.DESCRIPTOR.name.removesuffix("Request")]
        answer = await ask(rpc, channel, request, victim.md)
        assert answer.code == Code.OK, (request, answer)


def _victim_data_in(answer: Answer, names: Names, rows: dict[str, list[str]], sent: Message) -> str:
    """Which of B's identifiers an answer shows, other than those the attacker sent (a
    reconciliation break names the reference of the report's line it is about)."""
    if answer.response is None:
        return ""
    text, echoed = str(answer.response), str(sent)
    for value in (
        names.account, names.empty_account, names.transfer, names.hold, names.batch,
        names.funds, names.monitor, names.external_account, names.fingerprint, names.payout,
        names.payout_hold, names.inbound, names.inbound_reference, names.asset,
        names.holder_record, names.holder_external_id,
    ):  # fmt: skip
        if value in text and value not in echoed:
            return value
    tables = ("accounts", "transfers", "external_accounts", "payouts", "inbound_transfers")
    for row in (row for table in tables for row in rows[table]):
        row_id = row.split(",")[1]
        if row_id in text and row_id not in echoed:
            return row_id
    return ""


async def test_a_tenant_cannot_tell_another_tenants_ids_from_made_up_ones(
    dsn: str, tmp_path: Path
) -> None:
    # test_row_level_security_alone_keeps_tenants_apart runs this same body against a
    # server whose application-level tenant filter is disabled.
    rail = tmp_path / "rail"
    api = await start_api(dsn, MM_RAIL_DIR=str(rail), MM_PAYOUT_STANDARD_DELAY_S=STANDARD_DELAY_S)
    try:
        bank = SimulatedBank(rail)
        await check_tenant_isolation(api.channel, api.a, api.b, api.dsn, bank, api.tenant_b)
    finally:
        await stop_api(api)
    await assert_ledger_consistent(dsn)


# Every `tenant_id = $1` predicate of the ledger's queries, as written in storage/sql.
_TENANT_FILTER = re.compile(r"\b(?:\w+\.)?tenant_id = \$1\b")


def without_tenant_filter(sql: str) -> str:
    """The query with its tenant predicates made always true (inserts keep their $1;
    the predicate keeps $1 typed for queries that use it nowhere else)."""
    return _TENANT_FILTER.sub("$1::text IS NOT NULL", sql)


async def test_row_level_security_alone_keeps_tenants_apart(
    dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The test build: every query loses its tenant filter, so only the database's
    # row-level security stands between tenant A and tenant B's money.
    stripped = {name: without_tenant_filter(sql) for name, sql in queries.all_queries().items()}
    changed = [name for name, sql in stripped.items() if sql != queries.all_queries()[name]]
    assert len(changed) >= 12, f"the filter was not removed: only {changed}"
    assert {"lock_batch", "write_batch", "get_account", "get_transfer"} <= set(changed)
    monkeypatch.setattr(queries, "all_queries", lambda: stripped)
    rail = tmp_path / "rail"
    api = await start_api(dsn, MM_RAIL_DIR=str(rail), MM_PAYOUT_STANDARD_DELAY_S=STANDARD_DELAY_S)
    try:
        bank = SimulatedBank(rail)
        await check_tenant_isolation(api.channel, api.a, api.b, api.dsn, bank, api.tenant_b)
    finally:
        await stop_api(api)
    await assert_ledger_consistent(dsn)


async def test_a_tenant_reaches_nothing_of_another_through_admin_service(dsn: str) -> None:
    # AdminService is no tenant service (hostile.SERVICE_FILES leaves it out): with a
    # tenant's token every call is refused before its request is read, whether it names
    # B's tenant and token or made-up ids, and none of B's tokens changes.
    digest = hashlib.sha256(secrets.token_bytes(32)).hexdigest()  # an admin nobody is
    api = await start_api(dsn, MM_ADMIN_TOKEN_SHA256=digest)
    connection = await asyncpg.connect(dsn)
    try:
        stub, md = adgrpc.AdminServiceStub(api.channel), api.a.md
        before = await connection.fetch("SELECT * FROM api_tokens ORDER BY token_id")
        b_token = next(r["token_id"] for r in before if r["tenant_id"] == api.tenant_b)
        made_up = (ids.new_id(ids.TENANT), ids.new_id(ids.TOKEN))
        for tenant, token in ((api.tenant_b, b_token), made_up):
            requests = [
                (stub.CreateTenant, adpb.CreateTenantRequest(request_id="a", name="b")),
                (stub.ListTenants, adpb.ListTenantsRequest()),
                (stub.CreateToken, adpb.CreateTokenRequest(request_id="a", tenant_id=tenant)),
                (stub.ListTokens, adpb.ListTokensRequest(tenant_id=tenant)),
                (stub.RevokeToken, adpb.RevokeTokenRequest(request_id="a", token_id=token)),
            ]
            service = adpb.DESCRIPTOR.services_by_name["AdminService"]
            assert len(requests) == len(service.methods)  # every RPC probed
            for method, request in requests:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await method(request, metadata=md)  # type: ignore[operator]
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, request
        assert await connection.fetch("SELECT * FROM api_tokens ORDER BY token_id") == before
    finally:
        await connection.close()
        await stop_api(api)
