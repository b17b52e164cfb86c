"""The chaos run's platform flows: a holder's seller accounts with a negative-balance
reserve, and their audit.

Per currency the holder has a seller account naming a platform reserve account (funded
from the issuer at setup, so the totals count it) and a second account of its own. The
clients (tests/chaos/clients.py) charge customers to the seller, move the seller's money
out (to a customer as the platform; to and from the holder's second account acting for
the holder, `mm-holder`, so its request ids are recorded as `<holder id>/<request id>`),
and refund charges with ReverseTransfer and batch `reverse_transfer` operations, which
the reserve covers when the seller has spent the charge; later credits to the seller
(charges, moves back) repay it.

The audit, once the ledger has settled: per seller, the debt GetAccount shows equals its
covers less its recoveries as ListTransfers shows them (metadata
`negative_balance_reserve`), and is not negative; each acknowledged refund has at most
one cover, linked by `reversal_transfer_id` and written by the refund's own request; every
cover and recovery belongs to a request whose own transfer was written (none of a
rejected or unapplied request).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc

from moneymovement.v1 import (
    account_pb2,
    account_service_pb2_grpc,
    holder_service_pb2_grpc,
    money_movement_service_pb2_grpc,
)
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import holder_service_pb2 as hpb
from moneymovement.v1 import money_movement_service_pb2 as mpb

# What the issuer pays each reserve at setup: enough for every cover of a run.
RESERVE_FUNDED = 30_000
METADATA_KEY = "negative_balance_reserve"
# The clients' operations on the sellers, and the operation each is checked as (the
# harness's effects, the event audit): the same requests, with covers and recoveries
# besides.
SELLER_OPS = {
    "charge": "transfer",
    "seller_move": "transfer",
    "refund": "reverse",
    "refund_batch": "batch",
}


@dataclass(frozen=True)
class SellerAccounts:
    """The holder and, per currency, its seller account (naming the reserve), its second
    account (no reserve) and the platform's reserve account."""

    holder_id: str
    sellers: dict[str, str]
    savings: dict[str, str]
    reserves: dict[str, str]

    def of(self, currency: str) -> list[str]:
        """The currency's accounts of the flows: they hold part of what was issued."""
        return [self.sellers[currency], self.savings[currency], self.reserves[currency]]


async def open_seller_accounts(
    channel: grpc.aio.Channel, md: tuple[tuple[str, str], ...], funding: dict[str, str]
) -> tuple[SellerAccounts, dict[str, int]]:
    """The holder, its accounts and the funded reserves (`funding`: currency -> the
    issuer's account); returns them and what each currency's reserve was issued."""
    accounts = account_service_pb2_grpc.AccountServiceStub(channel)
    moves = money_movement_service_pb2_grpc.MoneyMovementServiceStub(channel)
    holders = holder_service_pb2_grpc.HolderServiceStub(channel)
    holder = await holders.CreateHolder(
        hpb.CreateHolderRequest(request_id="setup-holder", external_id="chaos-seller"),
        metadata=md,
    )
    holder_id = holder.holder.holder_id
    sellers, savings, reserves, issued = {}, {}, {}, {}
    for currency, funding_id in funding.items():

        async def open_account(key: str, **fields: Any) -> str:
            created = await accounts.CreateAccount(
                apb.CreateAccountRequest(
                    request_id=f"setup-{key}-{currency}", currency_code=currency,  # noqa: B023
                    normal_balance=account_pb2.NORMAL_BALANCE_CREDIT, name=key, **fields,
                ),
                metadata=md,
            )  # fmt: skip
            return str(created.account.id)

        reserves[currency] = await open_account("reserve")
        await moves.CreateTransfer(
            mpb.CreateTransferRequest(
                request_id=f"setup-issue-reserve-{currency}", debit_account_id=funding_id,
                credit_account_id=reserves[currency], amount_minor=RESERVE_FUNDED,
                currency_code=currency,
            ),
            metadata=md,
        )  # fmt: skip
        issued[currency] = RESERVE_FUNDED
        sellers[currency] = await open_account(
            "seller", holder_id=holder_id,
            negative_balance_reserve_account_id=reserves[currency],
        )  # fmt: skip
        savings[currency] = await open_account("seller-savings", holder_id=holder_id)
    return SellerAccounts(holder_id, sellers, savings, reserves), issued


