"""Payouts, external accounts and inbound transfers over a real port, with the simulated
rail's bank side driving the rail (docs/payouts.md): every transition and every refusal,
each with its stable reason."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from google.protobuf import duration_pb2

from moneymovement.rails.settlement import write_settlement_csv
from moneymovement.rails.simulated import SimulatedBank
from moneymovement.v1 import (
    account_pb2,
    balance_service_pb2,
    event_pb2,
    event_service_pb2,
    money_movement_service_pb2,
    payout_pb2,
    payout_service_pb2,
)
from tests.e2e.conftest import Api, Client, failure, start_api, stop_api
from tests.ledger_checks import assert_ledger_consistent

Code = grpc.StatusCode
State = payout_pb2.PayoutState
INSTANT = payout_pb2.PAYOUT_METHOD_INSTANT
STANDARD = payout_pb2.PAYOUT_METHOD_STANDARD
T = TypeVar("T")


@dataclass
class Rail:
    api: Api
    bank: SimulatedBank


@pytest.fixture
async def rail(dsn: str, tmp_path: Path) -> AsyncIterator[Rail]:
    """A server on a fresh simulated rail that settles in ~0.05 s, whose worker looks
    every 0.05 s, and whose STANDARD payouts wait an hour (so they stay cancelable)."""
    directory = tmp_path / "rail"
    running = await start_api(
        dsn,
        MM_RAIL_DIR=str(directory),
        MM_RAIL_LATENCY_S="0.05",
        MM_RAIL_RETURN_AFTER_S="0.2",
        MM_PAYOUT_POLL_S="0.05",
        MM_PAYOUT_STANDARD_DELAY_S="3600",
    )
    yield Rail(running, SimulatedBank(directory))
    await stop_api(running)
    await assert_ledger_consistent(dsn)


async def eventually(check: Callable[[], Awaitable[T | None]], timeout_s: float = 10) -> T:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await check()
        if value is not None:
            return value
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def destination(client: Client, request_id: str, account_number: str) -> str:
    response = await client.payouts.CreateExternalAccount(
        payout_service_pb2.CreateExternalAccountRequest(
            request_id=request_id, rail="simulated", currency_code="USD",
            routing_reference="110000000", account_number=account_number,
            holder_name="Ada Seller",
        ),
        metadata=client.md,
    )  # fmt: skip
    return response.external_account.id


async def pay_out(
    client: Client, request_id: str, account: str, external: str, amount: int, **more: object
) -> payout_pb2.Payout:
    more.setdefault("method", INSTANT)
    response = await client.payouts.CreatePayout(
        payout_service_pb2.CreatePayoutRequest(
            request_id=request_id, account_id=account, external_account_id=external,
            amount_minor=amount, currency_code="USD", **more,  # type: ignore[arg-type]
        ),
        metadata=client.md,
    )  # fmt: skip
    return response.payout


async def in_state(client: Client, payout_id: str, state: int) -> payout_pb2.Payout:
    async def check() -> payout_pb2.Payout | None:
        response = await client.payouts.GetPayout(
            payout_service_pb2.GetPayoutRequest(id=payout_id), metadata=client.md
        )
        return response.payout if response.payout.state == state else None

    return await eventually(check)


async def available(client: Client, account: str) -> int:
    response = await client.balances.GetBalance(
        balance_service_pb2.GetBalanceRequest(account_id=account), metadata=client.md
    )
    return response.balance.available_minor


async def posted(client: Client, account: str) -> int:
    response = await client.balances.GetBalance(
        balance_service_pb2.GetBalanceRequest(account_id=account), metadata=client.md
    )
    return response.balance.posted_minor


async def test_instant_payout_holds_at_once_then_posts_once_with_its_fee(rail: Rail) -> None:
    client = rail.api.a
    seller, _ = await client.fund("seller", 10_000)
    fees = await client.open("fees")
    external = await destination(client, "dest", "000123456789")
    payout = await pay_out(client, "po-1", seller, external, 2_500, fee_minor=100,
                           fee_account_id=fees.id, description="weekly payout")  # fmt: skip
    assert payout.state in (State.PAYOUT_STATE_PENDING, State.PAYOUT_STATE_PROCESSING)
    assert payout.fee_transfer_id
    assert payout.hold_transfer_id
    assert await available(client, seller) == 7_400  # held at once, amount and fee
    done = await in_state(client, payout.id, State.PAYOUT_STATE_POSTED)
    assert done.settle_time.seconds > 0
    assert done.processing_time.seconds > 0
    assert await posted(client, seller) == 7_400
    assert await posted(client, fees.id) == 100
    settlement = await client.balances.GetBalance(
        balance_service_pb2.GetBalanceRequest(account_id=payout.settlement_account_id),
        metadata=client.md,
    )
    assert settlement.balance.posted_minor == -2_500  # DEBIT-normal: the bank paid it out
    assert rail.bank.received() == {payout.id: 1}
    # The same request again: the same payout, nothing held twice.
    again = await pay_out(client, "po-1", seller, external, 2_500, fee_minor=100,
                          fee_account_id=fees.id, description="weekly payout")  # fmt: skip
    assert again.id == payout.id
    assert await posted(client, seller) == 7_400
    events = await client.events.ListEvents(
        event_service_pb2.ListEventsRequest(
            filter=event_service_pb2.EventFilter(account_id=seller)
        ),
        metadata=client.md,
    )
    kinds = [e.type for e in events.events if e.payout.id == payout.id]
    assert kinds == [
        event_pb2.EVENT_TYPE_PAYOUT_CREATED,
        event_pb2.EVENT_TYPE_PAYOUT_PROCESSING,
        event_pb2.EVENT_TYPE_PAYOUT_POSTED,
    ]


async def test_a_failed_payout_releases_its_hold_and_fee(rail: Rail) -> None:
    client = rail.api.a
    seller, _ = await client.fund("seller", 5_000)
    fees = await client.open("fees")
    closed = await destination(client, "dest", "99990002")  # the rail fails it
    payout = await pay_out(client, "po-f", seller, closed, 1_000, fee_minor=50,
                           fee_account_id=fees.id)  # fmt: skip
    failed = await in_state(client, payout.id, State.PAYOUT_STATE_FAILED)
    assert failed.failure_reason == "account_closed"
    assert await available(client, seller) == 5_000
    assert await posted(client, fees.id) == 0


async def test_a_posted_payout_returned_later_comes_back_available(rail: Rail) -> None:
    client = rail.api.a
    seller, _ = await client.fund("seller", 5_000)
    external = await destination(client, "dest", "12345678")
    payout = await pay_out(client, "po-r", seller, external, 4_000)
    await in_state(client, payout.id, State.PAYOUT_STATE_POSTED)
    assert await available(client, seller) == 1_000
    assert rail.bank.return_payout(payout.id, "account_frozen")
    returned = await in_state(client, payout.id, State.PAYOUT_STATE_RETURNED)
    assert returned.return_reason == "account_frozen"
    assert returned.return_transfer_id
    assert await available(client, seller) == 5_000
    # The seeded return of a test destination, without the bank's help.
    flaky = await destination(client, "dest-4", "55550004")
    second = await pay_out(client, "po-r2", seller, flaky, 500)
    await in_state(client, second.id, State.PAYOUT_STATE_RETURNED)
    assert await available(client, seller) == 5_000


async def test_a_lost_answer_is_resolved_by_asking_never_by_a_second_payout(rail: Rail) -> None:
    client = rail.api.a
    seller, _ = await client.fund("seller", 5_000)
    timing_out = await destination(client, "dest", "44440005")
    payout = await pay_out(client, "po-t", seller, timing_out, 700)
    await in_state(client, payout.id, State.PAYOUT_STATE_POSTED)
    assert rail.bank.received() == {payout.id: 1}
    assert rail.bank.submissions() == {payout.id: 1}


async def test_cancel_only_before_processing(rail: Rail) -> None:
    client = rail.api.a
    seller, _ = await client.fund("seller", 5_000)
    external = await destination(client, "dest", "12345678")
    standard = await pay_out(client, "po-s", seller, external, 1_000, method=STANDARD)
    assert standard.state == State.PAYOUT_STATE_PENDING
    assert await available(client, seller) == 4_000
    cancel = payout_service_pb2.CancelPayoutRequest(request_id="c-1", id=standard.id)
    canceled = (await client.payouts.CancelPayout(cancel, metadata=client.md)).payout
    assert canceled.state == State.PAYOUT_STATE_CANCELED
    assert await available(client, seller) == 5_000
    again = payout_service_pb2.CancelPayoutRequest(request_id="c-2", id=standard.id)
    assert (await client.payouts.CancelPayout(again, metadata=client.md)).payout.state == (
        State.PAYOUT_STATE_CANCELED
    )
    instant = await pay_out(client, "po-i", seller, external, 1_000)
    await in_state(client, instant.id, State.PAYOUT_STATE_POSTED)
    late = await failure(
        client.payouts.CancelPayout(
            payout_service_pb2.CancelPayoutRequest(request_id="c-3", id=instant.id),
            metadata=client.md,
        )
    )
    assert (late.code, late.reason) == (Code.FAILED_PRECONDITION, "PAYOUT_NOT_CANCELABLE")
    assert late.metadata == {"payout_id": instant.id, "state": "POSTED"}
    assert rail.bank.received() == {instant.id: 1}  # the canceled one never reached it
    # A rail that never answers (test destination 0006): the payout stays PROCESSING, its
    # hold kept, and cannot be canceled any more.
    down = await destination(client, "dest-down", "77770006")
    stuck = await pay_out(client, "po-d", seller, down, 500)
    await in_state(client, stuck.id, State.PAYOUT_STATE_PROCESSING)
    busy = await failure(
        client.payouts.CancelPayout(
            payout_service_pb2.CancelPayoutRequest(request_id="c-4", id=stuck.id),
            metadata=client.md,
        )
    )
    assert (busy.reason, busy.metadata["state"]) == ("PAYOUT_NOT_CANCELABLE", "PROCESSING")
    assert await available(client, seller) == 5_000 - 1_000 - 500


async def test_refusals_have_stable_reasons_and_change_nothing(rail: Rail) -> None:
    client = rail.api.a
    seller, funding = await client.fund("seller", 3_000)
    external = await destination(client, "dest", "12345678")
    above = await failure(pay_out(client, "x-1", seller, external, 3_001))
    assert (above.code, above.reason) == (Code.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS")
    # 2,000 more arrive, available only in an hour: the account has 5,000, 3,000 of it
    # available now.
    later = money_movement_service_pb2.CreateTransferRequest(
        request_id="later", debit_account_id=funding, credit_account_id=seller,
        amount_minor=2_000, currency_code="USD",
        availability_delay=duration_pb2.Duration(seconds=3600),
    )  # fmt: skip
    await client.movements.CreateTransfer(later, metadata=client.md)
    waiting = await failure(pay_out(client, "x-2", seller, external, 4_000))
    assert (waiting.code, waiting.reason) == (Code.FAILED_PRECONDITION, "FUNDS_NOT_YET_AVAILABLE")
    assert waiting.metadata["pending_availability_minor"] == "2000"
    unknown = await failure(pay_out(client, "x-3", seller, "xacct_" + "a" * 26, 100))
    assert (unknown.code, unknown.reason) == (Code.NOT_FOUND, "EXTERNAL_ACCOUNT_NOT_FOUND")
    disable = payout_service_pb2.DisableExternalAccountRequest(request_id="d-1", id=external)
    disabled = await client.payouts.DisableExternalAccount(disable, metadata=client.md)
    assert disabled.external_account.state == payout_pb2.EXTERNAL_ACCOUNT_STATE_DISABLED
    off = await failure(pay_out(client, "x-4", seller, external, 100))
    assert (off.code, off.reason) == (Code.FAILED_PRECONDITION, "EXTERNAL_ACCOUNT_DISABLED")
    # Another tenant's destination is as unknown as one that does not exist.
    theirs = await destination(rail.api.b, "dest-b", "12345678")
    hidden = await failure(pay_out(client, "x-5", seller, theirs, 100))
    assert hidden.reason == "EXTERNAL_ACCOUNT_NOT_FOUND"
    assert await available(client, seller) == 3_000
    listed = await client.payouts.ListPayouts(
        payout_service_pb2.ListPayoutsRequest(account_id=seller), metadata=client.md
    )
    assert list(listed.payouts) == []
    bad = await failure(
        client.payouts.CreateExternalAccount(
            payout_service_pb2.CreateExternalAccountRequest(
                request_id="bad",
                rail="swift",
                currency_code="USD",
                routing_reference="",
                account_number="12-34",
            ),
            metadata=client.md,
        )
    )
    assert bad.code == Code.INVALID_ARGUMENT
    assert {f for f, _ in bad.field_violations} == {"rail", "routing_reference", "account_number"}
    assert "12-34" not in bad.message


async def test_a_payouts_holds_move_only_with_the_payout(rail: Rail) -> None:
    client = rail.api.a
    seller, _ = await client.fund("seller", 3_000)
    external = await destination(client, "dest", "12345678")
    payout = await pay_out(client, "po-h", seller, external, 1_000, method=STANDARD)
    void = money_movement_service_pb2.VoidTransferRequest(
        request_id="v-1", transfer_id=payout.hold_transfer_id
    )
    owned = await failure(client.movements.VoidTransfer(void, metadata=client.md))
    assert (owned.code, owned.reason) == (Code.FAILED_PRECONDITION, "TRANSFER_OWNED")
    assert owned.metadata["owner_id"] == payout.id
    post = money_movement_service_pb2.PostTransferRequest(
        request_id="p-1", transfer_id=payout.hold_transfer_id
    )
    assert (await failure(client.movements.PostTransfer(post, metadata=client.md))).reason == (
        "TRANSFER_OWNED"
    )
    assert await available(client, seller) == 2_000


async def test_inbound_credit_once_per_reference_then_returned(rail: Rail) -> None:
    client = rail.api.a
    seller = (await client.open("seller")).id
    rail.bank.send_credit(rail.api.tenant_a, seller, 3_000, "USD", "wire-1", "customer wire")
    rail.bank.send_credit(rail.api.tenant_a, seller, 3_000, "USD", "wire-1", "customer wire")

    async def received() -> list[payout_pb2.InboundTransfer] | None:
        listed = await client.payouts.ListInboundTransfers(
            payout_service_pb2.ListInboundTransfersRequest(account_id=seller), metadata=client.md
        )
        return list(listed.inbound_transfers) or None

    [inbound] = await eventually(received)
    assert (inbound.rail_reference, inbound.amount_minor) == ("wire-1", 3_000)
    await asyncio.sleep(0.3)  # the duplicate delivery has been worked by now
    assert len(await received() or []) == 1
    assert await posted(client, seller) == 3_000
    rail.bank.return_credit("wire-1", "R10")

    async def returned() -> payout_pb2.InboundTransfer | None:
        got = await client.payouts.GetInboundTransfer(
            payout_service_pb2.GetInboundTransferRequest(id=inbound.id), metadata=client.md
        )
        ok = got.inbound_transfer.state == payout_pb2.INBOUND_TRANSFER_STATE_RETURNED
        return got.inbound_transfer if ok else None

    back = await eventually(returned)
    assert back.return_reason == "R10"
    assert await posted(client, seller) == 0
    unknown = await failure(
        client.payouts.GetInboundTransfer(
            payout_service_pb2.GetInboundTransferRequest(id="inb_" + "a" * 26), metadata=client.md
        )
    )
    assert (unknown.code, unknown.reason) == (Code.NOT_FOUND, "INBOUND_TRANSFER_NOT_FOUND")


async def test_reconcile_finds_every_injected_break_and_nothing_else(rail: Rail) -> None:
    client = rail.api.a
    seller, _ = await client.fund("seller", 9_000)
    external = await destination(client, "dest", "12345678")
    paid = [await pay_out(client, f"po-{i}", seller, external, 1_000 + i) for i in range(3)]
    for payout in paid:
        await in_state(client, payout.id, State.PAYOUT_STATE_POSTED)
    rail.bank.send_credit(rail.api.tenant_a, seller, 500, "USD", "ach-1")
    await eventually(lambda: _inbound_count(client, seller))
    clean = await client.payouts.Reconcile(
        payout_service_pb2.ReconcileRequest(rail="simulated"), metadata=client.md
    )
    assert (clean.matched, list(clean.breaks)) == (4, [])
    kind = payout_pb2.SettlementLineKind
    line = payout_pb2.SettlementLine
    report = [
        line(kind=kind.SETTLEMENT_LINE_KIND_PAYOUT, reference=paid[0].id, amount_minor=1_000,
             currency_code="USD", state="POSTED"),
        line(kind=kind.SETTLEMENT_LINE_KIND_PAYOUT, reference=paid[0].id, amount_minor=1_000,
             currency_code="USD", state="POSTED"),  # duplicate
        line(kind=kind.SETTLEMENT_LINE_KIND_PAYOUT, reference=paid[1].id, amount_minor=1_002,
             currency_code="USD", state="POSTED"),  # off by one minor unit
        # paid[2] missing from the report
        line(kind=kind.SETTLEMENT_LINE_KIND_INBOUND, reference="ach-1", amount_minor=500,
             currency_code="USD", state="RETURNED"),  # wrong state
        line(kind=kind.SETTLEMENT_LINE_KIND_INBOUND, reference="ach-404", amount_minor=7,
             currency_code="USD", state="RECEIVED"),  # missing in the ledger
    ]  # fmt: skip
    found = await client.payouts.Reconcile(
        payout_service_pb2.ReconcileRequest(rail="simulated", lines=report), metadata=client.md
    )
    breaks = {(payout_pb2.ReconciliationBreakKind.Name(b.kind), b.reference) for b in found.breaks}
    assert breaks == {
        ("RECONCILIATION_BREAK_KIND_DUPLICATE_IN_REPORT", paid[0].id),
        ("RECONCILIATION_BREAK_KIND_AMOUNT_MISMATCH", paid[1].id),
        ("RECONCILIATION_BREAK_KIND_MISSING_IN_REPORT", paid[2].id),
        ("RECONCILIATION_BREAK_KIND_STATE_MISMATCH", "ach-1"),
        ("RECONCILIATION_BREAK_KIND_MISSING_IN_LEDGER", "ach-404"),
    }
    assert found.matched == 1
    assert await posted(client, seller) == 9_000 - 3_003 + 500  # nothing changed


async def _inbound_count(client: Client, account: str) -> int | None:
    listed = await client.payouts.ListInboundTransfers(
        payout_service_pb2.ListInboundTransfersRequest(account_id=account), metadata=client.md
    )
    return len(listed.inbound_transfers) or None


async def test_the_reconcile_command_reports_breaks_and_exits_1(rail: Rail, tmp_path: Path) -> None:
    client = rail.api.a
    seller, _ = await client.fund("seller", 5_000)
    external = await destination(client, "dest", "12345678")
    paid = await pay_out(client, "po-cli", seller, external, 1_234)
    await in_state(client, paid.id, State.PAYOUT_STATE_POSTED)
    clean = tmp_path / "clean.csv"
    write_settlement_csv(rail.bank.settlement_report(), clean)
    env = {
        **os.environ,
        "DATABASE_URL": rail.api.dsn,
        "MM_RAIL_DIR": str(tmp_path / "rail"),
        "MM_LOG_FORMAT": "json",
    }
    command = ["reconcile", "--tenant", rail.api.tenant_a]
    ok = await run_cli([*command, "--report", str(clean)], env)
    assert ok.returncode == 0, ok.stderr
    assert "matched 1" in ok.stdout
    # Without --report: the rail's own report, the same.
    own = await run_cli(command, env)
    assert own.returncode == 0, own.stderr
    [line] = rail.bank.settlement_report()
    broken = tmp_path / "broken.csv"
    write_settlement_csv([replace(line, amount_minor=line.amount_minor - 1)], broken)
    bad = await run_cli([*command, "--report", str(broken)], env)
    assert bad.returncode == 1, bad.stderr
    assert "AMOUNT_MISMATCH" in bad.stdout
    assert paid.id in bad.stdout


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


async def run_cli(args: list[str], env: dict[str, str]) -> Ran:
    """`moneymovement <args>` in a process of its own, without blocking the server's loop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "moneymovement", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


