"""A call acting for holder A (a token scoped to A, or the platform's token with
`mm-holder: A`) sends every RPC naming holder B's accounts, transfers, holds, batch,
trace, scheduled funds, monitor, payout, inbound transfer and holder, and then the same
with the platform's own accounts and transfers in their place. Every answer is the
answer for made-up ids of the same format (same code, reason, message, ErrorInfo
metadata and trailers once the ids are made anonymous), no answer shows any of them,
and none of B's or the platform's rows changes.

The probes are the tenant isolation test's (test_tenant_isolation.probes), run inside
one tenant. Where holder scoping is enforced: in the application, not in the database
(docs/platforms.md, "Where it is enforced"), so there is no variant with query filters
removed: the database's row-level security holds tenants apart, and this test holds
holders apart.

Three probes do not apply inside one tenant, by design (docs/platforms.md): an account's
external id is unique in the tenant, so A opening an account with B's external id is
told it is taken (without anything of B's account); and the tenant's assets are the
platform's reference data every holder uses (the probes then name a code nobody
registered, answered alike).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
from google.protobuf.message import Message

from moneymovement.rails.simulated import SimulatedBank
from moneymovement.service.tenants import TenantDirectory
from moneymovement.v1 import account_pb2, funds_pb2, payout_pb2
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import funds_service_pb2 as fpb
from moneymovement.v1 import holder_service_pb2 as hpb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from moneymovement.v1 import payout_service_pb2 as ppb
from tests.e2e.conftest import Client, start_api, stop_api
from tests.e2e.hostile import Answer, Code, ask
from tests.e2e.test_tenant_isolation import (
    ROUTING,
    RPCS,
    STANDARD,
    STANDARD_DELAY_S,
    Mine,
    Names,
    _victim_data_in,
    made_up,
    normalized,
    probes,
)
from tests.ledger_checks import assert_ledger_consistent

# Not applicable inside one tenant (the module's docstring says why).
NOT_APPLICABLE = {"create with B's external id"}
# A code no one registers: the asset probes then ask alike for B's "asset" and a made-up one.
UNREGISTERED_ASSET = "NOASSET1"
_serial = itertools.count()


@dataclass(frozen=True)
class Victim:
    """What the probes name, and the rows that must not change."""

    names: Names
    account_ids: tuple[str, ...]
    holder_id: str  # the holder record the names point at
    requests: list[Message]  # the platform's requests that made it: replayed at the end


async def make_victim(
    platform: Client, bank: SimulatedBank, tenant_id: str, owner: str, holder_id: str, tag: str
) -> Victim:
    """Accounts whose holder_id is `owner` (holder B's id, or a free-form reference for
    the platform's own) with money, holds, a batch, a reversal, a scheduled part, a
    monitor, a PENDING payout and an inbound credit, all made by the platform."""
    md = platform.md
    opened = [
        apb.CreateAccountRequest(
            request_id=f"{tag}-open-funding", currency_code="USD", holder_id=owner,
            normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
            overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
        ),
        apb.CreateAccountRequest(
            request_id=f"{tag}-open-wallet", currency_code="USD", external_id=f"{tag}-wallet",
            holder_id=owner, metadata={"owner": f"{tag}-secret"},
            normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
            funds_policy=funds_pb2.FundsPolicy(early_release_allowed=True),
        ),
        apb.CreateAccountRequest(
            request_id=f"{tag}-open-empty", currency_code="USD", holder_id=owner,
            normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
        ),
    ]  # fmt: skip
    funding, wallet, empty = [
        (await platform.accounts.CreateAccount(r, metadata=md)).account.id for r in opened
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
        pay(f"{tag}-pay", 10_000), pay(f"{tag}-hold", 500, True),
        pay(f"{tag}-hold-2", 300, True), delayed,
    ]  # fmt: skip
    paid, hold, hold_2, _ = [
        (await platform.movements.CreateTransfer(r, metadata=md)).transfer for r in moves
    ]
    [part] = (
        await platform.funds.ListScheduledFunds(
            fpb.ListScheduledFundsRequest(account_id=wallet), metadata=md
        )
    ).funds
    watch = fpb.CreateBalanceMonitorRequest(
        request_id=f"{tag}-monitor", account_id=wallet,
        field=funds_pb2.BalanceMonitor.FIELD_POSTED,
        operator=funds_pb2.BalanceMonitor.OPERATOR_ABOVE, threshold_minor=1_000_000,
    )  # fmt: skip
    monitor = (await platform.funds.CreateBalanceMonitor(watch, metadata=md)).monitor
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
    batched = (await platform.movements.CreateTransfers(batch, metadata=md)).transfers
    reversal = mpb.ReverseTransferRequest(
        request_id=f"{tag}-reverse", transfer_id=paid.id, amount_minor=7
    )
    await platform.movements.ReverseTransfer(reversal, metadata=md)
    register = ppb.CreateExternalAccountRequest(
        request_id=f"{tag}-xacct", rail="simulated", currency_code="USD",
        routing_reference=ROUTING, account_number=f"0001234567{next(_serial):02d}",
        holder_name="B Holder",
    )  # fmt: skip
    registered = await platform.payouts.CreateExternalAccount(register, metadata=md)
    external = registered.external_account
    pay_out = ppb.CreatePayoutRequest(
        request_id=f"{tag}-payout", account_id=wallet, external_account_id=external.id,
        amount_minor=250, currency_code="USD", method=STANDARD,
        metadata={"owner": f"{tag}-secret"},
    )  # fmt: skip
    payout = (await platform.payouts.CreatePayout(pay_out, metadata=md)).payout
    assert payout.state == payout_pb2.PAYOUT_STATE_PENDING, payout
    bank.send_credit(tenant_id, wallet, 400, "USD", f"{tag}-wire-1", "a wire")
    inbound = await _booked(platform, wallet)
    holder = await platform.holders.GetHolder(
        hpb.GetHolderRequest(holder_id=holder_id), metadata=md
    )
    names = Names(
        account=wallet, empty_account=empty, transfer=paid.id, hold=hold.id,
        hold_to_void=hold_2.id, batch=batched[0].batch_id, trace=paid.trace_id or "0" * 32,
        external_id=f"{tag}-wallet", holder=owner, metadata_value=f"{tag}-secret",
        account_request_id=f"{tag}-open-empty", transfer_request_id=f"{tag}-pay",
        hold_request_id=f"{tag}-hold", funds=part.id, monitor=monitor.id,
        external_account=external.id, external_request_id=f"{tag}-xacct",
        bank_account_number=register.account_number, fingerprint=external.fingerprint,
        payout=payout.id, payout_hold=payout.hold_transfer_id,
        payout_request_id=f"{tag}-payout", inbound=inbound.id,
        inbound_reference=f"{tag}-wire-1", asset=UNREGISTERED_ASSET,
        asset_request_id=f"{tag}-asset", holder_record=holder_id,
        holder_external_id=holder.holder.external_id, holder_request_id=f"{tag}-holder",
    )  # fmt: skip
    requests = [*opened, *moves, watch, batch, reversal, pay_out]
    return Victim(names, (funding, wallet, empty), holder_id, requests)


async def _booked(platform: Client, account: str) -> payout_pb2.InboundTransfer:
    """The inbound transfer the payout worker books for the bank's credit to `account`."""
    listing = ppb.ListInboundTransfersRequest(account_id=account)
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        listed = await platform.payouts.ListInboundTransfers(listing, metadata=platform.md)
        if listed.inbound_transfers:
            [inbound] = listed.inbound_transfers
            return inbound
        assert asyncio.get_running_loop().time() < deadline, "the inbound credit was not booked"
        await asyncio.sleep(0.05)


async def victim_rows(
    connection: asyncpg.Connection, tenant_id: str, victim: Victim
) -> dict[str, list[str]]:
    """Every row of the victim's: its accounts and what touches them, its holder, and
    the platform's recorded outcomes (a call acting for a holder records its own under
    "<holder id>/<request id>")."""
    accounts = list(victim.account_ids)
    queries = {
        "accounts": "SELECT t::text FROM accounts t WHERE tenant_id = $1 "
        "AND account_id = ANY($2) ORDER BY account_id",
        "transfers": "SELECT t::text FROM transfers t WHERE tenant_id = $1 "
        "AND (debit_account_id = ANY($2) OR credit_account_id = ANY($2)) ORDER BY transfer_id",
        "entries": "SELECT t::text FROM entries t WHERE tenant_id = $1 "
        "AND account_id = ANY($2) ORDER BY account_id, account_version",
        "scheduled_funds": "SELECT t::text FROM scheduled_funds t WHERE tenant_id = $1 "
        "AND account_id = ANY($2) ORDER BY funds_id",
        "balance_monitors": "SELECT t::text FROM balance_monitors t WHERE tenant_id = $1 "
        "AND account_id = ANY($2) ORDER BY monitor_id",
        "account_policy_changes": "SELECT t::text FROM account_policy_changes t "
        "WHERE tenant_id = $1 AND account_id = ANY($2) ORDER BY account_id, version",
        "payouts": "SELECT t::text FROM payouts t WHERE tenant_id = $1 "
        "AND account_id = ANY($2) ORDER BY payout_id",
        "inbound_transfers": "SELECT t::text FROM inbound_transfers t WHERE tenant_id = $1 "
        "AND account_id = ANY($2) ORDER BY inbound_id",
        "external_accounts": "SELECT t::text FROM external_accounts t WHERE tenant_id = $1 "
        "AND $2::text[] IS NOT NULL ORDER BY external_account_id",
        "holders": "SELECT t::text FROM holders t WHERE tenant_id = $1 "
        "AND $2::text[] IS NOT NULL ORDER BY holder_id",
        "request_outcomes": "SELECT t::text FROM request_outcomes t WHERE tenant_id = $1 "
        "AND $2::text[] IS NOT NULL AND request_id NOT LIKE 'hld\\_%/%' ORDER BY request_id",
    }
    return {
        table: [r[0] for r in await connection.fetch(sql, tenant_id, accounts)]
        for table, sql in queries.items()
    }


async def probe_as(
    channel: grpc.aio.Channel,
    md: tuple[tuple[str, str], ...],
    mine: Mine,
    victim: Victim,
    who: str,
) -> tuple[list[str], set[str]]:
    """Every probe with the victim's names and with made-up ones, as `md`: the
    differences found, and the RPCs probed."""
    names, decoy = victim.names, made_up(victim.names)
    differences, covered = [], set()
    for label, rpc_name, build in probes():
        if label in NOT_APPLICABLE:
            continue
        rpc = RPCS[rpc_name]
        covered.add(rpc_name)
        real_request, decoy_request = build(names, mine), build(decoy, mine)
        real: Answer = await ask(rpc, channel, real_request, md)
        fake: Answer = await ask(rpc, channel, decoy_request, md)
        seen = normalized(real, names, real_request)
        expected = normalized(fake, decoy, decoy_request)
        if seen != expected:
            differences.append(
                f"{who}, {label} ({rpc_name}):\n  theirs: {seen}\n  made up: {expected}"
            )
        leaked = _victim_data_in(real, names, {t: [] for t in _ROW_TABLES}, real_request)
        if leaked:
            differences.append(f"{who}, {label} ({rpc_name}): the answer shows {leaked}")
    return differences, covered


_ROW_TABLES = ("accounts", "transfers", "external_accounts", "payouts", "inbound_transfers")


async def test_a_holder_cannot_tell_another_holders_or_the_platforms_ids_from_made_up_ones(
    dsn: str, tmp_path: Path
) -> None:
    rail = tmp_path / "rail"
    api = await start_api(dsn, MM_RAIL_DIR=str(rail), MM_PAYOUT_STANDARD_DELAY_S=STANDARD_DELAY_S)
    connection = await asyncpg.connect(dsn)
    try:
        bank, platform, tenant = SimulatedBank(rail), api.a, api.tenant_a
        holder_ids = []
        for external_id in ("seller-a", "seller-b", "seller-c"):
            made = await platform.holders.CreateHolder(
                hpb.CreateHolderRequest(request_id=f"make-{external_id}", external_id=external_id),
                metadata=platform.md,
            )
            holder_ids.append(made.holder.holder_id)
        holder_a, holder_b, holder_c = holder_ids
        # B's own, and the platform's own (free-form holder_id, no holder; the holder
        # record named is C, which A may not see either).
        b = await make_victim(platform, bank, tenant, holder_b, holder_b, "b")
        p = await make_victim(platform, bank, tenant, "p-owner", holder_c, "p")

        # A's accounts, with money: the platform opens and funds them.
        funding = await platform.open(
            "a-platform-funding",
            normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
            overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
        )
        a_wallet = await platform.open("a-wallet", holder_id=holder_a)
        a_spend = await platform.open("a-spend", holder_id=holder_a)
        for account in (a_wallet, a_spend):
            await platform.pay(f"fund-{account.id}", funding.id, account.id, 5_000)
        mine = Mine(a_wallet.id, a_spend.id, b.names.external_account)

        scoped = await TenantDirectory(api.database).create_token(tenant, holder_id=holder_a)
        as_a = {
            "A's scoped token": (("authorization", f"Bearer {scoped.token}"),),
            "the platform acting for A": (*platform.md, ("mm-holder", holder_a)),
        }
        before = {
            "B": await victim_rows(connection, tenant, b),
            "the platform": await victim_rows(connection, tenant, p),
        }
        differences: list[str] = []
        covered: set[str] = set()
        for who, md in as_a.items():
            for whose, victim in (("B", b), ("the platform", p)):
                found, probed = await probe_as(api.channel, md, mine, victim, f"{who} on {whose}")
                differences += found
                covered |= probed
        after = {
            "B": await victim_rows(connection, tenant, b),
            "the platform": await victim_rows(connection, tenant, p),
        }
    finally:
        await connection.close()
    try:
        assert not (set(RPCS) - covered), f"RPCs not probed: {set(RPCS) - covered}"
        assert not differences, "\n".join(differences)
        for whose in before:
            for table in before[whose]:
                assert after[whose][table] == before[whose][table], f"{whose}'s {table} changed"
        # The platform's requests still replay as they were, untouched by A's use of the
        # same request ids (A's are its own).
        for victim in (b, p):
            for request in victim.requests:
                rpc = RPCS[request.DESCRIPTOR.name.removesuffix("Request")]
                answer = await ask(rpc, api.channel, request, platform.md)
                assert answer.code == Code.OK, (request, answer)
    finally:
        await stop_api(api)
    await assert_ledger_consistent(dsn)
