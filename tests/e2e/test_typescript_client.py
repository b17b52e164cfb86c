"""The TypeScript client (clients/typescript: protobuf-es and Connect) against the real server.

The test installs the client's packages when they are missing (npm ci), generates its
TypeScript from the protos and compiles it (npm run build), then runs it against a server
on a fresh database and checks what it printed against the server and the database.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from moneymovement.v1 import event_service_pb2 as epb
from tests.e2e.conftest import Api
from tests.e2e.test_events_consumers import token_of

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "typescript"
AMOUNT = 9007199254740993  # 2**53 + 1: a JavaScript number cannot hold it
HOLD, CAPTURE = 2500, 2000  # what example.ts holds on the wallet, and captures of it


def run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=CLIENT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


async def typescript_built() -> str:
    """The node binary, with the client generated and compiled into dist/; skips without
    Node.js or npm."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are not installed; the TypeScript client test needs both")
    env = dict(os.environ)
    if not (CLIENT / "node_modules").is_dir():
        installed = await asyncio.to_thread(run, [npm, "ci", "--no-audit", "--no-fund"], env, 240)
        assert installed.returncode == 0, f"npm ci failed:\n{installed.stderr}"
    # generate.mjs runs grpcio-tools' protoc with this interpreter (the project's venv).
    env["MM_PYTHON"] = sys.executable
    built = await asyncio.to_thread(run, [npm, "run", "build"], env, 120)
    assert built.returncode == 0, f"npm run build failed:\n{built.stdout}\n{built.stderr}"
    return node


@pytest.mark.timeout(300)  # a first npm ci downloads the packages
async def test_typescript_client_calls_every_service_with_exact_int64_and_error_reasons(
    api: Api,
) -> None:
    node = await typescript_built()
    env = dict(os.environ)
    env |= {"MM_ADDRESS": f"127.0.0.1:{api.port}", "MM_TOKEN": token_of(api.a)}
    done = await asyncio.to_thread(run, [node, str(CLIENT / "dist" / "example.js")], env, 30)

    assert done.returncode == 0, f"example.js failed:\n{done.stdout}\n{done.stderr}"
    seen: dict[str, Any] = json.loads(done.stdout)
    funding, wallet, merchant = (
        seen["funding_account_id"],
        seen["wallet_account_id"],
        seen["merchant_account_id"],
    )

    # int64 beyond 2^53 went out and came back exactly (as a bigint, printed in decimal).
    assert seen["transfer_amount_minor"] == str(AMOUNT)
    assert seen["fetched_amount_minor"] == str(AMOUNT)
    assert seen["transfer_state"] == "POSTED"
    assert (seen["hold_state"], seen["captured_state"]) == ("PENDING", "POSTED")
    assert seen["captured_minor"] == str(CAPTURE)
    balances = seen["balances"]
    assert balances["funding"]["posted_minor"] == str(AMOUNT)  # DEBIT-normal: paid out
    assert balances["wallet"]["posted_minor"] == str(AMOUNT - CAPTURE)
    assert balances["wallet"]["available_minor"] == str(AMOUNT - CAPTURE)  # hold released
    assert balances["merchant"]["posted_minor"] == str(CAPTURE)
    assert seen["wallet_balance"] == balances["wallet"]

    # Error reasons, read from google.rpc.ErrorInfo in the status details.
    rejections = seen["rejections"]
    insufficient = rejections["insufficient"]
    assert (insufficient["code_number"], insufficient["reason"]) == (9, "INSUFFICIENT_FUNDS")
    assert insufficient["domain"] == "moneymovement"
    assert insufficient["metadata"]["account_id"] == merchant
    assert insufficient["metadata"]["available_minor"] == str(CAPTURE)
    not_found = rejections["not_found"]
    assert (not_found["code_number"], not_found["reason"]) == (5, "ACCOUNT_NOT_FOUND")
    invalid = rejections["invalid"]
    assert (invalid["code_number"], invalid["reason"]) == (3, "INVALID_ARGUMENT")
    assert {"field": "amount_minor", "reason": "OUT_OF_RANGE"} in invalid["field_violations"]
    assert all(rejections[name]["reason_listed"] for name in rejections)

    # It followed its own changes on WatchEvents: each once, in the stream's order, and the
    # refusals told nothing.
    hold = seen["hold_id"]
    assert [(e["type"], e["id"]) for e in seen["events"]] == [
        ("EVENT_TYPE_ACCOUNT_CREATED", funding),
        ("EVENT_TYPE_ACCOUNT_CREATED", wallet),
        ("EVENT_TYPE_ACCOUNT_CREATED", merchant),
        ("EVENT_TYPE_TRANSFER_CREATED", seen["transfer_id"]),
        ("EVENT_TYPE_TRANSFER_CREATED", hold),
        ("EVENT_TYPE_TRANSFER_POSTED", hold),
    ]
    assert seen["events"][3]["amount_minor"] == str(AMOUNT)
    assert seen["events"][5]["posted_amount_minor"] == str(CAPTURE)
    listed = await api.a.events.ListEvents(epb.ListEventsRequest(), metadata=api.a.md)
    assert [e["cursor"] for e in seen["events"]] == [e.cursor for e in listed.events]
    assert [e["request_id"] for e in seen["events"]] == [e.request_id for e in listed.events]
    assert seen["events_cursor"] == listed.events[-1].cursor

    connection = await asyncpg.connect(api.dsn)
    try:
        transfers = {
            row["transfer_id"]: row
            for row in await connection.fetch(
                "SELECT transfer_id, debit_account_id, credit_account_id, amount_minor,"
                " posted_amount_minor, state FROM transfers"
                " WHERE debit_account_id = ANY($1::text[]) OR credit_account_id = ANY($1::text[])",
                [funding, wallet, merchant],
            )
        }
        accounts = {
            row["account_id"]: row
            for row in await connection.fetch(
                "SELECT account_id, posted_debits_minor, posted_credits_minor,"
                " pending_debits_minor FROM accounts WHERE account_id = ANY($1::text[])",
                [funding, wallet, merchant],
            )
        }
    finally:
        await connection.close()
    # Exactly the top-up and the hold: the refused transfers left no row.
    assert set(transfers) == {seen["transfer_id"], hold}
    top_up = transfers[seen["transfer_id"]]
    assert (top_up["debit_account_id"], top_up["credit_account_id"]) == (funding, wallet)
    assert (top_up["amount_minor"], top_up["state"]) == (AMOUNT, "POSTED")
    captured = transfers[hold]
    assert (captured["debit_account_id"], captured["credit_account_id"]) == (wallet, merchant)
    assert (captured["amount_minor"], captured["posted_amount_minor"]) == (HOLD, CAPTURE)
    assert captured["state"] == "POSTED"
    assert accounts[wallet]["posted_credits_minor"] == AMOUNT
    assert accounts[wallet]["posted_debits_minor"] == CAPTURE
    assert accounts[wallet]["pending_debits_minor"] == 0
    assert accounts[merchant]["posted_credits_minor"] == CAPTURE
    assert accounts[funding]["posted_debits_minor"] == AMOUNT