async def audit_reserve(
    dsn: str,
    target: str,
    token: str,
    platform: SellerAccounts,
    records: list[dict[str, Any]],
    fail: Callable[[str], None],
) -> list[str]:
    """The checks of the module docstring; returns the summary line, hands each failure
    to `fail`."""
    md = (("authorization", f"Bearer {token}"),)
    covers = recoveries = debts = covered_total = recovered_total = 0
    async with grpc.aio.insecure_channel(target) as channel:
        accounts = account_service_pb2_grpc.AccountServiceStub(channel)
        moves = money_movement_service_pb2_grpc.MoneyMovementServiceStub(channel)
        for currency, seller in sorted(platform.sellers.items()):
            debt = (
                await accounts.GetAccount(apb.GetAccountRequest(account_id=seller), metadata=md)
            ).account.reserve_debt_minor
            moved: Counter[str] = Counter()
            for movement in ("COVER", "RECOVERY"):
                async for t in _transfers(moves, md, seller, {METADATA_KEY: movement}):
                    into = t.credit_account_id == seller
                    if into != (movement == "COVER"):
                        fail(f"reserve: {movement} {t.id} moves the wrong way for {seller}")
                    moved[movement] += t.amount_minor
                    moved[movement + "s"] += 1
            if debt < 0 or debt != moved["COVER"] - moved["RECOVERY"]:
                fail(
                    f"reserve: {currency} seller {seller} owes {debt}, covers "
                    f"{moved['COVER']} - recoveries {moved['RECOVERY']} = "
                    f"{moved['COVER'] - moved['RECOVERY']}"
                )
            debts += debt
            covered_total += moved["COVER"]
            recovered_total += moved["RECOVERY"]
            covers += moved["COVERs"]
            recoveries += moved["RECOVERYs"]
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT transfer_id, request_id, reserve_movement, debit_account_id, "
            "metadata ->> 'reversal_transfer_id' AS reversal FROM transfers "
            "WHERE reserve_movement IS NOT NULL"
        )
        written = {
            r["request_id"]
            for r in await connection.fetch(
                "SELECT DISTINCT request_id FROM transfers WHERE reserve_movement IS NULL"
            )
        }
    finally:
        await connection.close()
    cover_of: dict[str, list[asyncpg.Record]] = defaultdict(list)
    # A request repays an account at most once, however often it was sent.
    recovered_by = Counter(
        (r["request_id"], r["debit_account_id"])
        for r in rows
        if r["reserve_movement"] == "RECOVERY"
    )
    for (request_id, seller), count in recovered_by.items():
        if count > 1:
            fail(f"reserve: request {request_id} repaid {seller}'s reserve {count} times")
    for row in rows:
        if row["request_id"] not in written:
            fail(f"reserve: {row['reserve_movement']} {row['transfer_id']} of no written request")
        if row["reserve_movement"] == "COVER":
            cover_of[row["reversal"]].append(row)
    charges = refunds = refunds_covered = for_holder = 0
    # The sellers' requests sent more than once (the same request id), by outcome.
    retried = Counter(
        r["outcome"] for r in records if r["op"] in SELLER_OPS and r.get("attempts", 1) > 1
    )
    for record in records:
        if record["outcome"] != "ack":
            continue
        if record["op"] == "charge":
            charges += 1
        if record["op"] == "seller_move" and record.get("holder"):
            for_holder += 1
        if record["op"] not in ("refund", "refund_batch"):
            continue
        result = record["result"]
        for reversal in result["ids"] if record["op"] == "refund_batch" else [result["id"]]:
            refunds += 1
            found = cover_of.get(reversal, [])
            if len(found) > 1 or any(c["request_id"] != record["request_id"] for c in found):
                fail(
                    f"reserve: refund {reversal} ({record['request_id']}) has covers "
                    f"{[(c['transfer_id'], c['request_id']) for c in found]}"
                )
            refunds_covered += bool(found)
    if len(cover_of) != covers or sum(len(c) for c in cover_of.values()) != covers:
        fail(f"reserve: {covers} covers listed, the table links {len(cover_of)} reversals")
    return [
        f"  reserve: {charges} charges, {for_holder} moves acting for the holder, {refunds} "
        f"refunds ({refunds_covered} covered; all covers {covers}, total {covered_total}), "
        f"{recoveries} recoveries (total {recovered_total}), debts {debts}; covers - "
        f"recoveries = debts; retried with the same request id: {dict(retried)}"
        + ("" if covered_total - recovered_total == debts else ": FAILED")
    ]


async def _transfers(
    moves: money_movement_service_pb2_grpc.MoneyMovementServiceStub,
    md: tuple[tuple[str, str], ...],
    account_id: str,
    metadata: dict[str, str],
) -> Any:
    """Every transfer of `account_id` with `metadata`, page by page."""
    token = ""
    while True:
        page = await moves.ListTransfers(
            mpb.ListTransfersRequest(
                account_id=account_id, metadata=metadata, page_size=500, page_token=token
            ),
            metadata=md,
        )
        for transfer in page.transfers:
            yield transfer
        token = page.next_page_token
        if not token:
            return
