"""The gRPC server: our three services, health, reflection, and a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from moneymovement.config import Settings
from moneymovement.service.accounts import AccountService
from moneymovement.service.balances import BalanceService
from moneymovement.service.sweeper import HoldSweeper
from moneymovement.service.tenants import TenantDirectory
from moneymovement.service.transfers import TransferService
from moneymovement.service.unit_of_work import RetryPolicy, UnitOfWork
from moneymovement.storage.errors import DatabaseUnavailable
from moneymovement.storage.session import Database
from moneymovement.transport.interceptor import RequestInterceptor
from moneymovement.transport.servicers import (
    AccountServicer,
    BalanceServicer,
    MoneyMovementServicer,
)
from moneymovement.v1 import (
    account_service_pb2,
    account_service_pb2_grpc,
    balance_service_pb2,
    balance_service_pb2_grpc,
    money_movement_service_pb2,
    money_movement_service_pb2_grpc,
)

log = structlog.get_logger("moneymovement.server")

SERVICE_NAMES = (
    account_service_pb2.DESCRIPTOR.services_by_name["AccountService"].full_name,
    balance_service_pb2.DESCRIPTOR.services_by_name["BalanceService"].full_name,
    money_movement_service_pb2.DESCRIPTOR.services_by_name["MoneyMovementService"].full_name,
)
_HEALTH_PROBE_INTERVAL_S = 2.0
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ApiServer:
    """One grpc.aio server on one Database."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self._settings = settings
        self._database = database
        self.directory = TenantDirectory(database, cache_ttl_s=settings.auth_cache_ttl_s)
        uow = UnitOfWork(database, RetryPolicy(max_attempts=settings.tx_max_attempts))
        limit = settings.max_message_bytes
        self._server = grpc.aio.server(
            interceptors=[
                RequestInterceptor(self.directory, max_deadline_s=settings.max_deadline_s)
            ],
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.max_metadata_size", 16 * 1024),
            ],
        )
        account_service_pb2_grpc.add_AccountServiceServicer_to_server(
            AccountServicer(AccountService(uow)), self._server
        )
        balance_service_pb2_grpc.add_BalanceServiceServicer_to_server(
            BalanceServicer(BalanceService(uow)), self._server
        )
        transfers = TransferService(uow)
        money_movement_service_pb2_grpc.add_MoneyMovementServiceServicer_to_server(
            MoneyMovementServicer(transfers), self._server
        )
        self._sweeper = HoldSweeper(database, transfers, settings.hold_sweep_interval_s)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        self._background: list[asyncio.Task[None]] = []
        self.port = 0

    async def start(self) -> int:
        """Binds, starts serving and returns the port (useful with port 0)."""
        self.port = self._server.add_insecure_port(self._settings.listen_address)
        if self.port == 0:
            raise OSError(f"cannot listen on {self._settings.listen_address}")
        await self._server.start()
        reachable = await self._database_reachable()
        await self._set_health(_SERVING if reachable else _NOT_SERVING)
        self._background = [
            asyncio.create_task(self._watch_database(reachable), name="health-monitor"),
            asyncio.create_task(self._sweeper.run(), name="hold-sweeper"),
        ]
        log.info("server_started", address=self._settings.listen_address, port=self.port)
        return self.port

    async def stop(self, grace_s: float) -> None:
        """Drains: health says NOT_SERVING first, then RPCs in flight get `grace_s` to end."""
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._health.enter_graceful_shutdown()
        log.info("server_draining", grace_s=grace_s)
        await self._server.stop(grace_s)
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
