"""A server started while its database is down starts anyway and recovers by itself.

Found by the chaos test: the server used to exit at start-up when PostgreSQL was down,
which under a supervisor is a crash loop for as long as the outage lasts.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from moneymovement.bootstrap import build_server
from moneymovement.config import load_settings
from moneymovement.devdb import EmbeddedPostgres
from moneymovement.service.tenants import TenantDirectory
from moneymovement.storage.migrate import migrate
from moneymovement.storage.session import Database
from moneymovement.transport.server import SERVICE_NAMES
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import account_service_pb2_grpc
from tests.conftest import PROJECT_ROOT
from tests.e2e.conftest import TEST_ENV, failure

SERVICE = SERVICE_NAMES[2]  # moneymovement.v1.MoneyMovementService


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _status(channel: grpc.aio.Channel, service: str = SERVICE) -> int:
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    return reply.status


@pytest.mark.timeout(90)
async def test_the_server_starts_without_its_database_and_recovers() -> None:
    port = _free_port()
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    database = await Database.connect(dsn, max_size=5)
    server = build_server(load_settings(TEST_ENV), database)
    api_port = await server.start()  # used to raise: the database is not there
    data_dir = PROJECT_ROOT / ".data" / f"test-outage-{uuid.uuid4().hex[:6]}"
    postgres = EmbeddedPostgres(data_dir, port=port)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{api_port}") as channel:
            assert await _status(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            # Liveness is the process's: a database outage must not get replicas restarted.
            assert await _status(channel, "") == health_pb2.HealthCheckResponse.SERVING
            stub = account_service_pb2_grpc.AccountServiceStub(channel)
            md = (("authorization", "Bearer mm_whatever"),)
            down = await failure(stub.ListAccounts(apb.ListAccountsRequest(), metadata=md))
            assert (down.code, down.reason) == (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")

            postgres.start()  # the outage ends (blocks briefly: it must run in the main thread)
            await migrate(dsn)
            token = (await TenantDirectory(database).create_tenant("back")).token
            for _ in range(100):  # health is re-checked every 2 s
                if await _status(channel) == health_pb2.HealthCheckResponse.SERVING:
                    break
                await asyncio.sleep(0.1)
            assert await _status(channel) == health_pb2.HealthCheckResponse.SERVING
            md = (("authorization", f"Bearer {token}"),)
            listed = await stub.ListAccounts(apb.ListAccountsRequest(), metadata=md)
            assert list(listed.accounts) == []
    finally:
        await server.stop(0)
        await database.close()
        postgres.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        (data_dir.parent / f"{data_dir.name}.log").unlink(missing_ok=True)
