"""The README's grpcurl walk-through, run as written against a real `serve --dev` process.

The ```sh block under "## A grpcurl walk-through" is read from README.md at test time and run
with bash; only the port and the dev-token path are changed. If the README rots, this fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from moneymovement.devdb import running_server_dsn
from tests.conftest import PROJECT_ROOT
from tests.e2e.test_process import ServeProcess, _alive, _wait_serving

pytestmark = pytest.mark.timeout(120)

README = PROJECT_ROOT / "README.md"
README_ADDRESS = "127.0.0.1:50051"
README_TOKEN_PATH = ".data/dev-token"


def _walkthrough_block() -> str:
    """The ```sh block of the README section "## A grpcurl walk-through"."""
    text = README.read_text()
    section = re.search(r"^## A grpcurl walk-through\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section is not None, 'README.md has no section "## A grpcurl walk-through"'
    block = re.search(r"^```sh\n(.*?)^```", section.group(1), re.M | re.S)
    assert block is not None, "the walk-through section has no ```sh block"
    return block.group(1)


def _json_documents(text: str) -> list[Any]:
    """The JSON documents printed one after another (grpcurl's output of several calls)."""
    decoder = json.JSONDecoder()
    documents, at = [], 0
    while (start := text.find("{", at)) != -1:
        document, at = decoder.raw_decode(text, start)
        documents.append(document)
    return documents


@pytest.fixture
def serve() -> Iterator[ServeProcess]:
    data_dir = PROJECT_ROOT / ".data" / f"test-walkthrough-{uuid.uuid4().hex[:8]}"
    running = ServeProcess(data_dir)
    yield running
    postgres = None
    with contextlib.suppress(OSError, ValueError):  # the server never started PostgreSQL
        postgres = running.postgres_pid()
    if running.process is not None and running.process.poll() is None:
        running.process.send_signal(signal.SIGTERM)
        try:
            running.process.wait(30)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait()
    deadline = time.monotonic() + 15
    while postgres is not None and _alive(postgres) and time.monotonic() < deadline:
        time.sleep(0.1)
    shutil.rmtree(data_dir, ignore_errors=True)
    (data_dir.parent / f"{data_dir.name}.serve.log").unlink(missing_ok=True)
    (data_dir.parent / f"{data_dir.name}.log").unlink(missing_ok=True)


async def test_the_readme_walkthrough_does_what_it_says(serve: ServeProcess) -> None:
    block = _walkthrough_block()
    assert README_ADDRESS in block
    assert README_TOKEN_PATH in block
    script = block.replace(README_ADDRESS, f"127.0.0.1:{serve.port}").replace(
        README_TOKEN_PATH, str(serve.data_dir / "dev-token")
    )

    serve.start()
    await _wait_serving(serve)

    env = {**os.environ, "PATH": f"{PROJECT_ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    bash = functools.partial(
        subprocess.run,
        ["bash", "-c", script],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    run = await asyncio.to_thread(bash)
    out, err = run.stdout, run.stderr
    shown = f"\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
    # The last command is the bad request: grpcurl exits with 64 + INVALID_ARGUMENT (3).
    assert run.returncode == 64 + 3, shown

    # `list`: what the server offers.
    listed = set(out[: out.find("{")].split())
    assert {
        "moneymovement.v1.AccountService",
        "moneymovement.v1.BalanceService",
        "moneymovement.v1.MoneyMovementService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= listed, shown

    # The README's created_id helper captured real account ids.
    assert "acct_" in out, shown
    first, again, balances = _json_documents(out)
    transfer = first["transfer"]
    funding, wallet = transfer["debit_account_id"], transfer["credit_account_id"]
    assert funding.startswith("acct_"), shown
    assert wallet.startswith("acct_"), shown
    assert funding != wallet, shown

    # The transfer was created and posted; int64 fields are JSON strings.
    assert transfer["state"] == "STATE_POSTED", shown
    assert transfer["amount_minor"] == "10000", shown
    assert transfer["id"].startswith("tr_"), shown

    # The identical request returned the same transfer and moved nothing.
    assert again["transfer"]["id"] == transfer["id"], shown
    assert again["transfer"] == transfer, shown

    # Both balances: the wallet holds 10000, the funding account paid out 10000 (once).
    by_account = {b["account_id"]: b for b in balances["balances"]}
    assert set(by_account) == {wallet, funding}, shown
    assert by_account[wallet]["available_minor"] == "10000", shown
    assert by_account[wallet]["posted_minor"] == "10000", shown
    assert by_account[funding]["posted_minor"] == "10000", shown
    assert by_account[funding]["posted_debits_minor"] == "10000", shown

    # The two errors, in order: insufficient funds, then the bad request.
    errors = err.split("ERROR:")[1:]
    assert len(errors) == 2, shown
    too_much, bad = errors
    assert "Code: FailedPrecondition" in too_much, shown
    assert "INSUFFICIENT_FUNDS" in too_much, shown
    assert "Code: InvalidArgument" in bad, shown
    assert "type.googleapis.com/google.rpc.BadRequest" in bad, shown
    violations = [
        json.loads(line.split("\t", 1)[1])
        for line in bad.splitlines()
        if "google.rpc.BadRequest" in line
    ]
    fields = {v["field"] for v in violations[0]["field_violations"]}
    assert {"debit_account_id", "credit_account_id", "amount_minor"} <= fields, shown

    # The database agrees: one transfer only (the replay and both errors changed nothing).
    dsn = running_server_dsn(serve.data_dir / "pg")
    assert dsn is not None
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT transfer_id, request_id FROM transfers")
    finally:
        await connection.close()
    assert [(r["transfer_id"], r["request_id"]) for r in rows] == [(transfer["id"], "top-up-1")]
