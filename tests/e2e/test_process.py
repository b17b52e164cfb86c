"""The `moneymovement serve` process itself, on its embedded PostgreSQL.

kill -9 leaves no PostgreSQL behind, a restart keeps the data and the development token,
and SIGTERM drains and exits cleanly.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from moneymovement.v1 import (
    account_pb2,
    account_service_pb2,
    account_service_pb2_grpc,
    money_movement_service_pb2,
    money_movement_service_pb2_grpc,
)
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.timeout(120)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


class ServeProcess:
    """One `python -m moneymovement serve --dev` with its own data directory and port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.metrics_port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "MM_DATA_DIR": str(self.data_dir),
            "MM_LISTEN_ADDRESS": f"127.0.0.1:{self.port}",
            "MM_LOG_FORMAT": "json",
            "MM_SHUTDOWN_GRACE_S": "2",
            "MM_METRICS_ADDRESS": f"127.0.0.1:{self.metrics_port}",
        }
        env.pop("DATABASE_URL", None)
        log_path = self.data_dir.parent / f"{self.data_dir.name}.serve.log"
        with log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moneymovement", "serve", "--dev"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def postgres_pid(self) -> int:
        return int((self.data_dir / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])

    def token(self) -> str:
        return (self.data_dir / "dev-token").read_text().strip()


