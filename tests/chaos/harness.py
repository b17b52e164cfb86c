"""The bank chaos test: random money movement under server kills and database crashes.

One run: start an embedded PostgreSQL and the real server process; issue a known amount
to customer accounts in two currencies; let client processes send random operations
while the harness kills the server with SIGKILL and crashes PostgreSQL (immediate
shutdown), restarting both; then audit everything against the database itself:

- `verify` finds no broken invariant;
- per currency, the customers hold exactly what was issued;
- every acknowledged request has exactly one effect, every rejected one none, and every
  unknown one zero or one (resolved by looking its request_id up);
- no balance a client read was below its overdraft policy;
- no reply was INTERNAL or UNKNOWN;
- funds accessibility (credits to some customers unavailable for 1 to 5 s, early releases
  by amount, some with a fee to a fee account): every scheduled part ends at most once and
  for what it held (released + released early + reversed + still pending = what its credit
  scheduled, per transfer), no part is released before its time, each account's
  pending_availability_minor is the sum of its unended parts, and once the run has settled
  (past the longest delay and a few sweeps) no part past its time is left pending;
- an event watcher, following the tenant's WatchEvents stream from the oldest event and
  resuming after its last processed cursor through every kill and restart (and killing
  itself at seeded moments), received every acknowledged change exactly once, in
  per-account order, and nothing but the `events` table (tests/chaos/event_audit.py);
- payouts and inbound credits of a second tenant, in flight over a seeded, unreliable
  simulated rail through the same faults: each payout reached the rail exactly once,
  every one ended or is honestly PROCESSING, the rail's report reconciles, money is
  conserved (tests/chaos/payouts.py);
- platform flows (tests/chaos/reserve.py): charges to a holder's seller accounts, moves of
  their money (some acting for the holder), refunds that their negative-balance reserve
  covers, and later credits that repay it: each seller's debt is its covers less its
  recoveries, each acknowledged refund has at most one cover, and the totals count the
  sellers, the holder's second accounts and the reserves.

The schedule of faults and every client's choices derive from the seed: rerunning with
the same seed replays the same schedule (timings on a busy machine still vary).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc

from moneymovement.client import wait_until_serving
from moneymovement.devdb import EmbeddedPostgres
from moneymovement.service.tenants import TenantDirectory
from moneymovement.storage.migrate import migrate
from moneymovement.storage.session import Database
from moneymovement.storage.verify import verify_ledger
from moneymovement.v1 import (
    account_pb2,
    account_service_pb2_grpc,
    funds_pb2,
    money_movement_service_pb2_grpc,
)
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import money_movement_service_pb2 as mpb
from tests.chaos.clients import ClientPlan, run_client
from tests.chaos.event_audit import audit_events
from tests.chaos.funds_audit import funds_checks, release_effects
from tests.chaos.payouts import PayoutDriver, audit_payouts, rail_environment, set_up_payouts
from tests.chaos.progress import ChaosProgress
from tests.chaos.reserve import SELLER_OPS, SellerAccounts, audit_reserve, open_seller_accounts
from tests.chaos.watcher import WatcherPlan, WatchLog, run_watcher

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CURRENCIES = ("USD", "EUR")
ISSUED_PER_ACCOUNT = 2_000
# The customers (of 12 per currency) opened with a funds policy allowing early release:
# the credits that are delayed and released early are theirs.
FUNDS_ACCOUNTS_PER_CURRENCY = 4
# After the clients stop: how long the ledger may take to settle (the sweeper ends the
# last holds: they last at most 6 s), and then the watcher to reach the newest event.
SETTLE_TIMEOUT_S = 60.0
CATCH_UP_TIMEOUT_S = 60.0
# The servers' heartbeat interval, and how long the quiet watcher may wait for one.
HEARTBEAT_S = 2.0
HEARTBEAT_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class ChaosConfig:
    """One chaos run."""

    seed: int
    duration_s: float = 180.0
    clients: int = 8
    accounts_per_currency: int = 12
    server_kills: int = 4
    database_restarts: int = 1
    replicas: int = 1
    rolling_restarts: int = 0


@dataclass
class ChaosResult:
    """What a run found: the summary lines and the failures (empty: passed)."""

    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServerProcess:
    """`python -m moneymovement serve` on a fixed port, killable with SIGKILL."""

    def __init__(
        self, dsn: str, port: int, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.dsn, self.port, self.log_path = dsn, port, log_path
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": self.dsn,
            "MM_LISTEN_ADDRESS": f"127.0.0.1:{self.port}",
            "MM_LOG_FORMAT": "json",
            "MM_LOG_LEVEL": "WARNING",
            "MM_HOLD_SWEEP_S": "0.5",
            "MM_DB_POOL_MAX": "30",
            # Quiet spells (the database down, the end of the run) send heartbeats.
            "MM_EVENT_HEARTBEAT_S": str(HEARTBEAT_S),
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moneymovement", "serve"], env=env, stdout=log, stderr=log
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    async def drain(self) -> int | None:
        """SIGTERM: health goes NOT_SERVING, RPCs in flight finish; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, 60)

    async def wait_serving(self, timeout_s: float = 60.0) -> None:
        await wait_until_serving(f"127.0.0.1:{self.port}", timeout_s)


