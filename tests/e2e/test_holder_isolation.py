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

import itertools
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
from google.protobuf.message import Message

from moneymovement.rails.simulated import SimulatedBank
from moneymovement.service.tenants import TenantDirectory
from moneymovement.v1 import account_pb2
from moneymovement.v1 import holder_service_pb2 as hpb
from tests.e2e.conftest import Client, start_api, stop_api
from tests.e2e.hostile import Answer, Code, ask
from tests.e2e.test_tenant_isolation import (
    RPCS,
    STANDARD_DELAY_S,
    Mine,
    Names,
    _victim_data_in,
    made_up,
    names_of,
    normalized,
    probes,
    victim_money,
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
    """The tenant isolation test's victim money (victim_money), made by the platform,
    every account with holder_id `owner` (holder B's id, or a free-form reference for
    the platform's own); the holder record the names point at is `holder_id`."""
    money = await victim_money(
        platform, bank, tenant_id, tag=tag, wallet_holder=owner, holder=owner
    )
    holder = await platform.holders.GetHolder(
        hpb.GetHolderRequest(holder_id=holder_id), metadata=platform.md
    )
    names = names_of(
        money, tag, holder=owner, asset=UNREGISTERED_ASSET, holder_record=holder_id,
        holder_external_id=holder.holder.external_id,
    )  # fmt: skip
    accounts = (money.funding, money.wallet, money.empty)
    return Victim(names, accounts, holder_id, money.requests)


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
    rows: dict[str, list[str]],
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
        # Every id of the victim's rows too (its funding account, reversals, batch items).
        leaked = _victim_data_in(real, names, rows, real_request)
        if leaked:
            differences.append(f"{who}, {label} ({rpc_name}): the answer shows {leaked}")
    return differences, covered


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
        assert len(before["B"]["transfers"]) >= 8, before["B"]["transfers"]  # ids to look for
        differences: list[str] = []
        covered: set[str] = set()
        for who, md in as_a.items():
            for whose, victim in (("B", b), ("the platform", p)):
                found, probed = await probe_as(
                    api.channel, md, mine, victim, f"{who} on {whose}", before[whose]
                )
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
