"""Consumers of the event stream against a real server: `moneymovement events tail` as a
process, and MoneyMovementClient.watch_events, through server restarts and lost
connections. A consumer that resumes after its last cursor gets every event once, in
order: the tests compare what it got with what ListEvents lists."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from moneymovement.client import MoneyMovementClient, MoneyMovementError, RetriesExhausted
from moneymovement.service.retention import Retention
from moneymovement.v1 import account_service_pb2 as apb
from moneymovement.v1 import event_pb2
from tests.conftest import PROJECT_ROOT
from tests.e2e.conftest import Api, Client, start_api, stop_api
from tests.ledger_checks import assert_ledger_consistent

pytestmark = pytest.mark.timeout(120)


def token_of(client: Client) -> str:
    return dict(client.md)["authorization"].removeprefix("Bearer ")


async def restart(api: Api) -> Api:
    """Stops the server (its streams end with SHUTTING_DOWN) and starts a new one on the
    same database and port; the tenants and their tokens stay."""
    await stop_api(api)
    return await start_api(api.dsn, MM_LISTEN_ADDRESS=f"127.0.0.1:{api.port}")


async def listed(mm: MoneyMovementClient, **request: Any) -> list[event_pb2.Event]:
    """Every event ListEvents gives from the oldest: what a consumer must have got."""
    events: list[event_pb2.Event] = []
    cursor = ""
    while True:
        page = await mm.list_events(after_cursor=cursor, page_size=50, **request)
        events += page.events
        if not page.events:
            return events
        cursor = page.next_cursor


async def until(check: Callable[[], bool], timeout_s: float = 15.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 (the state is another task's, or the server's)
            await asyncio.sleep(0.02)


async def persistently(make: Callable[[], Awaitable[object]]) -> None:
    """Makes one change, trying again (with the same request id) while the server is away."""
    while True:
        try:
            await make()
            return
        except RetriesExhausted:
            await asyncio.sleep(0.2)


class Tail:
    """`python -m moneymovement events tail` against a server, its lines read as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.errors: list[str] = []
        self._stderr = asyncio.create_task(self._read_stderr())

    @classmethod
    async def start(cls, port: int, token: str, *options: str) -> Tail:
        return await cls.spawn(
            sys.executable, "-m", "moneymovement", "events", "tail",
            "--address", f"127.0.0.1:{port}", "--token", token, *options,
        )  # fmt: skip

    @classmethod
    async def spawn(cls, *argv: str, env: dict[str, str] | None = None) -> Tail:
        """Any command that prints one JSON object per line (the Node example's tail)."""
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=PROJECT_ROOT, env={**os.environ, "MM_LOG_FORMAT": "json", **(env or {})},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(process)

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.errors.append(line.decode().rstrip("\n"))

    async def lines(self, count: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        """The next `count` lines, each one JSON object."""
        assert self.process.stdout is not None
        read: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout_s):
            while len(read) < count:
                raw = await self.process.stdout.readline()
                assert raw, f"events tail ended early; stderr: {self.errors}"
                text = raw.decode()
                assert text.endswith("\n")
                assert ", " not in text, "not compact JSON"
                assert '": ' not in text, "not compact JSON"
                read.append(json.loads(text))
        return read

    async def interrupt(self) -> int:
        """Ctrl-C: its exit code."""
        self.process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(self.process.wait(), 15)
        await self._stderr
        return code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


@contextlib.asynccontextmanager
async def tailing(port: int, token: str, *options: str) -> AsyncIterator[Tail]:
    tail = await Tail.start(port, token, *options)
    try:
        yield tail
    finally:
        tail.kill()
        await tail.process.wait()