async def run_chaos(config: ChaosConfig, work_dir: Path | None = None) -> ChaosResult:
    """Runs one chaos session and audits it, with a status line on stderr (on a
    terminal, redrawn; otherwise a plain line every 10 s and at each phase)."""
    work = work_dir or PROJECT_ROOT / ".data" / f"chaos-{config.seed}-{uuid.uuid4().hex[:6]}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    planned = {
        "server kills": config.server_kills,
        "database restarts": config.database_restarts,
        "rolling restarts": config.rolling_restarts,
    }
    progress = ChaosProgress(config.duration_s, planned, work)
    with progress.status:
        progress.begin(progress.phase)  # the first phase at once, on a terminal or not
        return await _session(config, work, progress)


async def _session(config: ChaosConfig, work: Path, progress: ChaosProgress) -> ChaosResult:
    rng = random.Random(config.seed)
    result = ChaosResult()
    # The database is started here, in the main thread: its parent-death signal is tied to it.
    database = EmbeddedPostgres(work / "pg", port=_free_port(), settings={"max_connections": "200"})
    dsn = database.start()
    # Every replica works the same simulated rail (one journal), as replicas would.
    rail = rail_environment(work, config.seed)
    servers = [
        ServerProcess(dsn, _free_port(), work / f"server-{i}.log", rail)
        for i in range(config.replicas)
    ]
    try:
        await migrate(dsn)
        tenant_id, token, accounts, issued, funds, sellers = await _set_up(dsn, servers[0])
        for server in servers[1:]:
            server.start()
        for server in servers:
            await server.wait_serving()
        # One watcher per tenant the clients use (they use one), from the oldest event.
        watcher = _Watcher(
            WatcherPlan(
                tenant_id, token, _target(servers), f"{config.seed}-watcher-0",
                str(work / "watcher-0.bin"), str(work / "watcher-0.json"),
            )
        )  # fmt: skip
        progress.watcher_position = lambda: int(watcher.position.value)
        world = await set_up_payouts(dsn, _target(servers))
        payouts = PayoutDriver(world, _target(servers), config.seed, work / "rail")
        paying = asyncio.create_task(payouts.run(config.duration_s))
        try:
            faults = await _run_with_faults(
                config, rng, database, servers, token, accounts, funds, sellers, work,
                progress, before_kill=lambda: payouts.note_kill(dsn),
            )  # fmt: skip
            await paying
            progress.begin("clients done; the servers serving again")
            for server in servers:
                await server.wait_serving()
            progress.begin("settling: the last holds end, the last funds are released")
            head, pending = await _settle(dsn, tenant_id)
            progress.begin("settling: the last payouts end, the rail's report reconciles")
            payout_failures: list[str] = []
            payout_lines = await audit_payouts(dsn, world, payouts, work, payout_failures.append)
            progress.begin("audit: the sellers' reserve debts, covers and recoveries")
            payout_lines[:0] = await audit_reserve(
                dsn, _target(servers), token, sellers, _read_records(work),
                payout_failures.append,
            )  # fmt: skip
            progress.begin(f"the live stream catching up to event {head:,}")
            caught_up_s = await watcher.reach(head)
            progress.begin("a heartbeat on the quiet stream")
            heartbeat_s = await watcher.heartbeat()
        finally:
            progress.begin("stopping the watcher")
            exit_code = await watcher.stop()
        watch = _Watch(
            tenant_id, WatchLog.load(watcher.plan), exit_code, head, pending, caught_up_s,
            heartbeat_s,
        )  # fmt: skip
        progress.watcher_position = None
        progress.begin("audit: every outcome, the totals, the events, verify")
        result.failures += payout_failures
        await _audit(
            config, dsn, work, accounts, issued, funds, sellers, faults, watch, result,
            payout_lines,
        )  # fmt: skip
    finally:
        for server in servers:
            server.kill()
        database.stop()
    if result.passed:
        shutil.rmtree(work, ignore_errors=True)
    else:
        result.lines.append(f"logs kept in {work}")
    return result