async def test_the_file_rail_pays_out_through_daily_files(dsn: str, tmp_path: Path) -> None:
    """The same worker on a batch rail: a payout goes out as a line of today's outgoing
    file; the bank's settlement file then posts it and brings a credit in."""
    directory = tmp_path / "bank-files"
    api = await start_api(dsn, MM_RAIL="file", MM_RAIL_DIR=str(directory), MM_PAYOUT_POLL_S="0.05")
    try:
        client = api.a
        seller, _ = await client.fund("seller", 5_000)
        response = await client.payouts.CreateExternalAccount(
            payout_service_pb2.CreateExternalAccountRequest(
                request_id="dest", rail="file", currency_code="USD",
                routing_reference="110000000", account_number="000123456789",
            ),
            metadata=client.md,
        )  # fmt: skip
        payout = await pay_out(client, "po-file", seller, response.external_account.id, 1_500)
        await in_state(client, payout.id, State.PAYOUT_STATE_PROCESSING)

        async def sent() -> list[str] | None:
            files = sorted((directory / "outgoing").glob("*.csv"))
            lines = [ln for f in files for ln in f.read_text().splitlines()[1:]]
            return lines or None

        [line] = await eventually(sent)
        assert line.startswith(f"{payout.id},{api.tenant_a},1500,USD,INSTANT,110000000,6789,")
        assert "000123456789" not in line  # never the account number
        incoming = directory / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        (incoming / "2026-12-03.csv").write_text(
            "kind,tenant_id,reference,amount_minor,currency_code,state,account_id\n"
            f"PAYOUT,{api.tenant_a},{payout.id},1500,USD,POSTED,\n"
            f"INBOUND,{api.tenant_a},ach-9,800,USD,RECEIVED,{seller}\n"
        )
        await in_state(client, payout.id, State.PAYOUT_STATE_POSTED)
        await eventually(lambda: _inbound_count(client, seller))
        assert await posted(client, seller) == 5_000 - 1_500 + 800
        clean = await client.payouts.Reconcile(
            payout_service_pb2.ReconcileRequest(rail="file"), metadata=client.md
        )
        assert (clean.matched, list(clean.breaks)) == (2, [])
    finally:
        await stop_api(api)
    await assert_ledger_consistent(dsn)


