"""The composition root: what one server process is made of, wired in one place.

Entry points (app.py for `serve`, the tests, the benchmark) call `build_server`; nothing
else constructs services, the write pipeline or the servicers.
"""

from __future__ import annotations

from moneymovement.config import RailSettings, Settings
from moneymovement.rails.base import Rail
from moneymovement.rails.settlement_file import FileRail
from moneymovement.rails.simulated import SimulatedRail
from moneymovement.service.accounts import AccountService
from moneymovement.service.assets import AssetService
from moneymovement.service.balances import BalanceService
from moneymovement.service.event_stream import EventStream
from moneymovement.service.funds import FundsService
from moneymovement.service.holders import HolderService
from moneymovement.service.payout_worker import PayoutWorker
from moneymovement.service.payouts import PayoutService
from moneymovement.service.pipeline import WritePipeline
from moneymovement.service.retention import Retention
from moneymovement.service.sweeper import HoldSweeper
from moneymovement.service.tenants import TenantDirectory
from moneymovement.service.transfers import TransferService
from moneymovement.service.unit_of_work import RetryPolicy, UnitOfWork
from moneymovement.storage.session import Database
from moneymovement.transport.admin_auth import AdminGate
from moneymovement.transport.admin_servicer import AdminServicer
from moneymovement.transport.asset_servicer import AssetServicer
from moneymovement.transport.holder_servicer import HolderServicer
from moneymovement.transport.interceptor import RequestInterceptor
from moneymovement.transport.payout_servicer import PayoutServicer
from moneymovement.transport.server import ApiServer
from moneymovement.transport.servicers import (
    AccountServicer,
    BalanceServicer,
    EventServicer,
    FundsServicer,
    MoneyMovementServicer,
)


def build_server(settings: Settings, database: Database, *, dsn: str | None = None) -> ApiServer:
    """The gRPC server of one process and everything behind it, on `database`.

    `dsn` (the database's) lets the server LISTEN for token changes, which is what allows
    it to cache token lookups, and for committed events, which wake event streams at
    once; without it every RPC looks its token up in the database, and streams look for
    new events every event_stream.BACKSTOP_S.
    """
    directory = TenantDirectory(database, cache_ttl_s=settings.auth_cache_ttl_s, dsn=dsn)
    reads = UnitOfWork(database)
    pipeline = WritePipeline(
        database,
        RetryPolicy(max_attempts=settings.tx_max_attempts),
        max_batch_items=settings.write_batch_max_items,
        writers=settings.write_writers,
    )
    transfers = TransferService(pipeline, reads)
    funds = FundsService(pipeline, reads)
    rail = build_rail(settings.rail)
    payouts = PayoutService(pipeline, reads, settings.rail.standard_delay_s)
    interceptor = RequestInterceptor(
        directory,
        max_deadline_s=settings.max_deadline_s,
        open_health_and_reflection=settings.open_health_and_reflection,
        max_concurrent_rpcs=settings.max_concurrent_rpcs,
        tenant_rate_per_s=settings.tenant_rate_per_s,
        tenant_burst=settings.tenant_burst,
        max_streams=settings.max_event_streams,
        admin=AdminGate(settings.admin_token_sha256),
    )
    events = EventStream(reads, dsn=dsn, heartbeat_s=settings.event_heartbeat_s)
    return ApiServer(
        settings,
        database,
        interceptor=interceptor,
        servicers=(
            AccountServicer(AccountService(pipeline, reads)),
            BalanceServicer(BalanceService(reads)),
            MoneyMovementServicer(transfers),
            EventServicer(events),
            FundsServicer(funds),
            PayoutServicer(payouts, {rail.name: rail}),
            AssetServicer(AssetService(pipeline, reads)),
            AdminServicer(directory),
            HolderServicer(HolderService(pipeline, reads)),
        ),
        directory=directory,
        pipeline=pipeline,
        sweeper=HoldSweeper(database, transfers, settings.hold_sweep_interval_s, funds),
        payout_worker=PayoutWorker(database, payouts, rail, settings.rail.poll_s),
        retention=Retention(
            database,
            event_retention_s=settings.event_retention_s,
            outcome_retention_s=settings.outcome_retention_s,
            interval_s=settings.retention_sweep_s,
        ),
        events=events,
        watch_tokens=dsn is not None,
    )


def build_rail(settings: RailSettings) -> Rail:
    """The configured rail (docs/payouts.md): the simulated bank, or a settlement-file
    rail, on its directory."""
    if settings.kind == "file":
        return FileRail(settings.directory)
    return SimulatedRail(
        settings.directory,
        seed=settings.seed,
        latency_s=settings.latency_s,
        failure_rate=settings.failure_rate,
        return_rate=settings.return_rate,
        return_after_s=settings.return_after_s,
        timeout_rate=settings.timeout_rate,
        unavailable_rate=settings.unavailable_rate,
        duplicate_rate=settings.duplicate_rate,
        reorder=settings.reorder,
    )