@dataclass(frozen=True)
class _FundsAccounts:
    """Per currency: the customers whose funds policy allows early release, and the
    account early-release fees are paid to (credit-normal, not a customer)."""

    customers: dict[str, list[str]]
    fees: dict[str, str]


async def _set_up(
    dsn: str, server: ServerProcess
) -> tuple[str, str, dict[str, list[str]], dict[str, int], _FundsAccounts, SellerAccounts]:
    """A tenant (its id and a token), a funding account, customers (some with a funds
    policy allowing early release) and a fee account per currency, a holder's seller
    accounts with their funded reserves, and the issued amounts."""
    db = await Database.connect(dsn, max_size=2)
    try:
        tenant = await TenantDirectory(db).create_tenant("chaos")
        tenant_id, token = tenant.tenant_id, tenant.token
    finally:
        await db.close()
    server.start()
    await server.wait_serving()
    md = (("authorization", f"Bearer {token}"),)
    accounts: dict[str, list[str]] = {}
    issued: dict[str, int] = {}
    funds = _FundsAccounts({}, {})
    funding_ids: dict[str, str] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = account_service_pb2_grpc.AccountServiceStub(channel)
        moves = money_movement_service_pb2_grpc.MoneyMovementServiceStub(channel)
        for currency in CURRENCIES:
            funding = await stub.CreateAccount(
                apb.CreateAccountRequest(
                    request_id=f"setup-funding-{currency}", currency_code=currency,
                    normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
                    overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED, name="funding",
                ),
                metadata=md,
            )  # fmt: skip
            funding_ids[currency] = funding.account.id
            fees = await stub.CreateAccount(
                apb.CreateAccountRequest(
                    request_id=f"setup-fees-{currency}", currency_code=currency,
                    normal_balance=account_pb2.NORMAL_BALANCE_CREDIT, name="early release fees",
                ),
                metadata=md,
            )  # fmt: skip
            funds.fees[currency] = fees.account.id
            accounts[currency], funds.customers[currency] = [], []
            for i in range(12):
                request = apb.CreateAccountRequest(
                    request_id=f"setup-{currency}-{i}", currency_code=currency,
                    normal_balance=account_pb2.NORMAL_BALANCE_CREDIT, name=f"customer {i}",
                )  # fmt: skip
                if i < FUNDS_ACCOUNTS_PER_CURRENCY:
                    request.funds_policy.CopyFrom(funds_pb2.FundsPolicy(early_release_allowed=True))
                created = await stub.CreateAccount(request, metadata=md)
                accounts[currency].append(created.account.id)
                if i < FUNDS_ACCOUNTS_PER_CURRENCY:
                    funds.customers[currency].append(created.account.id)
                await moves.CreateTransfer(
                    mpb.CreateTransferRequest(
                        request_id=f"setup-issue-{currency}-{i}",
                        debit_account_id=funding.account.id,
                        credit_account_id=created.account.id,
                        amount_minor=ISSUED_PER_ACCOUNT, currency_code=currency,
                    ),
                    metadata=md,
                )  # fmt: skip
            issued[currency] = ISSUED_PER_ACCOUNT * len(accounts[currency])
        sellers, reserves_issued = await open_seller_accounts(channel, md, funding_ids)
    for currency, amount in reserves_issued.items():
        issued[currency] += amount
    return tenant_id, token, accounts, issued, funds, sellers


