"""A real server on a free port, on a fresh database, and clients with generated stubs."""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from moneymovement.bootstrap import build_server
from moneymovement.config import load_settings
from moneymovement.service.tenants import TenantDirectory
from moneymovement.storage.session import Database
from moneymovement.transport.server import ApiServer
from moneymovement.v1 import (
    account_pb2,
    account_service_pb2,
    account_service_pb2_grpc,
    asset_service_pb2_grpc,
    balance_service_pb2_grpc,
    event_service_pb2_grpc,
    funds_service_pb2_grpc,
    holder_service_pb2_grpc,
    money_movement_service_pb2,
    money_movement_service_pb2_grpc,
    payout_service_pb2_grpc,
)
from tests.conftest import PROJECT_ROOT
from tests.ledger_checks import assert_ledger_consistent


def _documented_keys() -> dict[str, frozenset[str]]:
    """docs/errors.md's "Metadata keys" table: the keys every ErrorInfo of a reason
    carries. `failure` checks each refusal a test sees against it."""
    text = (PROJECT_ROOT / "docs" / "errors.md").read_text()
    section = text.split("## Metadata keys", 1)[1].split("\n## ", 1)[0]
    table = {}
    for reason, keys in re.findall(r"^\| `([A-Z_]+)` \| (.*) \|$", section, re.M):
        table[reason] = frozenset(re.findall(r"`([a-z_]+)`", keys))
    return table


DOCUMENTED_KEYS = _documented_keys()

TEST_ENV = {
    "MM_LISTEN_ADDRESS": "127.0.0.1:0",
    "MM_LOG_FORMAT": "json",
    "MM_AUTH_CACHE_TTL_S": "0",
    "MM_SHUTDOWN_GRACE_S": "1",
}


class Client:
    """The stubs of every service, sending one tenant's token with every call."""

    def __init__(self, channel: grpc.aio.Channel, token: str | None) -> None:
        self.accounts = account_service_pb2_grpc.AccountServiceStub(channel)
        self.balances = balance_service_pb2_grpc.BalanceServiceStub(channel)
        self.movements = money_movement_service_pb2_grpc.MoneyMovementServiceStub(channel)
        self.events = event_service_pb2_grpc.EventServiceStub(channel)
        self.funds = funds_service_pb2_grpc.FundsServiceStub(channel)
        self.payouts = payout_service_pb2_grpc.PayoutServiceStub(channel)
        self.assets = asset_service_pb2_grpc.AssetServiceStub(channel)
        self.holders = holder_service_pb2_grpc.HolderServiceStub(channel)
        self.md: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )

    async def open(self, request_id: str, **fields: Any) -> account_pb2.Account:
        fields.setdefault("currency_code", "USD")
        fields.setdefault("normal_balance", account_pb2.NORMAL_BALANCE_CREDIT)
        request = account_service_pb2.CreateAccountRequest(request_id=request_id, **fields)
        response = await self.accounts.CreateAccount(request, metadata=self.md)
        return response.account

    async def fund(self, request_id: str, amount: int) -> tuple[str, str]:
        """A customer account holding `amount`, paid from a new unlimited funding account."""
        funding = await self.open(
            request_id + "-funding",
            normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
            overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
        )
        customer = await self.open(request_id + "-customer")
        await self.pay(request_id + "-fund", funding.id, customer.id, amount)
        return customer.id, funding.id

    async def pay(
        self, request_id: str, debit: str, credit: str, amount: int, currency: str = "USD"
    ) -> money_movement_service_pb2.CreateTransferResponse:
        request = money_movement_service_pb2.CreateTransferRequest(
            request_id=request_id,
            debit_account_id=debit,
            credit_account_id=credit,
            amount_minor=amount,
            currency_code=currency,
        )
        return await self.movements.CreateTransfer(request, metadata=self.md)


@dataclass
class Api:
    """A running server and what tests need to reach it."""

    server: ApiServer
    database: Database
    channel: grpc.aio.Channel
    port: int
    dsn: str
    a: Client
    b: Client
    anonymous: Client
    tenant_a: str = ""
    tenant_b: str = ""


async def start_api(dsn: str, **env: str) -> Api:
    """A server on `dsn`; `env` overrides TEST_ENV (e.g. MM_HOLD_SWEEP_S). Its simulated
    rail is its own (a fresh directory) unless MM_RAIL_DIR says otherwise."""
    env.setdefault("MM_RAIL_DIR", tempfile.mkdtemp(prefix="mm-rail-"))
    settings = load_settings({**TEST_ENV, **env})
    database = await Database.connect(dsn, max_size=20)
    server = build_server(settings, database, dsn=dsn)  # dsn: LISTEN for token changes
    port = await server.start()
    directory = TenantDirectory(database)
    issued_a = await directory.create_tenant("tenant-a")
    issued_b = await directory.create_tenant("tenant-b")
    token_a, token_b = issued_a.token, issued_b.token
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return Api(
        server, database, channel, port, dsn,
        Client(channel, token_a), Client(channel, token_b), Client(channel, None),
        issued_a.tenant_id, issued_b.tenant_id,
    )  # fmt: skip


async def stop_api(api: Api) -> None:
    await api.channel.close()
    await api.server.stop(0)
    await api.database.close()


@pytest.fixture
async def api(dsn: str) -> AsyncIterator[Api]:
    """A running server; after the test, the whole ledger must still be consistent."""
    running = await start_api(dsn)
    yield running
    await stop_api(running)
    await assert_ledger_consistent(dsn)


@dataclass
class Failure:
    """What a failed call told the client."""

    code: grpc.StatusCode
    message: str
    reason: str
    metadata: dict[str, str]
    field_violations: list[tuple[str, str]]


async def failure(call: Awaitable[object]) -> Failure:
    """Awaits a call that must fail and decodes its google.rpc.Status details."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    error = raised.value
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no status details: {error.code()} {error.details()}"
    info = error_details_pb2.ErrorInfo()
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [(v.field, v.reason) for v in bad.field_violations]
    assert info.domain == "moneymovement"
    missing = DOCUMENTED_KEYS.get(info.reason, frozenset()) - set(info.metadata)
    assert not missing, f"{info.reason} lacks its documented metadata keys {sorted(missing)}"
    return Failure(
        error.code(), error.details() or "", info.reason, dict(info.metadata), violations
    )
