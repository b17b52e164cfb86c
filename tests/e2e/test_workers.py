"""`serve --workers N`: N real server processes on one port, stopped together; and a port
that is already served is refused in one line instead of being silently shared."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from moneymovement.bootstrap import build_server
from moneymovement.config import load_settings
from moneymovement.service.tenants import TenantDirectory
from moneymovement.storage.session import Database
from moneymovement.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc
from moneymovement.workers import listen_problem, worker_metrics_address
from tests.conftest import PROJECT_ROOT
from tests.e2e.conftest import TEST_ENV

pytestmark = pytest.mark.timeout(90)

_CREATED = (
    'rpc_status_code="OK"',
    'rpc_method="moneymovement.v1.AccountService/CreateAccount"',
)


@dataclass
class Serve:
    """One `python -m moneymovement serve ...` process and where it writes."""

    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    stdout: Path
    stderr: Path

    def events(self, name: str) -> list[dict[str, Any]]:
        """The JSON log lines of this event (the banner's plain lines are skipped)."""
        lines = self.stdout.read_text().splitlines()
        return [e for e in (_json(line) for line in lines) if e.get("event") == name]


Launch = Callable[..., Serve]


def _json(line: str) -> dict[str, Any]:
    try:
        parsed = json.loads(line)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _free_ports(count: int) -> int:
    """The first of `count` consecutive ports that nobody listens on right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first: int = probe.getsockname()[1]
        try:
            for port in range(first, first + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise AssertionError(f"no {count} consecutive free ports")


def _env(dsn: str | None, port: int, metrics_port: int | None) -> dict[str, str]:
    env = {
        **os.environ,
        "MM_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "MM_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}" if metrics_port else "",
        "MM_LOG_FORMAT": "json",
        "MM_SHUTDOWN_GRACE_S": "1",
    }
    env.pop("MM_WORKERS", None)
    if dsn is None:
        env.pop("DATABASE_URL", None)
    else:
        env["DATABASE_URL"] = dsn
    return env


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Starts serve processes; kills whatever is left of them after the test."""
    started: list[Serve] = []

    def start(dsn: str | None, *args: str, workers: int = 1, **env: str) -> Serve:
        port, metrics_port = _free_ports(1), _free_ports(workers)
        name = f"serve-{len(started)}"
        stdout, stderr = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:  # the child keeps its own
            process = subprocess.Popen(
                [sys.executable, "-m", "moneymovement", "serve", *args],
                env={**_env(dsn, port, metrics_port), **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        started.append(Serve(process, port, metrics_port, stdout, stderr))
        return started[-1]

    yield start
    for serve in started:
        if serve.process.poll() is None:
            serve.process.kill()  # its workers follow: they have a parent-death signal
            serve.process.wait()


async def _wait_started(serve: Serve, servers: int, timeout_s: float = 60.0) -> None:
    """Until `servers` servers of this process logged server_started (all listen then)."""
    deadline = time.monotonic() + timeout_s
    while len(serve.events("server_started")) < servers:
        code = serve.process.poll()
        assert code is None, f"serve exited with {code}: {serve.stderr.read_text()}"
        assert time.monotonic() < deadline, "the servers did not start in time"
        await asyncio.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


async def _wait_gone(pids: set[int], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if _alive(p)]}"
        await asyncio.sleep(0.1)


async def _token(dsn: str) -> str:
    database = await Database.connect(dsn, max_size=1)
    try:
        return (await TenantDirectory(database).create_tenant(uuid.uuid4().hex)).token
    finally:
        await database.close()


async def _create_accounts(port: int, token: str, count: int) -> None:
    """`count` CreateAccount calls, each on a connection of its own (the kernel spreads
    connections among the workers, not calls)."""
    md = (("authorization", f"Bearer {token}"),)
    for _ in range(count):
        # A local subchannel pool: otherwise channels to one target share one connection.
        options = [("grpc.use_local_subchannel_pool", 1)]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            request = account_service_pb2.CreateAccountRequest(
                request_id=uuid.uuid4().hex,
                currency_code="USD",
                normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
            )
            stub = account_service_pb2_grpc.AccountServiceStub(channel)
            await stub.CreateAccount(request, metadata=md, timeout=10)


def _created(metrics_port: int) -> float:
    """The CreateAccount calls answered OK by the server of this metrics port."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    total = 0.0
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("rpc_server_call_duration_seconds_count{") and all(
            label in name for label in _CREATED
        ):
            total += float(value)
    return total


async def test_two_workers_share_one_port_and_stop_together(dsn: str, launch: Launch) -> None:
    serve = launch(dsn, "--workers", "2", workers=2)
    await _wait_started(serve, 2)
    workers = _children(serve.process.pid)
    started = {e["worker"]: e["pid"] for e in serve.events("worker_started")}
    assert len(workers) == 2
    assert set(started.values()) == workers, "worker i (its log and metrics) is this pid"
    assert sorted(started) == [0, 1]
    token = await _token(dsn)

    await _create_accounts(serve.port, token, 16)

    # Worker i serves its metrics on MM_METRICS_ADDRESS's port + i.
    per_worker = [await asyncio.to_thread(_created, serve.metrics_port + i) for i in (0, 1)]
    assert sum(per_worker) == 16
    assert min(per_worker) > 0, f"every call went to one worker: {per_worker}"
    serve.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(serve.process.wait, 30) == 0
    await _wait_gone(workers)
    assert sorted(e["worker"] for e in serve.events("server_draining")) == [0, 1]
    assert sorted(e["worker"] for e in serve.events("server_stopped")) == [0, 1]


async def test_a_worker_that_dies_stops_the_others(dsn: str, launch: Launch) -> None:
    serve = launch(dsn, workers=2, MM_WORKERS="2")  # the variable, not the flag
    await _wait_started(serve, 2)
    workers = _children(serve.process.pid)
    victim = min(workers)

    os.kill(victim, signal.SIGKILL)

    assert await asyncio.to_thread(serve.process.wait, 30) == 1
    await _wait_gone(workers)
    assert [e["pid"] for e in serve.events("worker_exited")] == [victim]
    assert serve.events("server_stopped"), "the surviving worker drained"


async def test_workers_die_with_their_parent(dsn: str, launch: Launch) -> None:
    serve = launch(dsn, "--workers", "2", workers=2)
    await _wait_started(serve, 2)
    workers = _children(serve.process.pid)

    serve.process.kill()
    serve.process.wait()

    await _wait_gone(workers)


@pytest.mark.parametrize(
    ("first_workers", "second_workers"),
    [(1, 1), (1, 2), (2, 2)],
    ids=["one-on-one", "two-on-one", "two-on-two"],
)
async def test_a_port_already_served_is_refused(
    dsn: str, launch: Launch, first_workers: int, second_workers: int
) -> None:
    # Two on two is the case the port check must catch itself: the first serve's workers
    # listen with SO_REUSEPORT, so the second's workers could bind beside them.
    first = launch(dsn, "--workers", str(first_workers), workers=first_workers)
    await _wait_started(first, first_workers)
    token = await _token(dsn)
    started = time.monotonic()
    intruder = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "moneymovement", "serve", "--workers", str(second_workers)),
        env=_env(dsn, first.port, None),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    communicating = asyncio.ensure_future(intruder.communicate())
    calls = 0
    while not communicating.done() and time.monotonic() - started < 15:
        await _create_accounts(first.port, token, 1)  # calls all the while the second lives
        calls += 1
    if not communicating.done():
        intruder.kill()
    _, stderr = await communicating

    assert intruder.returncode == 1
    [line] = stderr.decode().splitlines()
    assert line.startswith(
        f"moneymovement: cannot listen on 127.0.0.1:{first.port}: address already in use; "
    )
    await _create_accounts(first.port, token, 12)
    answered = [
        await asyncio.to_thread(_created, first.metrics_port + i) for i in range(first_workers)
    ]
    assert sum(answered) == calls + 12, "every call was answered by the first serve"


async def test_a_lone_server_does_not_share_a_port_held_with_so_reuseport(dsn: str) -> None:
    # Without grpc.so_reuseport=0 grpc would bind beside this socket and take some calls.
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = load_settings({**TEST_ENV, "MM_LISTEN_ADDRESS": f"127.0.0.1:{port}"})
        database = await Database.connect(dsn, max_size=2)
        try:
            with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
                await build_server(settings, database).start()
            worker = build_server(dataclasses.replace(settings, reuse_port=True), database)
            assert await worker.start() == port, "a worker shares the port on purpose"
            await worker.stop(0)
        finally:
            await database.close()


def test_the_port_check_counts_any_listener_and_each_worker_gets_a_metrics_port() -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as grpc's default
        listener.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        listener.listen()
        assert listen_problem(address) == "address already in use"
    assert listen_problem(address) is None
    assert listen_problem("unix:/tmp/mm.sock") is None  # grpc judges other forms itself
    assert worker_metrics_address("0.0.0.0:9464", 2) == "0.0.0.0:9466"
    assert worker_metrics_address("127.0.0.1:0", 1) == "127.0.0.1:0"
    assert worker_metrics_address("", 1) == ""


async def test_several_workers_need_a_fixed_port() -> None:
    refused = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "moneymovement", "serve", "--workers", "2"],
        env=_env(None, 0, None),
        capture_output=True,
        timeout=30,
    )
    assert refused.returncode == 2
    assert refused.stderr.decode().splitlines() == [
        "moneymovement: --workers needs a fixed port, not 127.0.0.1:0"
    ]


async def test_embedded_database_dev_tenant_once_and_all_stop(launch: Launch) -> None:
    data_dir = PROJECT_ROOT / ".data" / f"test-workers-{uuid.uuid4().hex[:8]}"
    try:
        serve = launch(None, "--dev", "--workers", "2", workers=2, MM_DATA_DIR=str(data_dir))
        await _wait_started(serve, 2)
        postgres = int((data_dir / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])
        assert len(serve.events("migrations_applied")) == 1, "the parent migrates, once"
        deadline = time.monotonic() + 30
        while "Development tenant token:" not in serve.stdout.read_text():
            assert time.monotonic() < deadline, "no development banner"
            await asyncio.sleep(0.1)
        token = (data_dir / "dev-token").read_text().strip()
        await _create_accounts(serve.port, token, 2)

        serve.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(serve.process.wait, 30) == 0
        await _wait_gone({postgres})
        assert serve.stdout.read_text().count("Development tenant token:") == 1
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        (data_dir.parent / f"{data_dir.name}.log").unlink(missing_ok=True)