def _target(servers: list[ServerProcess]) -> str:
    """The address clients dial: the server, or every replica (round robin)."""
    if len(servers) == 1:
        return f"127.0.0.1:{servers[0].port}"
    return "ipv4:" + ",".join(f"127.0.0.1:{s.port}" for s in servers)


async def _run_with_faults(
    config: ChaosConfig,
    rng: random.Random,
    database: EmbeddedPostgres,
    servers: list[ServerProcess],
    token: str,
    accounts: dict[str, list[str]],
    funds: _FundsAccounts,
    sellers: SellerAccounts,
    work: Path,
    progress: ChaosProgress,
    before_kill: Callable[[], Awaitable[None]] | None = None,
) -> Counter[str]:
    """Runs the clients while the seeded schedule kills servers, crashes the database and
    restarts the replicas one by one (`before_kill`: told just before each server kill)."""
    faults: Counter[str] = Counter()
    events = (
        ["server"] * config.server_kills
        + ["database"] * config.database_restarts
        + ["rolling"] * config.rolling_restarts
    )
    rng.shuffle(events)
    target = _target(servers)
    span = config.duration_s * 0.8
    times = sorted(rng.uniform(config.duration_s * 0.1, span) for _ in events)
    context = multiprocessing.get_context("spawn")
    processes = []
    for index in range(config.clients):
        plan = ClientPlan(
            index, config.seed, target, token, config.duration_s, accounts,
            str(work / f"client-{index}.jsonl"), funds.customers, funds.fees, sellers,
        )  # fmt: skip
        process = context.Process(target=run_client, args=(plan,), daemon=True)
        process.start()
        processes.append(process)
    progress.clients_running(faults)
    started = time.monotonic()
    for at, event in zip(times, events, strict=True):
        await asyncio.sleep(max(0.0, at - (time.monotonic() - started)))
        if event == "server":
            victim = rng.choice(servers)
            if before_kill is not None:
                await before_kill()
            victim.kill()
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            victim.start()
            faults["server kills"] += 1
        elif event == "rolling":
            for server in servers:  # one at a time, as a deployment would
                if await server.drain() != 0:
                    faults["unclean drains"] += 1
                server.start()
                await server.wait_serving()
            faults["rolling restarts"] += 1
        else:
            database.stop(immediate=True)
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            database.start()
            faults["database restarts"] += 1
    for process in processes:
        await asyncio.to_thread(process.join, config.duration_s + 120)
        if process.exitcode != 0:
            faults["client crashes"] += 1
    return faults


