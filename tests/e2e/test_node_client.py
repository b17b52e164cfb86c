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

from tests.e2e.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "node"
AMOUNT = "9007199254740993"  # 2**53 + 1: a JavaScript number cannot hold it


def run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


async def test_node_client_moves_an_int64_amount_and_reads_error_info(api: Api) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed; the Node client test needs it")
    env = dict(os.environ)
    if not (CLIENT / "node_modules").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed; the Node client test needs it")
        installed = await asyncio.to_thread(
            run, [npm, "ci", "--prefix", str(CLIENT), "--no-audit", "--no-fund"], env, 120
        )
        assert installed.returncode == 0, f"npm ci failed:\n{installed.stderr}"

    token = dict(api.a.md)["authorization"].removeprefix("Bearer ")
    env |= {"MM_ADDRESS": f"127.0.0.1:{api.port}", "MM_TOKEN": token}
    done = await asyncio.to_thread(run, [node, str(CLIENT / "example.js")], env, 20)

    assert done.returncode == 0, f"example.js failed:\n{done.stdout}\n{done.stderr}"
    seen = json.loads(done.stdout)
    assert seen["transfer_amount_minor"] == AMOUNT
    assert seen["wallet_balance"]["posted_minor"] == AMOUNT
    assert seen["rejection"]["code"] in ("FAILED_PRECONDITION", 9)
    assert seen["rejection"]["code_number"] == 9
    assert seen["rejection"]["reason"] == "INSUFFICIENT_FUNDS"
    assert seen["rejection"]["domain"] == "moneymovement"

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
