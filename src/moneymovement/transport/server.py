"""The gRPC server: our services, health, reflection, optional (mutual) TLS, the
limits on messages and metadata, and a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from moneymovement.config import Settings
from moneymovement.service.event_stream import EventStream
from moneymovement.service.payout_worker import PayoutWorker
from moneymovement.service.pipeline import WritePipeline
from moneymovement.service.retention import Retention
from moneymovement.service.sweeper import HoldSweeper
from moneymovement.service.tenants import TenantDirectory
from moneymovement.storage.errors import DatabaseUnavailable
from moneymovement.storage.session import Database
from moneymovement.transport.admin_servicer import AdminServicer
from moneymovement.transport.asset_servicer import AssetServicer
from moneymovement.transport.holder_servicer import HolderServicer
from moneymovement.transport.interceptor import RequestInterceptor
from moneymovement.transport.payout_servicer import PayoutServicer
from moneymovement.transport.servicers import (
    AccountServicer,
    BalanceServicer,
    EventServicer,
    FundsServicer,
    MoneyMovementServicer,
)
from moneymovement.v1 import (
    account_service_pb2,
    account_service_pb2_grpc,
    admin_service_pb2,
    admin_service_pb2_grpc,
    asset_service_pb2,
    asset_service_pb2_grpc,
    balance_service_pb2,
    balance_service_pb2_grpc,
    event_service_pb2,
    event_service_pb2_grpc,
    funds_service_pb2,
    funds_service_pb2_grpc,
    holder_service_pb2,
    holder_service_pb2_grpc,
    money_movement_service_pb2,
    money_movement_service_pb2_grpc,
    payout_service_pb2,
    payout_service_pb2_grpc,
)

log = structlog.get_logger("moneymovement.server")

SERVICE_NAMES = (
    account_service_pb2.DESCRIPTOR.services_by_name["AccountService"].full_name,
    balance_service_pb2.DESCRIPTOR.services_by_name["BalanceService"].full_name,
    money_movement_service_pb2.DESCRIPTOR.services_by_name["MoneyMovementService"].full_name,
    event_service_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,
    funds_service_pb2.DESCRIPTOR.services_by_name["FundsService"].full_name,
    payout_service_pb2.DESCRIPTOR.services_by_name["PayoutService"].full_name,
    asset_service_pb2.DESCRIPTOR.services_by_name["AssetService"].full_name,
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    holder_service_pb2.DESCRIPTOR.services_by_name["HolderService"].full_name,
)
_HEALTH_PROBE_INTERVAL_S = 2.0
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ApiServer:
    """One grpc.aio server: serves the given servicers through the interceptor, with
    health and reflection, and runs the process's background tasks (the database
    watcher, the hold sweeper, retention, the token and event listeners). Built by
    bootstrap.build_server."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        interceptor: RequestInterceptor,
        servicers: tuple[
            AccountServicer,
            BalanceServicer,
            MoneyMovementServicer,
            EventServicer,
            FundsServicer,
            PayoutServicer,
            AssetServicer,
            AdminServicer,
            HolderServicer,
        ],
        directory: TenantDirectory,
        pipeline: WritePipeline,
        sweeper: HoldSweeper,
        payout_worker: PayoutWorker,
        retention: Retention,
        events: EventStream,
        watch_tokens: bool,
    ) -> None:
        self._settings = settings
        self._database = database
        self.directory = directory
        self._pipeline = pipeline
        self._sweeper = sweeper
        self._payout_worker = payout_worker
        self._retention = retention
        self.events = events
        self._watch_tokens = watch_tokens
        message_limit, metadata_limit = settings.max_message_bytes, settings.max_metadata_bytes
        self._server = grpc.aio.server(
            interceptors=[interceptor],
            options=[
                ("grpc.max_receive_message_length", message_limit),
                ("grpc.max_send_message_length", message_limit),
                # gRPC refuses metadata past the soft limit only sometimes (at random, more
                # often nearer the hard limit); one value for both makes the limit exact.
                ("grpc.max_metadata_size", metadata_limit),
                ("grpc.absolute_max_metadata_size", metadata_limit),
                # grpc enables SO_REUSEPORT by default: a second server on a port already
                # served would then bind it too and silently take part of its calls.
                # Only the workers of one multi-worker serve share a port, on purpose.
                ("grpc.so_reuseport", int(settings.reuse_port)),
            ],
        )
        accounts, balances, movements, event_servicer, funds, payouts, assets, admin, holders = (
            servicers
        )
        account_service_pb2_grpc.add_AccountServiceServicer_to_server(accounts, self._server)
        balance_service_pb2_grpc.add_BalanceServiceServicer_to_server(balances, self._server)
        money_movement_service_pb2_grpc.add_MoneyMovementServiceServicer_to_server(
            movements, self._server
        )
        event_service_pb2_grpc.add_EventServiceServicer_to_server(event_servicer, self._server)
        funds_service_pb2_grpc.add_FundsServiceServicer_to_server(funds, self._server)
        payout_service_pb2_grpc.add_PayoutServiceServicer_to_server(payouts, self._server)
        asset_service_pb2_grpc.add_AssetServiceServicer_to_server(assets, self._server)
        # Always served: while MM_ADMIN_TOKEN_SHA256 is unset, the interceptor refuses
        # every call (ADMIN_DISABLED), which tells a control plane what to change.
        admin_service_pb2_grpc.add_AdminServiceServicer_to_server(admin, self._server)
        holder_service_pb2_grpc.add_HolderServiceServicer_to_server(holders, self._server)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        self._background: list[asyncio.Task[None]] = []
        self.port = 0

    async def start(self) -> int:
        """Binds, starts serving and returns the port (useful with port 0)."""
        credentials = server_credentials(self._settings)
        address = self._settings.listen_address
        try:
            if credentials is None:
                self.port = self._server.add_insecure_port(address)
            else:
                self.port = self._server.add_secure_port(address, credentials)
        except RuntimeError:  # grpc raises, or returns 0, when the bind fails
            self.port = 0
        if self.port == 0:
            raise OSError(f"cannot listen on {address}")
        await self._server.start()
        reachable = await self._database_reachable()
        await self._set_health(_SERVING if reachable else _NOT_SERVING)
        self._background = [
            asyncio.create_task(self._watch_database(reachable), name="health-monitor"),
            asyncio.create_task(self._sweeper.run(), name="hold-sweeper"),
            asyncio.create_task(self._payout_worker.run(), name="payout-worker"),
            asyncio.create_task(self._retention.run(), name="retention"),
            asyncio.create_task(self.events.listen(), name="event-notices"),
        ]
        if self._watch_tokens:
            self._background.append(
                asyncio.create_task(self.directory.watch_token_changes(), name="token-changes")
            )
        log.info(
            "server_started",
            address=self._settings.listen_address,
            port=self.port,
            tls=_tls_mode(self._settings),
        )
        return self.port

    async def stop(self, grace_s: float) -> None:
        """Drains: health says NOT_SERVING first, then RPCs in flight get `grace_s` to end."""
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._health.enter_graceful_shutdown()
        self.events.close()  # streams end now (SHUTTING_DOWN), not after the grace
        log.info("server_draining", grace_s=grace_s)
        await self._server.stop(grace_s)
        await self._pipeline.drain()  # batches already in the database finish and answer
        log.info("server_stopped")

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        """The per-service statuses follow the database (readiness); the overall status
        ("") stays SERVING while the process lives (liveness), so a database outage takes
        replicas out of rotation without making a supervisor restart them all."""
        await self._health.set("", _SERVING)
        for name in SERVICE_NAMES:
            await self._health.set(name, status)

    async def _database_reachable(self) -> bool:
        try:
            await self._database.ping()
        except (DatabaseUnavailable, TimeoutError, OSError):
            return False
        except Exception:
            log.exception("database_ping_failed")  # the watcher must outlive any surprise
            return False
        return True

    async def _watch_database(self, serving: bool) -> None:
        """Keeps the per-service health in step with the database's reachability."""
        while True:
            await asyncio.sleep(_HEALTH_PROBE_INTERVAL_S)
            healthy = await self._database_reachable()
            if healthy != serving:
                serving = healthy
                log.warning("database_reachability_changed", reachable=healthy)
                await self._set_health(_SERVING if healthy else _NOT_SERVING)


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials from the configured PEM files, or None for plaintext.

    With MM_TLS_CLIENT_CA_FILE the server requires a client certificate signed by that CA:
    the TLS handshake of a caller without one fails before any RPC is read.
    """
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    chain = settings.tls_cert_file.read_bytes()
    key = settings.tls_key_file.read_bytes()
    client_ca = settings.tls_client_ca_file
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=None if client_ca is None else client_ca.read_bytes(),
        require_client_auth=client_ca is not None,
    )


def _tls_mode(settings: Settings) -> str:
    if settings.tls_cert_file is None:
        return "off"
    return "mutual" if settings.tls_client_ca_file is not None else "server"