class _Watcher:
    """The event watcher's process, and what the harness sees of it while it runs."""

    def __init__(self, plan: WatcherPlan) -> None:
        self.plan = plan
        context = multiprocessing.get_context("spawn")
        self.stop_event = context.Event()
        self.position = context.Value("q", 0)  # its saved cursor's position
        self.heartbeats = context.Value("q", 0)  # live responses without events
        self.process = context.Process(
            target=run_watcher,
            args=(plan, self.stop_event, self.position, self.heartbeats),
            daemon=True,
        )
        self.process.start()

    async def reach(self, head: int) -> float | None:
        """How long the live stream takes to reach `head` (None: not in the timeout)."""
        started = time.monotonic()
        while self.position.value < head:
            if not self.process.is_alive() or time.monotonic() - started > CATCH_UP_TIMEOUT_S:
                return None
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def heartbeat(self) -> float | None:
        """How long the caught-up watcher, on a quiet ledger, waits for a heartbeat (None:
        none came within the timeout)."""
        started, seen = time.monotonic(), self.heartbeats.value
        while self.heartbeats.value == seen:
            if not self.process.is_alive() or time.monotonic() - started > HEARTBEAT_TIMEOUT_S:
                return None
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def stop(self) -> int | None:
        """Tells the watcher to stop (it then lists the rest); its exit code."""
        self.stop_event.set()
        await asyncio.to_thread(self.process.join, 120)
        if self.process.exitcode is None:
            self.process.kill()
            await asyncio.to_thread(self.process.join, 10)
        return self.process.exitcode


@dataclass
class _Watch:
    """The event watcher's run: what the audit needs besides what it received."""

    tenant_id: str
    watcher: WatchLog
    exit_code: int | None  # the watcher process's
    head: int  # the tenant's newest event once the ledger settled after the clients
    pending: int  # holds and scheduled parts still open then (0: settled)
    caught_up_s: float | None  # how long the live stream then took to reach `head`
    heartbeat_s: float | None  # how long the caught-up, quiet stream took to send one


async def _settle(dsn: str, tenant_id: str) -> tuple[int, int]:
    """Waits until the ledger stops changing after the clients: no hold left open and no
    scheduled part left pending (the sweeper ends them within seconds: holds last at most
    6 s, delays 5 s) and the newest event the same a second later. Returns that newest
    event's position and the holds and parts still open."""
    connection = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        previous = -1
        while True:
            pending = await connection.fetchval(
                "SELECT (SELECT count(*) FROM transfers WHERE tenant_id = $1 AND state = "
                "'PENDING') + (SELECT count(*) FROM scheduled_funds WHERE tenant_id = $1 AND "
                "ended_at IS NULL)",
                tenant_id,
            )
            head = await connection.fetchval(
                "SELECT coalesce(max(position), 0) FROM events WHERE tenant_id = $1", tenant_id
            )
            if (pending == 0 and head == previous) or time.monotonic() > deadline:
                return int(head), int(pending)
            previous = head
            await asyncio.sleep(1.0)
    finally:
        await connection.close()