async def test_a_return_of_spent_money_waits_and_moves_nothing_until_it_can(rail: Rail) -> None:
    """The rail takes back a credit the account has already paid on: nothing is taken
    from money that is not there (no overdraft, no money created or lost), the inbound
    transfer stays RECEIVED and reconciliation shows the break; once the account has the
    money again, the waiting return is made, once."""
    client = rail.api.a
    seller = (await client.open("seller")).id
    rail.bank.send_credit(rail.api.tenant_a, seller, 2_000, "USD", "wire-s")
    await eventually(lambda: _inbound_count(client, seller))
    funding = await client.open(
        "spend-sink", normal_balance=account_pb2.NORMAL_BALANCE_DEBIT,
        overdraft_mode=account_pb2.OVERDRAFT_MODE_UNLIMITED,
    )  # fmt: skip
    await client.pay("spend", seller, funding.id, 1_500)  # spent: 500 left
    rail.bank.return_credit("wire-s", "R10")
    await asyncio.sleep(1.0)  # several worker rounds try it
    assert await posted(client, seller) == 500
    [inbound] = (
        await client.payouts.ListInboundTransfers(
            payout_service_pb2.ListInboundTransfersRequest(account_id=seller), metadata=client.md
        )
    ).inbound_transfers
    assert inbound.state == payout_pb2.INBOUND_TRANSFER_STATE_RECEIVED
    found = await client.payouts.Reconcile(
        payout_service_pb2.ReconcileRequest(rail="simulated"), metadata=client.md
    )
    assert [
        (payout_pb2.ReconciliationBreakKind.Name(b.kind), b.reference) for b in found.breaks
    ] == [("RECONCILIATION_BREAK_KIND_STATE_MISMATCH", "wire-s")]
    await client.pay("top-up", funding.id, seller, 1_500)

    async def returned() -> bool | None:
        got = await client.payouts.GetInboundTransfer(
            payout_service_pb2.GetInboundTransferRequest(id=inbound.id), metadata=client.md
        )
        return got.inbound_transfer.state == payout_pb2.INBOUND_TRANSFER_STATE_RETURNED or None

    await eventually(returned)
    await asyncio.sleep(0.3)
    assert await posted(client, seller) == 0  # 2,000 in, 1,500 out, 1,500 in, 2,000 back
