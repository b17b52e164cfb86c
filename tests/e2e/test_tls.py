"""Mutual TLS with the certificates deploy/tls/make-test-ca.sh makes: a client with a
certificate from the CA (and a token) is served; without one, with one from another CA,
or in plaintext, it is refused before any RPC."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from moneymovement.bootstrap import build_server
from moneymovement.client import MoneyMovementClient, tls_credentials, wait_until_serving
from moneymovement.config import load_settings
from moneymovement.service.tenants import TenantDirectory
from moneymovement.storage.session import Database
from moneymovement.transport.server import ApiServer
from moneymovement.v1 import account_service_pb2, account_service_pb2_grpc
from tests.conftest import PROJECT_ROOT
from tests.e2e.conftest import TEST_ENV

SCRIPT = PROJECT_ROOT / "deploy" / "tls" / "make-test-ca.sh"
pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _make_ca(out: Path) -> Path:
    subprocess.run([SCRIPT, str(out)], check=True, capture_output=True, timeout=60)
    return out


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another CA's certificates: valid, but not trusted by the server."""
    return _make_ca(tmp_path_factory.mktemp("other-ca"))


async def _serve(dsn: str, env: dict[str, str]) -> tuple[ApiServer, Database, str]:
    database = await Database.connect(dsn, max_size=4)
    server = build_server(load_settings({**TEST_ENV, **env}), database, dsn=dsn)
    await server.start()
    token = (await TenantDirectory(database).create_tenant("tls-tenant")).token
    return server, database, token


@pytest.fixture
async def mtls(dsn: str, certs: Path) -> AsyncIterator[tuple[str, str]]:
    """(target, token) of a server that requires client certificates."""
    server, database, token = await _serve(
        dsn,
        {
            "MM_TLS_CERT_FILE": str(certs / "server.pem"),
            "MM_TLS_KEY_FILE": str(certs / "server.key"),
            "MM_TLS_CLIENT_CA_FILE": str(certs / "ca.pem"),
        },
    )
    yield f"localhost:{server.port}", token
    await server.stop(0)
    await database.close()


async def _create(channel: grpc.aio.Channel, token: str | None) -> grpc.StatusCode:
    stub = account_service_pb2_grpc.AccountServiceStub(channel)
    request = account_service_pb2.CreateAccountRequest(
        request_id="tls-1", currency_code="USD", normal_balance=1
    )
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    try:
        await stub.CreateAccount(request, metadata=metadata, timeout=5)
    except grpc.aio.AioRpcError as error:
        return error.code()
    finally:
        await channel.close()
    return grpc.StatusCode.OK


async def test_a_client_with_a_certificate_from_the_ca_and_a_token_is_served(
    mtls: tuple[str, str], certs: Path
) -> None:
    target, token = mtls
    credentials = tls_credentials(certs / "ca.pem", certs / "client.pem", certs / "client.key")
    await wait_until_serving(target, timeout_s=10, credentials=credentials)
    async with MoneyMovementClient(target, token, credentials=credentials) as client:
        account = await client.create_account(currency_code="USD", normal_balance="CREDIT")
        assert (await client.get_account(account.id)).id == account.id
    # mTLS does not replace the token: the certificate gets you in, the token says who.
    assert await _create(grpc.aio.secure_channel(target, credentials), None) == (
        grpc.StatusCode.UNAUTHENTICATED
    )


async def test_clients_without_a_trusted_certificate_are_refused(
    mtls: tuple[str, str], certs: Path, stranger: Path
) -> None:
    target, token = mtls
    no_certificate = tls_credentials(certs / "ca.pem")
    foreign = tls_credentials(certs / "ca.pem", stranger / "client.pem", stranger / "client.key")
    for credentials in (no_certificate, foreign):
        code = await _create(grpc.aio.secure_channel(target, credentials), token)
        assert code == grpc.StatusCode.UNAVAILABLE  # the handshake fails: no RPC is read
    assert await _create(grpc.aio.insecure_channel(target), token) == grpc.StatusCode.UNAVAILABLE


async def test_server_only_tls_needs_no_client_certificate(dsn: str, certs: Path) -> None:
    server, database, token = await _serve(
        dsn,
        {
            "MM_TLS_CERT_FILE": str(certs / "server.pem"),
            "MM_TLS_KEY_FILE": str(certs / "server.key"),
        },
    )
    try:
        target = f"127.0.0.1:{server.port}"
        credentials = tls_credentials(certs / "ca.pem")
        assert await _create(grpc.aio.secure_channel(target, credentials), token) == (
            grpc.StatusCode.OK
        )
        assert await _create(grpc.aio.insecure_channel(target), token) == (
            grpc.StatusCode.UNAVAILABLE
        )
    finally:
        await server.stop(0)
        await database.close()