async def _wait_serving(serve: ServeProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(f"127.0.0.1:{serve.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            assert serve.process is not None
            assert serve.process.poll() is None, "the server exited during start-up"
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if (
                    reply.status == health_pb2.HealthCheckResponse.SERVING
                    and (serve.data_dir / "dev-token").exists()
                ):
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not start serving in time")


async def _wait_gone(pid: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"process {pid} is still running")


def serve_process(prefix: str) -> Iterator[ServeProcess]:
    """A ServeProcess with a data directory of its own, killed and removed afterwards."""
    data_dir = PROJECT_ROOT / ".data" / f"{prefix}-{uuid.uuid4().hex[:8]}"
    running = ServeProcess(data_dir)
    yield running
    if running.process is not None and running.process.poll() is None:
        running.process.kill()
        running.process.wait()
    shutil.rmtree(data_dir, ignore_errors=True)
    (data_dir.parent / f"{data_dir.name}.serve.log").unlink(missing_ok=True)
    (data_dir.parent / f"{data_dir.name}.log").unlink(missing_ok=True)


@pytest.fixture
def serve() -> Iterator[ServeProcess]:
    yield from serve_process("test-serve")


async def test_kill_9_leaves_no_postgres_and_a_restart_keeps_the_data(serve: ServeProcess) -> None:
    serve.start()
    await _wait_serving(serve)
    token = serve.token()
    md = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{serve.port}") as channel:
        accounts = account_service_pb2_grpc.AccountServiceStub(channel)
        created = await accounts.CreateAccount(
            account_service_pb2.CreateAccountRequest(
                request_id="keep-me",
                currency_code="USD",
                normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
            ),
            metadata=md,
        )
    postgres = serve.postgres_pid()
    assert _alive(postgres)

    assert serve.process is not None
    serve.process.send_signal(signal.SIGKILL)
    serve.process.wait()
    await _wait_gone(postgres)

    serve.start()
    await _wait_serving(serve)
    assert serve.token() == token, "the development tenant is created once"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{serve.port}") as channel:
        accounts = account_service_pb2_grpc.AccountServiceStub(channel)
        got = await accounts.GetAccount(
            account_service_pb2.GetAccountRequest(account_id=created.account.id), metadata=md
        )
    assert got.account == created.account


async def test_sigterm_drains_and_stops_postgres_too(serve: ServeProcess) -> None:
    serve.start()
    await _wait_serving(serve)
    postgres = serve.postgres_pid()
    assert serve.process is not None
    serve.process.send_signal(signal.SIGTERM)
    exit_code = await asyncio.to_thread(serve.process.wait, 30)
    assert exit_code == 0
    await _wait_gone(postgres)
    log = (serve.data_dir.parent / f"{serve.data_dir.name}.serve.log").read_text()
    assert '"event": "server_draining"' in log
    assert '"event": "server_stopped"' in log


def _scrape(port: int) -> dict[str, float]:
    """The Prometheus samples of the endpoint, keyed by name and labels (scope labels cut)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith(("moneymovement_", "rpc_")):
            key, value = line.rsplit(" ", 1)
            key = re.sub(r'otel_scope_\w+="[^"]*",?', "", key).replace(",}", "}")
            samples[key.replace("{}", "")] = float(value)
    return samples


async def test_the_metrics_endpoint_counts_traffic(serve: ServeProcess) -> None:
    serve.start()
    await _wait_serving(serve)
    md = (("authorization", f"Bearer {serve.token()}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{serve.port}") as channel:
        accounts = account_service_pb2_grpc.AccountServiceStub(channel)
        moves = money_movement_service_pb2_grpc.MoneyMovementServiceStub(channel)
        opened = []
        for name, normal, mode in (
            ("funding", account_pb2.NORMAL_BALANCE_DEBIT, account_pb2.OVERDRAFT_MODE_UNLIMITED),
            ("wallet", account_pb2.NORMAL_BALANCE_CREDIT, account_pb2.OVERDRAFT_MODE_NONE),
        ):
            request = account_service_pb2.CreateAccountRequest(
                request_id=name, currency_code="EUR", normal_balance=normal, overdraft_mode=mode
            )
            opened.append((await accounts.CreateAccount(request, metadata=md)).account.id)
        before = await asyncio.to_thread(_scrape, serve.metrics_port)
        pay = money_movement_service_pb2.CreateTransferRequest(
            request_id="pay", debit_account_id=opened[0], credit_account_id=opened[1],
            amount_minor=1234, currency_code="EUR",
        )  # fmt: skip
        for _ in range(3):  # one effect, two replays: counted once
            await moves.CreateTransfer(pay, metadata=md)
        with pytest.raises(grpc.aio.AioRpcError):
            await moves.CreateTransfer(
                money_movement_service_pb2.CreateTransferRequest(request_id="bad"), metadata=md
            )
    after = await asyncio.to_thread(_scrape, serve.metrics_port)
    calls = 'rpc_server_call_duration_seconds_count{rpc_method="moneymovement.v1.'
    calls += 'MoneyMovementService/CreateTransfer",rpc_status_code="%s",rpc_system_name="grpc"}'
    ok, bad = calls % "OK", calls % "INVALID_ARGUMENT"
    moved = '{currency="EUR",kind="immediate"}'
    assert after[ok] - before.get(ok, 0) == 3
    assert after[bad] - before.get(bad, 0) == 1
    assert after["moneymovement_transfers_total" + moved] == 1
    assert after["moneymovement_amount_moved_total" + moved] == 1234
    assert after["moneymovement_db_pool_size"] >= 1
    assert "moneymovement_db_pool_waiting" in after


async def test_without_an_exporter_transfers_still_record_trace_ids(serve: ServeProcess) -> None:
    # `serve --dev` with no OTEL_* variables: spans are not recorded (always_off), yet
    # each transfer keeps the caller's trace id, or a fresh one when it sent none.
    serve.start()
    await _wait_serving(serve)
    md = (("authorization", f"Bearer {serve.token()}"),)
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = (("traceparent", f"00-{caller_trace}-00f067aa0ba902b7-01"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{serve.port}") as channel:
        accounts = account_service_pb2_grpc.AccountServiceStub(channel)
        movements = money_movement_service_pb2_grpc.MoneyMovementServiceStub(channel)

        async def open_account(request_id: str, **fields: object) -> str:
            request = account_service_pb2.CreateAccountRequest(
                request_id=request_id, currency_code="USD", **fields
            )
            return (await accounts.CreateAccount(request, metadata=md)).account.id

        funding = await open_account(
            "trace-funding",
            normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
            overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
        )
        wallet = await open_account(
            "trace-wallet", normal_balance=account_pb2.NORMAL_BALANCE_CREDIT
        )
        trace_ids = []
        for request_id, extra in (("traced", traceparent), ("untraced", ())):
            moved = await movements.CreateTransfer(
                money_movement_service_pb2.CreateTransferRequest(
                    request_id=request_id, debit_account_id=funding, credit_account_id=wallet,
                    amount_minor=100, currency_code="USD",
                ),
                metadata=md + extra,
            )  # fmt: skip
            trace_ids.append(moved.transfer.trace_id)
    assert trace_ids[0] == caller_trace
    assert len(trace_ids[1]) == 32
    assert trace_ids[1] not in (caller_trace, "0" * 32)