async def run_tail(port: int, token: str, *options: str) -> tuple[int, str, str]:
    """A tail that must end by itself: its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "moneymovement", "events", "tail",
        "--address", f"127.0.0.1:{port}", "--token", token, *options,
        cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def cursors(events: list[Any]) -> list[str]:
    return [e["cursor"] if isinstance(e, dict) else e.cursor for e in events]


# The command ----------------------------------------------------------------------------


async def test_tail_prints_each_new_event_as_a_json_line_and_stops_on_ctrl_c(api: Api) -> None:
    a = api.a
    async with MoneyMovementClient(f"127.0.0.1:{api.port}", token_of(a)) as mm:
        await a.open("before")  # before the tail started: not printed
        async with tailing(api.port, token_of(a)) as tail:
            await until(lambda: api.server.events.open_streams == 1)
            customer, funding = await a.fund("tail", 1_000)
            await a.pay("tail-pay", customer, funding, 250)
            lines = await tail.lines(4)
            assert await tail.interrupt() == 0
            assert not [line for line in tail.errors if line.startswith("moneymovement:")]
        everything = await listed(mm)
    assert [line["type"] for line in lines] == [
        "EVENT_TYPE_ACCOUNT_CREATED", "EVENT_TYPE_ACCOUNT_CREATED",
        "EVENT_TYPE_TRANSFER_CREATED", "EVENT_TYPE_TRANSFER_CREATED",
    ]  # fmt: skip
    assert cursors(lines) == cursors(everything[1:])
    paid = lines[3]
    assert paid["request_id"] == "tail-pay"  # the protos' field names
    assert paid["transfer"]["amount_minor"] == "250"  # int64 as a string, exact
    assert paid["transfer"]["debit_account_id"] == customer
    assert {b["account_id"] for b in paid["balances"]} == {customer, funding}


async def test_tail_from_the_oldest_after_a_cursor_and_filtered(api: Api) -> None:
    a = api.a
    customer, funding = await a.fund("hist", 1_000)
    other = (await a.open("hist-other", holder_id="holder-9")).id
    await a.pay("hist-pay", customer, other, 10)
    async with MoneyMovementClient(f"127.0.0.1:{api.port}", token_of(a)) as mm:
        history = await listed(mm)
    assert len(history) == 5
    token = token_of(a)
    async with (
        tailing(api.port, token, "--from", "oldest") as oldest,
        tailing(api.port, token, "--after", history[1].cursor) as after,
        tailing(
            api.port, token, "--from", "oldest", "--type", "ACCOUNT_CREATED",
            "--type", "transfer_created", "--account", customer,
        ) as of_customer,
        tailing(api.port, token, "--holder", "holder-9", "--from", "oldest") as of_holder,
    ):  # fmt: skip
        assert cursors(await oldest.lines(5)) == cursors(history)
        assert cursors(await after.lines(3)) == cursors(history[2:])
        assert [line["request_id"] for line in await of_customer.lines(3)] == [
            "hist-customer", "hist-fund", "hist-pay",
        ]  # fmt: skip
        assert [line["request_id"] for line in await of_holder.lines(2)] == [
            "hist-other", "hist-pay",
        ]  # fmt: skip
        # Each goes on live, with nothing printed in between: the next line is the next
        # change that matches.
        freeze = apb.FreezeAccountRequest(request_id="hist-freeze", account_id=funding)
        await a.accounts.FreezeAccount(freeze, metadata=a.md)  # only --from oldest, --after
        await a.pay("hist-pay2", customer, other, 5)  # matches all four
        for tail in (oldest, after):
            assert [line["request_id"] for line in await tail.lines(2)] == [
                "hist-freeze", "hist-pay2",
            ]  # fmt: skip
        for tail in (of_customer, of_holder):
            assert [line["request_id"] for line in await tail.lines(1)] == ["hist-pay2"]
        for tail in (oldest, after, of_customer, of_holder):
            assert await tail.interrupt() == 0


async def test_tail_stops_with_one_line_and_a_non_zero_exit_on_errors(api: Api) -> None:
    a = api.a
    await a.fund("exp", 100)
    retention = Retention(
        api.database, event_retention_s=60, outcome_retention_s=86400, interval_s=60
    )
    await retention.prune_once(datetime.now(UTC) + timedelta(minutes=2))

    code, out, err = await run_tail(api.port, token_of(a), "--after", "1")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert "cursor 1 expired" in err
    assert "the oldest cursor available is 3 (--after 3, or --from oldest)" in err

    code, out, err = await run_tail(api.port, token_of(a), "--after", "abc")
    assert (code, out, err.count("\n")) == (1, "", 1)
    assert "INVALID_ARGUMENT" in err
    assert "after_cursor INVALID_FORMAT" in err

    code, out, err = await run_tail(api.port, "mm_wrong")
    assert (code, out, err.count("\n")) == (1, "", 1)
    assert "UNAUTHENTICATED TOKEN_INVALID" in err

    # From the oldest cursor that still works, all is well.
    await a.open("exp-next")
    async with tailing(api.port, token_of(a), "--after", "3") as tail:
        assert [line["request_id"] for line in await tail.lines(1)] == ["exp-next"]
        assert await tail.interrupt() == 0


async def test_tail_resumes_after_its_last_cursor_when_the_server_restarts(dsn: str) -> None:
    api = await start_api(dsn)
    token = token_of(api.a)
    try:
        async with tailing(api.port, token, "--from", "oldest") as tail:
            await api.a.fund("r1", 100)
            before = await tail.lines(3)
            api = await restart(api)
            await api.a.fund("r2", 100)  # while the tail may still be reconnecting
            after = await tail.lines(3)
            async with MoneyMovementClient(f"127.0.0.1:{api.port}", token) as mm:
                everything = await listed(mm)
            assert cursors(before + after) == cursors(everything)
            assert [line["request_id"] for line in after] == [
                "r2-funding", "r2-customer", "r2-fund",
            ]  # fmt: skip
            assert await tail.interrupt() == 0
        said = [line for line in tail.errors if line.startswith("moneymovement:")]
        assert any("SHUTTING_DOWN" in line for line in said), tail.errors  # (and gRPC's logs)
        assert all("reconnecting after cursor 3 in" in line for line in said), tail.errors
    finally:
        await stop_api(api)
    await assert_ledger_consistent(dsn)


# The Python client ----------------------------------------------------------------------


class Consumer:
    """A consumer of watch_events that keeps every event it got, and its reconnections."""

    def __init__(self, mm: MoneyMovementClient, **watch: Any) -> None:
        self.events: list[event_pb2.Event] = []
        self.cursor = ""
        self.reconnections: list[tuple[MoneyMovementError | None, str]] = []
        self._task = asyncio.create_task(self._consume(mm, watch))

    async def _consume(self, mm: MoneyMovementClient, watch: dict[str, Any]) -> None:
        def reconnecting(error: MoneyMovementError | None, cursor: str, _pause_s: float) -> None:
            self.reconnections.append((error, cursor))

        stream = mm.watch_events(on_reconnect=reconnecting, **watch)
        async with contextlib.aclosing(stream):
            async for response in stream:
                self.events += response.events
                self.cursor = response.cursor

    async def stop(self) -> None:
        if self._task.done():
            self._task.result()  # its error, if it failed
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def test_watch_events_gets_every_event_once_across_a_server_restart(dsn: str) -> None:
    api = await start_api(dsn)
    token, target = token_of(api.a), f"127.0.0.1:{api.port}"
    try:
        async with (
            MoneyMovementClient(target, token) as mm,
            MoneyMovementClient(target, token) as producer,
        ):
            funding = await producer.create_account(
                currency_code="USD", normal_balance="DEBIT", overdraft_mode="UNLIMITED"
            )
            wallet = await producer.create_account(currency_code="USD", normal_balance="CREDIT")
            consumer = Consumer(mm, start="OLDEST")
            paid = 0

            async def produce(count: int) -> None:
                nonlocal paid
                for i in range(count):

                    def pay(i: int = i) -> Awaitable[object]:
                        return producer.create_transfer(
                            funding.id, wallet.id, 1, "USD", request_id=f"p-{i}"
                        )

                    await persistently(pay)
                    paid += 1
                    await asyncio.sleep(0.01)

            producing = asyncio.create_task(produce(60))
            await until(lambda: paid >= 20 and len(consumer.events) >= 10)
            api = await restart(api)  # the producer keeps trying meanwhile
            await producing
            everything = await listed(mm)
            assert len(everything) == 2 + 60
            await until(lambda: len(consumer.events) >= len(everything))
            await asyncio.sleep(0.3)  # nothing more comes: no event twice
            await consumer.stop()
        assert cursors(consumer.events) == cursors(everything)
        assert consumer.cursor == everything[-1].cursor
        reasons = [error.reason for error, _ in consumer.reconnections if error is not None]
        assert "SHUTTING_DOWN" in reasons, consumer.reconnections
    finally:
        await stop_api(api)
    await assert_ledger_consistent(dsn)


class Proxy:
    """A TCP proxy in front of the server, whose connections the test can cut."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.connections: list[asyncio.StreamWriter] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.connections += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        """Every connection reset at once, as when a network path dies."""
        for writer in self.connections:
            writer.transport.abort()
        self.connections.clear()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_watch_events_resumes_after_a_lost_connection_and_after_its_own_restart(
    api: Api,
) -> None:
    a = api.a
    proxy = Proxy(api.port)
    await proxy.start()
    try:
        async with MoneyMovementClient(f"127.0.0.1:{proxy.port}", token_of(a)) as mm:
            consumer = Consumer(mm)  # from now
            await until(lambda: api.server.events.open_streams == 1)
            customer, funding = await a.fund("cut", 1_000)
            await until(lambda: len(consumer.events) == 3)
            proxy.cut()
            for i in range(5):  # made while the consumer is cut off
                await a.pay(f"cut-{i}", customer, funding, 1)
            await until(lambda: len(consumer.events) == 8)
            lost = [error for error, _ in consumer.reconnections]
            assert lost, "the consumer never saw the connection go"
            assert all(error is not None and error.code.name == "UNAVAILABLE" for error in lost)

            # The consumer stops, keeping its cursor; changes go on; it starts again after
            # that cursor and gets exactly the rest.
            await consumer.stop()
            saved = consumer.cursor
            for i in range(3):
                await a.pay(f"later-{i}", customer, funding, 1)
            again = Consumer(mm, after_cursor=saved)
            await until(lambda: len(again.events) == 3)
            await a.pay("live", customer, funding, 1)
            await until(lambda: len(again.events) == 4)
            await asyncio.sleep(0.3)
            await again.stop()
            everything = await listed(mm)
        assert cursors(consumer.events + again.events) == cursors(everything)
        assert [e.request_id for e in again.events] == ["later-0", "later-1", "later-2", "live"]
    finally:
        await proxy.stop()


async def test_watch_events_filters_and_gives_up_when_told(api: Api) -> None:
    a = api.a
    async with MoneyMovementClient(f"127.0.0.1:{api.port}", token_of(a)) as mm:
        customer, funding = await a.fund("flt", 100)
        await a.pay("flt-pay", customer, funding, 1)
        stream = mm.watch_events(start="OLDEST", types=["TRANSFER_CREATED"], account_id=customer)
        async with contextlib.aclosing(stream):
            first = await anext(stream)
        assert [e.request_id for e in first.events] == ["flt-fund", "flt-pay"]
        with pytest.raises(ValueError, match="not both"):
            await anext(mm.watch_events(after_cursor="1", start="NOW"))
        with pytest.raises(ValueError, match="unknown event type"):
            await anext(mm.watch_events(types=["NOPE"]))

    await api.server.stop(0)  # nothing listens any more
    async with MoneyMovementClient(f"127.0.0.1:{api.port}", token_of(a)) as mm:
        with pytest.raises(RetriesExhausted) as gave_up:
            await anext(mm.watch_events(after_cursor="1", max_reconnects=2))
    assert gave_up.value.code.name == "UNAVAILABLE"
