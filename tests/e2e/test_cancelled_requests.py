"""Requests whose caller's deadline passes while they wait inside a database transaction,
on a real `moneymovement serve` process (its own event loop, exception handler and
logging): what the server's log says about each, and that money moves at most once.

Each request is held on a lock the test takes as the database owner, so the deadline
surely passes mid-transaction: a write waits on an account row (FOR UPDATE), a read
on the entries table (ACCESS EXCLUSIVE). The log must say what happened at info or
warning, with the RPC and the request's identity (its request id; a read has none, so
the trace id the test sent), and never at error level nor with asyncpg's "Resetting
connection with an active transaction".
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from moneymovement.service.tenants import TenantDirectory
from moneymovement.storage.session import Database
from moneymovement.v1 import balance_service_pb2 as bpb
from tests.e2e.conftest import Client
from tests.e2e.test_failures import (
    busy_sessions,
    eventually,
    row_lock,
    transfer_ids,
    transfer_request,
    wait_until_blocked_on_a_lock,
)

pytestmark = pytest.mark.timeout(120)

CREATE_TRANSFER = "/moneymovement.v1.MoneyMovementService/CreateTransfer"
LIST_ENTRIES = "/moneymovement.v1.BalanceService/ListEntries"
Code = grpc.StatusCode


@dataclass
class Served:
    """A `moneymovement serve` process on the test's database, and its log."""

    process: subprocess.Popen[bytes]
    log_path: Path
    dsn: str
    client: Client  # tenant-a's
    other: Client  # tenant-b's
    tenant_id: str  # tenant-a's

    def lines(self) -> list[dict[str, Any]]:
        """Every line the server logged so far (each one JSON object)."""
        text = self.log_path.read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _wait_serving(channel: grpc.aio.Channel, process: subprocess.Popen[bytes]) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for _ in range(600):
        assert process.poll() is None, "the server exited during start-up"
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the server did not start serving in time")


def _start_serving(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "moneymovement", "serve"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


@pytest.fixture
async def served(dsn: str, tmp_path: Path) -> AsyncIterator[Served]:
    """The real command on the test's (migrated) database: app.serve installs the loop's
    exception handler and configures logging as in production; its output (standard
    output and error together) goes to a file the test reads."""
    database = await Database.connect(dsn, max_size=2)
    try:
        issued = await TenantDirectory(database).create_tenant("tenant-a")
        other = await TenantDirectory(database).create_tenant("tenant-b")
    finally:
        await database.close()
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "MM_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "MM_LOG_FORMAT": "json",
        "MM_RAIL_DIR": str(tmp_path / "rail"),
        "MM_SHUTDOWN_GRACE_S": "1",
    }
    log_path = tmp_path / "serve.log"
    process = _start_serving(env, log_path)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        await _wait_serving(channel, process)
        clients = Client(channel, issued.token), Client(channel, other.token)
        yield Served(process, log_path, dsn, *clients, issued.tenant_id)
    finally:
        await channel.close()
        process.terminate()
        await asyncio.to_thread(process.wait, 30)


def _assert_nothing_alarming(lines: list[dict[str, Any]], text: str) -> None:
    """No error-level line, no traceback, no asyncpg complaint: a caller whose deadline
    passed is not a fault of the server."""
    assert [x for x in lines if x.get("level") not in ("info", "warning")] == []
    assert "Resetting connection with an active transaction" not in text
    assert "Traceback" not in text
    assert not [x for x in lines if "exception" in x]


async def _deadline_exceeded(call: Awaitable[object]) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == Code.DEADLINE_EXCEEDED


async def _settled(dsn: str, exclude: tuple[int, ...] = ()) -> None:
    """No session of the server's is left in a transaction or busy."""

    async def busy() -> object:
        return await busy_sessions(dsn, exclude)

    await eventually(busy, 5.0, "the server left a session busy")


