"""Payouts and inbound credits in flight through the chaos run (docs/payouts.md).

A tenant of its own pays sellers out over the simulated rail while the harness kills the
servers and crashes the database: INSTANT and STANDARD payouts (some with a fee, some
canceled at once), to destinations the rail pays, fails (last4 0002), returns (0004) or
answers with a lost reply (0005). The rail itself is seeded to settle in about a second,
fail or return some payouts, lose some answers, repeat half its callbacks and send them
out of order. The bank side sends inbound credits (some delivered twice) and returns
some of them.

The audit, once everything has settled:
- the rail received each payout exactly once (its journal counts new submissions per
  key), and only payouts the ledger handed over;
- every payout is in a terminal state, or still PROCESSING with its holds (verify's
  `verify_payouts` checks every payout's state against its money);
- the rail's settlement report reconciles with the ledger without a break;
- money is conserved: the sellers and the fee account hold what was issued, less what
  the payouts POSTED took out, plus the inbound credits still RECEIVED;
- every acknowledged CreatePayout made one payout, every refused one none, an unknown one
  zero or one; every inbound reference was credited at most once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import grpc

from moneymovement.rails.simulated import SimulatedBank
from moneymovement.service.payouts import reconcile_rail
from moneymovement.service.tenants import TenantDirectory
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.session import Database
from moneymovement.v1 import (
    account_pb2,
    account_service_pb2_grpc,
    money_movement_service_pb2_grpc,
    payout_pb2,
    payout_service_pb2_grpc,
)
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from moneymovement.v1 import payout_service_pb2 as ppb

T = TypeVar("T")
SELLERS = 6
ISSUED_PER_SELLER = 1_000_000
# (last4, what the simulated rail does with a payout to it)
DESTINATIONS = (("1111", "pays"), ("2222", "pays"), ("0002", "fails"), ("0004", "returns"),
                ("0005", "loses the first answer"))  # fmt: skip
SETTLE_TIMEOUT_S = 90.0


def rail_environment(work: Path, seed: int) -> dict[str, str]:
    """The servers' rail: seeded, slow enough that kills find payouts PROCESSING, and
    unreliable in every way the worker must survive."""
    return {
        "MM_RAIL_DIR": str(work / "rail"),
        "MM_RAIL_SEED": str(seed),
        "MM_RAIL_LATENCY_S": "1.0",
        "MM_RAIL_FAILURE_RATE": "0.1",
        "MM_RAIL_RETURN_RATE": "0.1",
        "MM_RAIL_RETURN_AFTER_S": "2",
        "MM_RAIL_TIMEOUT_RATE": "0.1",
        "MM_RAIL_UNAVAILABLE_RATE": "0.05",
        "MM_RAIL_DUPLICATE_RATE": "0.5",
        "MM_RAIL_REORDER": "true",
        "MM_PAYOUT_POLL_S": "0.2",
        "MM_PAYOUT_STANDARD_DELAY_S": "1",
    }


@dataclass
class PayoutWorld:
    tenant_id: str
    token: str
    sellers: list[str]
    fees: str
    destinations: list[str]
    issued: int


@dataclass
class PayoutLog:
    """What the driver asked and heard."""

    creates: list[dict[str, Any]] = field(default_factory=list)
    cancels: Counter[str] = field(default_factory=Counter)
    credits_sent: list[str] = field(default_factory=list)
    duplicates_sent: int = 0
    returns_sent: list[str] = field(default_factory=list)
    processing_at_kills: list[int] = field(default_factory=list)


async def set_up_payouts(dsn: str, target: str) -> PayoutWorld:
    """The payout tenant: a funding account, sellers issued ISSUED_PER_SELLER each, a fee
    account and one destination of each kind."""
    db = await Database.connect(dsn, max_size=2)
    try:
        tenant = await TenantDirectory(db).create_tenant("chaos-payouts")
    finally:
        await db.close()
    md = (("authorization", f"Bearer {tenant.token}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        accounts = account_service_pb2_grpc.AccountServiceStub(channel)
        moves = money_movement_service_pb2_grpc.MoneyMovementServiceStub(channel)
        payouts = payout_service_pb2_grpc.PayoutServiceStub(channel)

        async def open_account(request_id: str, **fields: Any) -> str:
            request = apb.CreateAccountRequest(request_id=request_id, currency_code="USD", **fields)
            return (await accounts.CreateAccount(request, metadata=md)).account.id

        funding = await open_account(
            "p-funding", normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
            overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
        )  # fmt: skip
        fees = await open_account("p-fees", normal_balance=account_pb2.NORMAL_BALANCE_CREDIT)
        sellers = []
        for i in range(SELLERS):
            seller = await open_account(
                f"p-seller-{i}", normal_balance=account_pb2.NORMAL_BALANCE_CREDIT
            )
            await moves.CreateTransfer(
                mpb.CreateTransferRequest(
                    request_id=f"p-issue-{i}", debit_account_id=funding, credit_account_id=seller,
                    amount_minor=ISSUED_PER_SELLER, currency_code="USD",
                ),
                metadata=md,
            )  # fmt: skip
            sellers.append(seller)
        destinations = []
        for last4, _ in DESTINATIONS:
            created = await payouts.CreateExternalAccount(
                ppb.CreateExternalAccountRequest(
                    request_id=f"p-dest-{last4}", rail="simulated", currency_code="USD",
                    routing_reference="021000021", account_number=f"9876{last4}",
                ),
                metadata=md,
            )  # fmt: skip
            destinations.append(created.external_account.id)
    return PayoutWorld(
        tenant.tenant_id, tenant.token, sellers, fees, destinations, ISSUED_PER_SELLER * SELLERS
    )


class PayoutDriver:
    """Makes payouts and sends inbound credits until `duration_s` is over."""

    def __init__(self, world: PayoutWorld, target: str, seed: int, rail_dir: Path) -> None:
        self.world = world
        self.target = target
        self.rng = random.Random(seed * 7919 + 1)
        self.bank = SimulatedBank(rail_dir)
        self.log = PayoutLog()
        self.md = (("authorization", f"Bearer {world.token}"),)

    async def note_kill(self, dsn: str) -> None:
        """How many payouts are PROCESSING as a server is about to be killed."""
        try:
            connection = await asyncpg.connect(dsn, timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return  # the database is down itself
        try:
            count = await connection.fetchval(
                "SELECT count(*) FROM payouts WHERE tenant_id = $1 AND state = 'PROCESSING'",
                self.world.tenant_id,
            )
            self.log.processing_at_kills.append(int(count))
        finally:
            await connection.close()

    async def run(self, duration_s: float) -> None:
        deadline = time.monotonic() + duration_s
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = payout_service_pb2_grpc.PayoutServiceStub(channel)
            await asyncio.gather(self._pay_out(stub, deadline), self._bank_side(deadline))

    async def _pay_out(
        self, stub: payout_service_pb2_grpc.PayoutServiceStub, deadline: float
    ) -> None:
        number = 0
        while time.monotonic() < deadline:
            number += 1
            request = ppb.CreatePayoutRequest(
                request_id=f"p-{number}",
                account_id=self.rng.choice(self.world.sellers),
                external_account_id=self.rng.choice(self.world.destinations),
                amount_minor=self.rng.randint(1, 2_000),
                currency_code="USD",
                method=self.rng.choice(
                    [payout_pb2.PAYOUT_METHOD_INSTANT, payout_pb2.PAYOUT_METHOD_STANDARD]
                ),
            )
            if self.rng.random() < 0.3:
                request.fee_minor = 25
                request.fee_account_id = self.world.fees
            record: dict[str, Any] = {"request_id": request.request_id}
            outcome = await _patiently(partial(stub.CreatePayout, request, metadata=self.md))
            record.update(outcome)
            if "reply" in outcome:
                payout = outcome.pop("reply").payout
                record["payout_id"] = payout.id
                if payout.method == payout_pb2.PAYOUT_METHOD_STANDARD and self.rng.random() < 0.3:
                    cancel = ppb.CancelPayoutRequest(request_id=f"p-cancel-{number}", id=payout.id)
                    answer = await _patiently(partial(stub.CancelPayout, cancel, metadata=self.md))
                    self.log.cancels[answer.get("reason") or answer["outcome"]] += 1
            self.log.creates.append(record)
            await asyncio.sleep(self.rng.uniform(0.01, 0.05))

    async def _bank_side(self, deadline: float) -> None:
        number = 0
        while time.monotonic() < deadline:
            number += 1
            reference = f"wire-{number}"
            seller = self.rng.choice(self.world.sellers)
            amount = self.rng.randint(1, 3_000)
            await asyncio.to_thread(
                self.bank.send_credit, self.world.tenant_id, seller, amount, "USD", reference
            )
            self.log.credits_sent.append(reference)
            if self.rng.random() < 0.2:  # the rail delivers it twice
                await asyncio.to_thread(
                    self.bank.send_credit, self.world.tenant_id, seller, amount, "USD", reference
                )
                self.log.duplicates_sent += 1
            if self.rng.random() < 0.1 and len(self.log.credits_sent) > 3:
                earlier = self.rng.choice(self.log.credits_sent[:-2])
                if earlier not in self.log.returns_sent:
                    await asyncio.to_thread(self.bank.return_credit, earlier, "R01")
                    self.log.returns_sent.append(earlier)
            await asyncio.sleep(self.rng.uniform(0.05, 0.2))


async def _patiently(call: Callable[[], Any], give_up_s: float = 30.0) -> dict[str, Any]:
    """One request, retried with its request_id through kills and crashes: ack (with the
    reply), rejected (with the reason), or unknown (never answered in time)."""
    deadline = time.monotonic() + give_up_s
    while True:
        try:
            return {"outcome": "ack", "reply": await asyncio.wait_for(call(), 10)}
        except grpc.aio.AioRpcError as error:
            retry = error.code() in (
                grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED,
            )  # fmt: skip
            if not retry:
                return {"outcome": "rejected", "reason": _reason(error), "code": error.code().name}
        except TimeoutError:
            pass
        if time.monotonic() > deadline:
            return {"outcome": "unknown"}
        await asyncio.sleep(0.2)


def _reason(error: grpc.aio.AioRpcError) -> str:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


async def settle_payouts(
    dsn: str, world: PayoutWorld, bank: SimulatedBank
) -> tuple[int, list[str]]:
    """Waits until every payout has ended or is at the rail with nothing to change, the
    rail's report reconciles with the ledger, and every inbound notice is booked. Returns
    the payouts still PROCESSING and the breaks left (both empty: settled)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    database = await Database.connect(dsn, max_size=2)
    try:
        while True:
            report = await asyncio.to_thread(bank.settlement_report)
            result = await reconcile_rail(
                UnitOfWork(database), Caller(world.tenant_id), "simulated", report
            )
            async with database.session(world.tenant_id, write=False) as session:
                busy = await session.payouts.payouts(None, None, None, None, 10_000)
            waiting = [p.id for p in busy if p.state.value in ("PENDING", "PROCESSING")]
            breaks = [f"{b.kind.value} {b.reference}: {b.detail}" for b in result.breaks]
            if (not waiting and not breaks) or time.monotonic() > deadline:
                return len(waiting), breaks
            await asyncio.sleep(1.0)
    finally:
        await database.close()


