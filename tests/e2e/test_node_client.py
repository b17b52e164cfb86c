"""The Node.js example client (clients/node/example.js) against the real server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import asyncpg
import pytest

from moneymovement.v1 import event_service_pb2 as epb
from tests.e2e.conftest import Api, start_api, stop_api
from tests.e2e.test_events_consumers import Tail, restart, token_of
from tests.ledger_checks import assert_ledger_consistent

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "node"
AMOUNT = "9007199254740993"  # 2**53 + 1: a JavaScript number cannot hold it


def run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


async def node_ready() -> str:
    """The node binary, with the example's packages installed; skips without Node.js."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed; the Node client test needs it")
    if not (CLIENT / "node_modules").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed; the Node client test needs it")
        installed = await asyncio.to_thread(
            run,
            [npm, "ci", "--prefix", str(CLIENT), "--no-audit", "--no-fund"],
            dict(os.environ),
            120,
        )
        assert installed.returncode == 0, f"npm ci failed:\n{installed.stderr}"
    return node


async def test_node_client_moves_an_int64_amount_and_reads_error_info(api: Api) -> None:
    node = await node_ready()
    env = dict(os.environ)
    env |= {"MM_ADDRESS": f"127.0.0.1:{api.port}", "MM_TOKEN": token_of(api.a)}
    done = await asyncio.to_thread(run, [node, str(CLIENT / "example.js")], env, 20)

    assert done.returncode == 0, f"example.js failed:\n{done.stdout}\n{done.stderr}"
    seen = json.loads(done.stdout)
    assert seen["transfer_amount_minor"] == AMOUNT
    assert seen["wallet_balance"]["posted_minor"] == AMOUNT
    assert seen["rejection"]["code"] in ("FAILED_PRECONDITION", 9)
    assert seen["rejection"]["code_number"] == 9
    assert seen["rejection"]["reason"] == "INSUFFICIENT_FUNDS"
    assert seen["rejection"]["domain"] == "moneymovement"

    # It read its changes back from the event stream: every one, once, in order; the
    # rejection changed nothing and told nothing.
    assert [(e["type"], e["id"]) for e in seen["events"]] == [
        ("EVENT_TYPE_ACCOUNT_CREATED", seen["funding_account_id"]),
        ("EVENT_TYPE_ACCOUNT_CREATED", seen["wallet_account_id"]),
        ("EVENT_TYPE_TRANSFER_CREATED", seen["transfer_id"]),
    ]
    listed = await api.a.events.ListEvents(epb.ListEventsRequest(), metadata=api.a.md)
    assert [e["cursor"] for e in seen["events"]] == [e.cursor for e in listed.events]
    assert [e["request_id"] for e in seen["events"]] == [e.request_id for e in listed.events]
    assert seen["events_cursor"] == listed.events[-1].cursor

    connection = await asyncpg.connect(api.dsn)
    try:
        row = await connection.fetchrow(
            "SELECT amount_minor, debit_account_id, credit_account_id, state"
            " FROM transfers WHERE transfer_id = $1",
            seen["transfer_id"],
        )
    finally:
        await connection.close()
    assert row is not None, "the transfer example.js reported is not in the database"
    assert row["amount_minor"] == int(AMOUNT)
    assert row["debit_account_id"] == seen["funding_account_id"]
    assert row["credit_account_id"] == seen["wallet_account_id"]
    assert row["state"] == "POSTED"


@pytest.mark.timeout(120)
async def test_node_tail_resumes_after_its_last_cursor_when_the_server_restarts(
    dsn: str,
) -> None:
    node = await node_ready()
    api = await start_api(dsn)
    env = {"MM_ADDRESS": f"127.0.0.1:{api.port}", "MM_TOKEN": token_of(api.a)}
    tail = await Tail.spawn(node, str(CLIENT / "example.js"), "tail", "--from", "oldest", env=env)
    try:
        await api.a.fund("n1", 100)
        before = await tail.lines(3)
        api = await restart(api)
        await api.a.fund("n2", 100)  # while the tail may still be reconnecting
        after = await tail.lines(3)
        listed = await api.a.events.ListEvents(epb.ListEventsRequest(), metadata=api.a.md)
        assert [e["cursor"] for e in before + after] == [e.cursor for e in listed.events]
        assert [e["request_id"] for e in after] == ["n2-funding", "n2-customer", "n2-fund"]
        assert after[2]["transfer"]["amount_minor"] == "100"
        assert await tail.interrupt() == 0
        assert any("SHUTTING_DOWN" in line for line in tail.errors), tail.errors
        assert all("reconnecting after cursor 3 in" in line for line in tail.errors), tail.errors
    finally:
        tail.kill()
        await stop_api(api)
    await assert_ledger_consistent(dsn)