async def _audit(
    config: ChaosConfig,
    dsn: str,
    work: Path,
    accounts: dict[str, list[str]],
    issued: dict[str, int],
    funds: _FundsAccounts,
    sellers: SellerAccounts,
    faults: Counter[str],
    watch: _Watch,
    result: ChaosResult,
    payout_lines: list[str],
) -> None:
    records = _read_records(work)
    outcomes = Counter(r["outcome"] for r in records)
    fail = result.failures.append
    effects_of: dict[str, int] = {}
    connection = await asyncpg.connect(dsn)
    try:
        resolved: Counter[str] = Counter()
        for record in records:
            if record["op"] == "read" or record["outcome"] == "violation":
                if record["outcome"] == "violation":
                    fail(f"violation: {record}")
                continue
            effects = await _effects(connection, record)
            effects_of[record["request_id"]] = effects
            if record["outcome"] == "ack" and effects != 1:
                fail(f"acknowledged with {effects} effects: {record}")
            elif record["outcome"] == "rejected" and effects != 0:
                fail(f"rejected but {effects} effects: {record}")
            elif record["outcome"] == "unknown":
                if effects not in (0, 1):
                    fail(f"unknown with {effects} effects: {record}")
                resolved["applied" if effects else "not applied"] += 1
        totals, fees = {}, {}
        for currency, ids in accounts.items():
            # The customers, the fee account (early-release fees move money between them),
            # the sellers, the holder's second accounts and the reserves (charges, moves,
            # refunds, covers and recoveries move money among them and the customers).
            fee_account = funds.fees[currency]
            held = await connection.fetchval(
                "SELECT sum(posted_credits_minor - posted_debits_minor) FROM accounts "
                "WHERE account_id = ANY($1::text[])",
                [*ids, fee_account, *sellers.of(currency)],
            )
            fees[currency] = int(
                await connection.fetchval(
                    "SELECT posted_credits_minor - posted_debits_minor FROM accounts "
                    "WHERE account_id = $1",
                    fee_account,
                )
            )
            totals[currency] = int(held)
            if held != issued[currency]:
                fail(
                    f"{currency}: customers, the fee account, sellers and reserves hold {held}, "
                    f"issued "
                    f"{issued[currency]}"
                )
        funds_lines = await funds_checks(
            connection, watch.tenant_id, records, watch.watcher.events, fail
        )
        event_lines = await audit_events(
            connection, watch.tenant_id, watch.watcher, records, effects_of, fail
        )
    finally:
        await connection.close()
    if watch.exit_code != 0 or not watch.watcher.finished:
        fail(f"the event watcher did not finish cleanly (exit code {watch.exit_code})")
    if watch.pending:
        fail(
            f"{watch.pending} holds or scheduled parts still open {SETTLE_TIMEOUT_S:.0f} s "
            "after the clients"
        )
    if watch.caught_up_s is None:
        fail(
            f"the live event stream did not reach the newest event ({watch.head}) within "
            f"{CATCH_UP_TIMEOUT_S:.0f} s of the ledger settling"
        )
    if watch.heartbeat_s is None:
        fail(
            f"no heartbeat reached the caught-up watcher within {HEARTBEAT_TIMEOUT_S:.0f} s "
            f"of quiet (MM_EVENT_HEARTBEAT_S={HEARTBEAT_S})"
        )
    caught_up = (
        f"the live stream reached it in {watch.caught_up_s:.2f}s"
        if watch.caught_up_s is not None
        else "the live stream did NOT reach it"
    )
    caught_up += (
        f", then had a heartbeat in {watch.heartbeat_s:.1f}s"
        if watch.heartbeat_s is not None
        else ", then had NO heartbeat"
    )
    report = await verify_ledger(dsn)
    if not report.ok:
        fail(f"verify: {[c.name for c in report.checks if not c.ok]}")
    if faults["client crashes"]:
        fail(f"{faults['client crashes']} client processes crashed")
    if faults["unclean drains"]:
        fail(f"{faults['unclean drains']} replicas did not exit cleanly on SIGTERM")
    ops = sum(outcomes.values())
    rejected = Counter(r.get("reason") for r in records if r["outcome"] == "rejected")
    result.lines += [
        f"chaos seed={config.seed} duration={config.duration_s:.0f}s clients={config.clients} "
        f"replicas={config.replicas}",
        f"  operations sent: {ops}  acknowledged: {outcomes['ack']}  "
        f"rejected by rule: {outcomes['rejected']}  unknown: {outcomes['unknown']} "
        f"(resolved: {resolved['applied']} applied, {resolved['not applied']} not applied)",
        f"  rejections: {dict(rejected.most_common())}",
        f"  server kills: {faults['server kills']}  database restarts: "
        f"{faults['database restarts']}  rolling restarts: {faults['rolling restarts']}",
        f"  totals: {', '.join(f'{c} {totals[c]} of {issued[c]} issued' for c in totals)} "
        f"(early-release fees collected: {', '.join(f'{c} {fees[c]}' for c in fees)})",
        *funds_lines,
        f"  verify: {'clean' if report.ok else 'VIOLATIONS'} "
        f"({report.counts.get('transfers', 0)} transfers, {report.counts.get('entries', 0)} "
        f"entries, {report.duration_s:.2f}s)",
        f"  events: newest {watch.head} once the ledger settled; {caught_up}",
        *event_lines,
        *payout_lines,
        f"  invariants: {'all held' if result.passed else 'FAILED: ' + str(len(result.failures))}",
    ]