async def test_a_write_whose_deadline_passes_on_a_lock_logs_it_and_is_done_once(
    served: Served,
) -> None:
    client = served.client
    customer, _ = await client.fund("late", 1_000)
    merchant = (await client.open("late-m")).id
    request = transfer_request("late-pay", customer, merchant, 100)

    async with row_lock(served.dsn, customer) as holder:
        call = client.movements.CreateTransfer(request, metadata=client.md, timeout=1.0)
        blocked = asyncio.create_task(wait_until_blocked_on_a_lock(served.dsn, holder))
        await _deadline_exceeded(call)
        await blocked  # the deadline passed while its transaction waited on the lock
        await _settled(served.dsn, exclude=(holder,))  # rolled back before the lock went
    assert await transfer_ids(served.dsn, "late-pay") == []

    # The server still serves; the resend does it, once.
    first = await client.movements.CreateTransfer(request, metadata=client.md, timeout=5)
    again = await client.movements.CreateTransfer(request, metadata=client.md, timeout=5)
    assert again.transfer.id == first.transfer.id
    assert await transfer_ids(served.dsn, "late-pay") == [first.transfer.id]

    lines = served.lines()
    _assert_nothing_alarming(lines, served.log_path.read_text())
    mine = [x for x in lines if x.get("request_id") == "late-pay"]
    late, done, replayed = [x for x in mine if x["event"] == "rpc_finished"]
    assert (late["level"], late["code"], late["method"]) == (
        "info", "DEADLINE_EXCEEDED", CREATE_TRANSFER
    )  # fmt: skip
    assert late["duration_ms"] > 900  # it waited for its deadline (1 s, the client's clock)
    # The batch was rolled back at the same deadline: nothing else is said of it, and
    # only the resend moved money.
    assert "domain_event" not in late
    assert (done["code"], done["domain_event"], done["transfer_id"]) == (
        "OK", "transfer_created", first.transfer.id
    )  # fmt: skip
    assert (replayed["code"], "domain_event" in replayed) == ("OK", False)
    assert len(mine) == 3


async def test_a_write_committed_after_its_caller_left_says_so(served: Served) -> None:
    """A command decided before its deadline, whose batch goes on past it (another
    member's deadline is later), commits though its caller got DEADLINE_EXCEEDED: its
    line tells it, with the request's method and request id, and a resend returns that
    transfer."""
    client = served.client
    late, _ = await client.fund("left", 1_000)
    patient, _ = await client.fund("stays", 1_000)
    merchant = (await client.open("gone-m")).id
    elsewhere, _ = await served.other.fund("b", 1_000)
    elsewhere_to = (await served.other.open("b-m")).id

    writer_lock = await _lock_row(served.dsn, elsewhere)
    event_lock = await _lock_events(served.dsn, served.tenant_id)
    try:
        # The one writer waits on another tenant's row; meanwhile both requests queue,
        # and go together in the next batch, which decides them, then waits on the
        # tenant's event lock to write: the deadline of `leaves` passes there.
        ahead = served.other.movements.CreateTransfer(
            transfer_request("ahead", elsewhere, elsewhere_to, 1),
            metadata=served.other.md, timeout=30,
        )  # fmt: skip
        await wait_until_blocked_on_a_lock(served.dsn, writer_lock.get_server_pid())
        leaving = client.movements.CreateTransfer(
            transfer_request("leaves", late, merchant, 7), metadata=client.md, timeout=3
        )
        staying = client.movements.CreateTransfer(
            transfer_request("waits", patient, merchant, 9), metadata=client.md, timeout=30
        )
        await asyncio.sleep(0.3)  # both arrived and are queued behind the writer
        await writer_lock.close()  # its transaction ends: `ahead` commits
        await ahead
        await wait_until_blocked_on_a_lock(served.dsn, event_lock.get_server_pid())
        await _deadline_exceeded(leaving)
        assert await transfer_ids(served.dsn, "leaves") == []
    finally:
        await writer_lock.close()
        await event_lock.close()  # the batch goes on, for `waits`, and commits both
    stayed = await staying
    [committed] = await transfer_ids(served.dsn, "leaves")
    resent = await client.movements.CreateTransfer(
        transfer_request("leaves", late, merchant, 7), metadata=client.md, timeout=5
    )
    assert resent.transfer.id == committed  # the outcome, not a second transfer
    assert await transfer_ids(served.dsn, "leaves") == [committed]
    assert stayed.transfer.id != committed

    lines = served.lines()
    _assert_nothing_alarming(lines, served.log_path.read_text())
    mine = [x for x in lines if x.get("request_id") == "leaves"]
    gave_up, told, replayed = mine
    assert (gave_up["event"], gave_up["code"], gave_up["method"]) == (
        "rpc_finished", "DEADLINE_EXCEEDED", CREATE_TRANSFER
    )  # fmt: skip
    assert told["event"] == "transfer_created"
    assert (told["level"], told["method"], told["caller_gone"]) == (
        "info", CREATE_TRANSFER, True
    )  # fmt: skip
    assert (told["transfer_id"], told["amount_minor"]) == (committed, 7)
    assert told["tenant_id"] == gave_up["tenant_id"]
    assert told["trace_id"] == gave_up["trace_id"]
    assert (replayed["code"], "domain_event" in replayed) == ("OK", False)