async def audit_payouts(
    dsn: str, world: PayoutWorld, driver: PayoutDriver, work: Path, fail: Callable[[str], None]
) -> list[str]:
    """The checks in the module docstring; returns the summary lines."""
    still, breaks = await settle_payouts(dsn, world, driver.bank)
    for found in breaks:
        fail(f"payouts: reconciliation break after settling: {found}")
    received = await asyncio.to_thread(driver.bank.received)
    submissions = await asyncio.to_thread(driver.bank.submissions)
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT payout_id, request_id, state, amount_minor, fee_minor FROM payouts "
            "WHERE tenant_id = $1",
            world.tenant_id,
        )
        inbound = await connection.fetch(
            "SELECT rail_reference, state, amount_minor FROM inbound_transfers "
            "WHERE tenant_id = $1",
            world.tenant_id,
        )
        held = await connection.fetchval(
            "SELECT sum(posted_credits_minor - posted_debits_minor) FROM accounts "
            "WHERE account_id = ANY($1::text[])",
            [*world.sellers, world.fees],
        )
    finally:
        await connection.close()
    logs = await asyncio.to_thread(_server_logs, work)
    lost = logs.count('"payout_submission_answer_lost"')
    refused = logs.count('"payout_rail_unavailable"')
    resubmitted = logs.count('"payout_unknown_to_rail_resubmitting"')
    states = Counter(r["state"] for r in rows)
    by_request = Counter(r["request_id"] for r in rows)
    handed = {r["payout_id"] for r in rows if r["state"] not in ("PENDING", "CANCELED")}
    twice = {k: n for k, n in received.items() if n != 1}
    if twice:
        fail(f"payouts: the rail received payouts other than once: {dict(list(twice.items())[:5])}")
    if set(received) - {r["payout_id"] for r in rows}:
        fail(f"payouts: the rail received unknown keys {sorted(set(received) - handed)[:5]}")
    unsent = {r["payout_id"] for r in rows if r["state"] in ("PENDING", "CANCELED")} & set(received)
    if unsent:
        fail(f"payouts: PENDING or CANCELED payouts reached the rail: {sorted(unsent)[:5]}")
    if missing := sorted(handed - set(received)):
        # PROCESSING with its holds is honest only while the rail may still get it.
        fail(f"payouts: handed over but never received by the rail: {missing[:5]}")
    outcomes = Counter(c["outcome"] for c in driver.log.creates)
    for create in driver.log.creates:
        made = by_request.get(create["request_id"], 0)
        if create["outcome"] == "ack" and made != 1:
            fail(f"payouts: acknowledged CreatePayout made {made}: {create}")
        elif create["outcome"] == "rejected" and made != 0:
            fail(f"payouts: refused CreatePayout made {made}: {create}")
        elif made > 1:
            fail(f"payouts: CreatePayout made {made}: {create}")
    references = Counter(r["rail_reference"] for r in inbound)
    if any(n > 1 for n in references.values()):
        fail("payouts: an inbound reference was credited twice")
    not_booked = set(driver.log.credits_sent) - set(references)
    if not_booked:
        fail(f"payouts: inbound credits never booked: {sorted(not_booked)[:5]}")
    paid = sum(r["amount_minor"] for r in rows if r["state"] == "POSTED")
    came_in = sum(r["amount_minor"] for r in inbound if r["state"] == "RECEIVED")
    expected = world.issued - paid + came_in
    if held != expected:
        fail(f"payouts: sellers and fees hold {held}, expected {expected} (issued - paid + in)")
    inbound_states = Counter(r["state"] for r in inbound)
    return [
        f"  payouts: {len(rows)} made ({dict(outcomes)} CreatePayout outcomes; cancels "
        f"{dict(driver.log.cancels)}); final states {dict(sorted(states.items()))}; "
        f"{still} still PROCESSING",
        f"  payouts at the rail: {len(received)} received, each exactly once "
        f"({sum(submissions.values())} submissions in all; PROCESSING when a server was "
        f"killed: {driver.log.processing_at_kills}; answers lost {lost}, rail refusals "
        f"{refused}, resubmissions after a lost submission {resubmitted}); "
        f"reconciliation {'clean' if not breaks else f'{len(breaks)} BREAKS'}",
        f"  inbound: {len(driver.log.credits_sent)} credits sent ({driver.log.duplicates_sent} "
        f"delivered twice), {len(driver.log.returns_sent)} returned; booked "
        f"{dict(sorted(inbound_states.items()))}; held {held} = issued {world.issued} "
        f"- paid {paid} + in {came_in}",
    ]


def _server_logs(work: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(work.glob("server-*.log")))
