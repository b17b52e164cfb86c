"""Abuse on the port of a real `moneymovement serve` process: raw garbage, a valid HTTP/2
preface then garbage, truncated frames, a gRPC message whose length prefix lies,
half-open connections, many connections opened and dropped, and messages over
MM_MAX_MESSAGE_BYTES. Afterwards the server still answers a normal RPC correctly, an
oversized request wrote nothing, and the server's memory stays flat over the rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from moneymovement.v1 import account_pb2, account_service_pb2_grpc
from moneymovement.v1 import account_service_pb2 as apb
from tests.e2e.test_process import ServeProcess, _wait_serving, serve_process

pytestmark = pytest.mark.timeout(180)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0x0, 0x1, 0x4, 0x6, 0x7, 0x8
END_STREAM, END_HEADERS = 0x1, 0x4
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # the server's MM_MAX_MESSAGE_BYTES (the default)
WARM_UP_ROUNDS, MEASURED_ROUNDS = 3, 6
# Growth allowed from the early samples to the late ones, each side taken at its lowest
# (a leak raises every later sample; the allocator's noise, +-4 MB here between rounds,
# does not). Each round sends ~25 MB of oversized messages and ~300 connections: keeping
# one oversized message or one connection's buffers per round would add >= 4 MB a round,
# >= 12 MB by the last three rounds, beyond this bound.
RSS_GROWTH_LIMIT_MB = 10


def frame(kind: int, flags: int, stream: int, payload: bytes, length: int | None = None) -> bytes:
    """One HTTP/2 frame; `length` may lie about the payload's size."""
    size = len(payload) if length is None else length
    return struct.pack(">I", size)[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_literal(headers: list[tuple[str, str]]) -> bytes:
    """Headers as HPACK literals without indexing (no Huffman): valid and simple."""

    def integer(value: int) -> bytes:
        if value < 127:
            return bytes([value])
        out, value = bytearray([127]), value - 127
        while value >= 128:
            out.append(value % 128 + 128)
            value //= 128
        out.append(value)
        return bytes(out)

    block = b""
    for name, value in headers:
        block += b"\x00" + integer(len(name)) + name.encode() + integer(len(value)) + value.encode()
    return block


def grpc_headers(port: int, token: str, path: str) -> bytes:
    return hpack_literal(
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", f"127.0.0.1:{port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("authorization", f"Bearer {token}"),
        ]
    )


async def send_and_drop(port: int, payload: bytes, linger_s: float = 0.0) -> None:
    """Connects, writes `payload`, reads whatever comes back for a moment, closes."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except (OSError, TimeoutError):
        return
    try:
        writer.write(payload)
        await writer.drain()
        if linger_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(65536), linger_s)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


def abuses(port: int, token: str, rng: random.Random) -> list[bytes]:
    """The byte streams of one round, each sent on its own connection."""
    path = "/moneymovement.v1.AccountService/CreateAccount"
    settings = frame(SETTINGS, 0, 0, b"")
    headers = frame(HEADERS, END_HEADERS, 1, grpc_headers(port, token, path))
    valid = apb.CreateAccountRequest(
        request_id=f"wire-{rng.getrandbits(32)}", currency_code="USD",
        normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
    ).SerializeToString()  # fmt: skip
    return [
        rng.randbytes(4096),  # not HTTP/2 at all
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        PREFACE[:10],  # a truncated preface
        PREFACE + rng.randbytes(4096),  # a preface, then garbage
        PREFACE + frame(SETTINGS, 0, 0, b"\x00" * 6)[:7],  # a truncated frame header
        PREFACE + frame(SETTINGS, 0, 0, b"\x00" * 5),  # a SETTINGS of a bad size
        PREFACE + frame(SETTINGS, 0, 0, b"", length=100) + b"\x00" * 10,  # truncated payload
        PREFACE + frame(HEADERS, END_HEADERS, 0, b"\x00"),  # HEADERS on stream 0
        PREFACE + settings + frame(HEADERS, END_HEADERS, 1, rng.randbytes(64)),  # bad HPACK
        PREFACE + settings + frame(0xEE, 0xFF, 7, rng.randbytes(32)),  # unknown frame type
        PREFACE + settings + frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x00\x00"),  # zero window
        PREFACE + settings + frame(PING, 0, 0, b"\x00" * 8) * 200,  # a ping flood
        PREFACE + settings + frame(GOAWAY, 0, 0, b"\x00" * 8),
        # A gRPC message whose length prefix says 100 MB, ended after 10 bytes.
        PREFACE + settings + headers
        + frame(DATA, END_STREAM, 1, b"\x00" + struct.pack(">I", 100_000_000) + b"x" * 10),
        # A compressed-flag message though no compression was negotiated.
        PREFACE + settings + headers
        + frame(DATA, END_STREAM, 1, b"\x01" + struct.pack(">I", len(valid)) + valid),
        # A valid request cut in the middle of its message, the stream left open.
        PREFACE + settings + headers
        + frame(DATA, 0, 1, b"\x00" + struct.pack(">I", len(valid)) + valid[:5]),
        # A stream with headers only, never ended (half-open).
        PREFACE + settings + headers,
    ]  # fmt: skip


async def abuse_round(serve: ServeProcess, token: str, rng: random.Random) -> None:
    """One round of everything above, plus oversized messages and connection churn."""
    port = serve.port
    # Half-open: connections that sent a preface and then nothing, open during the round.
    idle = []
    for _ in range(20):
        try:
            idle.append(await asyncio.open_connection("127.0.0.1", port))
        except OSError:
            break
    for _, writer in idle:
        writer.write(PREFACE + frame(SETTINGS, 0, 0, b""))
    for payload in abuses(port, token, rng):
        await send_and_drop(port, payload, linger_s=0.05)
    # Many connections opened and dropped at once.
    await asyncio.gather(*(send_and_drop(port, b"") for _ in range(200)))
    await asyncio.gather(*(send_and_drop(port, PREFACE) for _ in range(50)))
    # Oversized messages through a real client.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        accounts = account_service_pb2_grpc.AccountServiceStub(channel)
        md = (("authorization", f"Bearer {token}"),)
        for size in (MAX_MESSAGE_BYTES + 1, 2 * MAX_MESSAGE_BYTES):
            request = apb.CreateAccountRequest(
                request_id=f"too-big-{size}", currency_code="USD", name="n" * size,
                normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
            )  # fmt: skip
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await accounts.CreateAccount(request, metadata=md, timeout=30)
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        request = apb.CreateAccountRequest(
            request_id="too-many-entries", currency_code="USD",
            normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
            metadata={f"k{i}": "v" * 1000 for i in range(5000)},
        )  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await accounts.CreateAccount(request, metadata=md, timeout=30)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for _, writer in idle:
        writer.close()


async def serves_normally(port: int, token: str, label: str) -> int:
    """A normal CreateAccount and GetAccount work; returns how many accounts exist."""
    md = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        accounts = account_service_pb2_grpc.AccountServiceStub(channel)
        request = apb.CreateAccountRequest(
            request_id=f"normal-{label}", currency_code="USD", name=label,
            normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
        )  # fmt: skip
        created = (await accounts.CreateAccount(request, metadata=md, timeout=10)).account
        got = await accounts.GetAccount(
            apb.GetAccountRequest(account_id=created.id), metadata=md, timeout=10
        )
        assert got.account == created
        listed = await accounts.ListAccounts(
            apb.ListAccountsRequest(page_size=500), metadata=md, timeout=10
        )
        return len(listed.accounts)


def rss_mb(pid: int) -> float:
    """The resident set size of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def serve() -> Iterator[ServeProcess]:
    yield from serve_process("test-wire")


async def test_garbage_on_the_port_leaves_the_server_serving_with_flat_memory(
    serve: ServeProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    serve.start()
    await _wait_serving(serve)
    assert serve.process is not None
    token, pid, rng = serve.token(), serve.process.pid, random.Random(5)
    count = await serves_normally(serve.port, token, "start")
    for round_ in range(WARM_UP_ROUNDS):
        await abuse_round(serve, token, rng)
        count = await serves_normally(serve.port, token, f"warm-{round_}")
    baseline = rss_mb(pid)
    samples = [baseline]
    for round_ in range(MEASURED_ROUNDS):
        await abuse_round(serve, token, rng)
        assert serve.process.poll() is None, "the server died"
        after = await serves_normally(serve.port, token, f"round-{round_}")
        assert after == count + 1, "only the normal account of the round was written"
        count = after
        samples.append(rss_mb(pid))
    growth = min(samples[-3:]) - min(samples[:2])
    with capsys.disabled():
        print(f"\nserver RSS (MB) after warm-up and each round: {[round(s, 1) for s in samples]}")
    assert growth < RSS_GROWTH_LIMIT_MB, f"RSS grew {growth:.1f} MB: {samples}"