def _read_records(work: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(work.glob("client-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


async def _effects(connection: asyncpg.Connection, record: dict[str, Any]) -> int:
    """How many times the request of `record` took effect, read from the database."""
    request_id = record["request_id"]
    # The sellers' operations are checked as the kinds they are; the covers and recoveries
    # they bring are the reserve audit's (tests/chaos/reserve.py), not counted here.
    op = SELLER_OPS.get(record["op"], record["op"])
    if op == "release":
        return await release_effects(connection, record)
    if op in ("transfer", "hold", "reverse", "batch", "delayed"):
        rows = await connection.fetch(
            # A hold's amount as created: its increments since are steps of their own.
            "SELECT transfer_id, amount_minor - coalesce((SELECT sum((s ->> 'amount_minor')"
            "::bigint) FROM jsonb_array_elements(hold_steps) AS s WHERE s ->> 'kind' = "
            "'INCREMENTED'), 0) AS amount_minor, debit_account_id, credit_account_id, "
            "reversal_of_id, extract(epoch FROM availability_delay) AS delay_s "
            "FROM transfers WHERE request_id = $1 AND reserve_movement IS NULL "
            "ORDER BY batch_index",
            request_id,
        )
        if not rows:
            return 0
        expected = len(record["items"]) if op == "batch" else 1
        if len(rows) != expected:
            return len(rows)  # a partial batch or a duplicate: reported as a wrong count
        if op in ("transfer", "hold", "delayed"):
            row = rows[0]
            same = (row["debit_account_id"], row["credit_account_id"], row["amount_minor"]) == (
                record["debit"], record["credit"], record["amount"],
            )  # fmt: skip
            delay = None if row["delay_s"] is None else float(row["delay_s"])
            wanted = record.get("delay_s")
            same = same and delay == (None if wanted is None else float(wanted))
            return 1 if same else -1
        if op == "reverse" and rows[0]["reversal_of_id"] != record["original"]:
            return -1
        if record["op"] == "refund_batch" and [r["reversal_of_id"] for r in rows] != [
            i["original"] for i in record["items"]
        ]:
            return -1
        return 1
    # capture / partial / increment / void: the hold records each step's request (and,
    # for a hold that ended before it kept its steps, which request ended it).
    row = await connection.fetchrow(
        "SELECT coalesce(hold_steps -> -1 ->> 'kind', state) AS ended_by, "
        "finalized_request_id, (SELECT count(*) FROM jsonb_array_elements("
        "coalesce(hold_steps, '[]')) AS s WHERE s ->> 'request_id' = $2) AS steps "
        "FROM transfers WHERE transfer_id = $1",
        record["hold"],
        request_id,
    )
    if row is None:
        return -1
    if row["steps"]:
        return int(row["steps"])  # more than 1: the step was taken twice
    if row["finalized_request_id"] == request_id:
        return 1
    # A void that found the hold already past its expiry ends it by expiry, with no
    # request (EXPIRED, or POSTED when it had captures).
    if op == "void" and record["outcome"] == "ack" and row["ended_by"] == "EXPIRED":
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.chaos.harness [--seed N] [--duration S]`: run and print a summary."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(1, 10**6))
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--server-kills", type=int, default=4)
    parser.add_argument("--database-restarts", type=int, default=1)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--rolling-restarts", type=int, default=0)
    args = parser.parse_args(argv)
    config = ChaosConfig(
        seed=args.seed,
        duration_s=args.duration,
        clients=args.clients,
        server_kills=args.server_kills,
        database_restarts=args.database_restarts,
        replicas=args.replicas,
        rolling_restarts=args.rolling_restarts,
    )
    print(f"chaos: seed {config.seed} (rerun with --seed {config.seed})", flush=True)
    result = asyncio.run(run_chaos(config))
    print("\n".join(result.lines))
    for failure in result.failures[:50]:
        print("FAILURE:", failure)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