async def _lock_row(dsn: str, account_id: str) -> asyncpg.Connection:
    """A connection holding FOR UPDATE on one account row until it is closed."""
    connection = await asyncpg.connect(dsn)
    await connection.execute("BEGIN")
    await connection.execute("SELECT 1 FROM accounts WHERE account_id = $1 FOR UPDATE", account_id)
    return connection


async def _lock_events(dsn: str, tenant_id: str) -> asyncpg.Connection:
    """A connection holding the tenant's event lock (storage/sql/ledger.sql, write_batch)
    until it is closed: a batch with events waits there after deciding its commands."""
    connection = await asyncpg.connect(dsn)
    await connection.execute("BEGIN")
    await connection.execute("SELECT pg_advisory_xact_lock(1835887981, hashtext($1))", tenant_id)
    return connection


async def test_a_read_whose_deadline_passes_mid_transaction_logs_it(served: Served) -> None:
    client = served.client
    customer, _ = await client.fund("reader", 1_000)
    trace_ids = []
    for _ in range(4):  # grpc's cancellation races the handler's own timer
        trace_id = secrets.token_hex(16)
        trace_ids.append(trace_id)
        metadata = (*client.md, ("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"))
        owner = await asyncpg.connect(served.dsn)
        try:
            async with owner.transaction():
                # ListEntries reads the account, then waits here, inside its snapshot.
                await owner.execute("LOCK TABLE entries IN ACCESS EXCLUSIVE MODE")
                read = client.balances.ListEntries(
                    bpb.ListEntriesRequest(account_id=customer), metadata=metadata, timeout=0.5
                )
                await _deadline_exceeded(read)
                await asyncio.sleep(0.1)
            holder = owner.get_server_pid()
            await _settled(served.dsn, exclude=(holder,))
        finally:
            await owner.close()

    listed = await client.balances.ListEntries(
        bpb.ListEntriesRequest(account_id=customer), metadata=client.md, timeout=5
    )
    assert len(listed.entries) == 1  # still serving, from a clean connection

    lines = served.lines()
    _assert_nothing_alarming(lines, served.log_path.read_text())
    for trace_id in trace_ids:
        mine = [x for x in lines if x.get("trace_id") == trace_id]
        [finished] = [x for x in mine if x["event"] == "rpc_finished"]
        assert (finished["level"], finished["code"], finished["method"]) == (
            "info", "DEADLINE_EXCEEDED", LIST_ENTRIES
        )  # fmt: skip
        # When grpc's cancellation interrupted the handler's own rollback, the pool
        # rolled the transaction back: one warning says so, for this request.
        resets = [x for x in mine if x["event"] != "rpc_finished"]
        assert len(resets) <= 1
        for reset in resets:
            assert (reset["event"], reset["level"], reset["method"]) == (
                "connection_rolled_back_after_cancel", "warning", LIST_ENTRIES
            )  # fmt: skip
            assert reset["tenant_id"] == finished["tenant_id"]
