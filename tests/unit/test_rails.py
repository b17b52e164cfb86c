"""The simulated rail, the bank's side of it, settlement CSV files and the file rail."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from moneymovement.rails.base import (
    InboundKind,
    InboundNotice,
    Rail,
    RailPayout,
    RailState,
    RailStatus,
    RailTimeout,
    RailUnavailable,
    SettlementKind,
    SettlementLine,
)
from moneymovement.rails.settlement import read_settlement_csv, write_settlement_csv
from moneymovement.rails.settlement_file import FileRail
from moneymovement.rails.simulated import SimulatedBank, SimulatedRail

START = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def payout(key: str = "po_1", last4: str = "0001", amount_minor: int = 1_000) -> RailPayout:
    return RailPayout(
        key=key,
        tenant_id="ten_a",
        amount_minor=amount_minor,
        currency_code="USD",
        method="STANDARD",
        routing_reference="021000021",
        last4=last4,
        fingerprint=f"fp_{last4}",
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bank(tmp_path: Path, clock: FakeClock) -> SimulatedBank:
    return SimulatedBank(tmp_path, clock=clock)


def simulated(
    directory: Path,
    clock: FakeClock,
    *,
    seed: int = 0,
    timeout_rate: float = 0.0,
    unavailable_rate: float = 0.0,
    duplicate_rate: float = 0.0,
    reorder: bool = False,
) -> SimulatedRail:
    """A rail whose payouts settle within 0.5 to 1.5 s and return 5 s after posting."""
    return SimulatedRail(
        directory,
        seed=seed,
        latency_s=1.0,
        return_after_s=5.0,
        timeout_rate=timeout_rate,
        unavailable_rate=unavailable_rate,
        duplicate_rate=duplicate_rate,
        reorder=reorder,
        clock=clock,
    )


# Payouts


async def test_a_key_is_received_once_however_often_it_is_submitted(
    tmp_path: Path, clock: FakeClock, bank: SimulatedBank
) -> None:
    rail: Rail = simulated(tmp_path, clock)
    assert await rail.status("po_1") is None
    first = await rail.submit(payout())
    again = await rail.submit(payout(amount_minor=999))  # a repeat is answered, never paid
    assert first == again == RailStatus("po_1", RailState.PROCESSING, 1_000, "USD")
    assert bank.received() == {"po_1": 1}
    assert bank.submissions() == {"po_1": 2}
    assert bank.payouts() == [payout()]


async def test_a_payout_posts_after_its_latency(tmp_path: Path, clock: FakeClock) -> None:
    rail = simulated(tmp_path, clock)
    await rail.submit(payout())
    clock.advance(0.49)  # latency is latency_s times a factor in [0.5, 1.5)
    assert (await rail.status("po_1")) == RailStatus("po_1", RailState.PROCESSING, 1_000, "USD")
    clock.advance(1.01)
    assert (await rail.status("po_1")) == RailStatus("po_1", RailState.POSTED, 1_000, "USD")


@pytest.mark.parametrize(("last4", "reason"), [("0002", "account_closed"), ("0003", "no_account")])
async def test_failing_destinations(
    tmp_path: Path, clock: FakeClock, last4: str, reason: str
) -> None:
    rail = simulated(tmp_path, clock)
    assert (await rail.submit(payout(last4=last4))).state is RailState.PROCESSING
    clock.advance(1.5)
    status = await rail.status("po_1")
    assert status is not None
    assert (status.state, status.reason) == (RailState.FAILED, reason)


async def test_a_frozen_account_posts_then_returns(tmp_path: Path, clock: FakeClock) -> None:
    rail = simulated(tmp_path, clock)
    await rail.submit(payout(last4="0004"))
    clock.advance(1.5)
    posted = await rail.status("po_1")
    assert posted is not None
    assert posted.state is RailState.POSTED
    clock.advance(5.0)
    returned = await rail.status("po_1")
    assert returned is not None
    assert (returned.state, returned.reason) == (RailState.RETURNED, "account_frozen")


async def test_a_lost_answer_still_received_the_payout(
    tmp_path: Path, clock: FakeClock, bank: SimulatedBank
) -> None:
    rail = simulated(tmp_path, clock)
    with pytest.raises(RailTimeout):
        await rail.submit(payout(last4="0005"))
    status = await rail.status("po_1")
    assert status is not None
    assert status.state is RailState.PROCESSING
    assert (await rail.submit(payout(last4="0005"))).state is RailState.PROCESSING
    assert bank.received() == {"po_1": 1}


async def test_an_unavailable_rail_receives_nothing(
    tmp_path: Path, clock: FakeClock, bank: SimulatedBank
) -> None:
    rail = simulated(tmp_path, clock)
    for _ in range(3):
        with pytest.raises(RailUnavailable):
            await rail.submit(payout(last4="0006"))
    assert await rail.status("po_1") is None
    assert bank.received() == {}


async def test_seeded_faults_let_a_retry_succeed(
    tmp_path: Path, clock: FakeClock, bank: SimulatedBank
) -> None:
    rail = simulated(tmp_path, clock, unavailable_rate=0.5)
    for _attempt in range(40):
        try:
            await rail.submit(payout())
            break
        except RailUnavailable:
            assert await rail.status("po_1") is None
    assert bank.received() == {"po_1": 1}

    always_lost = simulated(tmp_path, clock, timeout_rate=1.0)
    with pytest.raises(RailTimeout):
        await always_lost.submit(payout("po_2"))
    assert bank.received() == {"po_1": 1, "po_2": 1}


async def test_the_bank_fails_only_what_is_processing_and_returns_only_what_posted(
    tmp_path: Path, clock: FakeClock, bank: SimulatedBank
) -> None:
    rail = simulated(tmp_path, clock)
    await rail.submit(payout("po_fail"))
    await rail.submit(payout("po_return"))
    assert bank.fail_payout("po_unknown", "no_account") is False
    assert bank.return_payout("po_return", "account_closed") is False  # still PROCESSING
    assert bank.fail_payout("po_fail", "account_frozen") is True
    assert bank.fail_payout("po_fail", "no_account") is False  # already FAILED
    clock.advance(1.5)
    failed = await rail.status("po_fail")
    assert failed is not None
    assert (failed.state, failed.reason) == (RailState.FAILED, "account_frozen")
    assert bank.return_payout("po_fail", "account_closed") is False
    assert bank.fail_payout("po_return", "no_account") is False  # POSTED already
    assert bank.return_payout("po_return", "account_closed") is True
    returned = await rail.status("po_return")
    assert returned is not None
    assert (returned.state, returned.reason) == (RailState.RETURNED, "account_closed")


async def test_two_rails_on_one_directory_agree(
    tmp_path: Path, clock: FakeClock, bank: SimulatedBank
) -> None:
    one, other = simulated(tmp_path, clock, seed=7), simulated(tmp_path, clock, seed=7)
    await one.submit(payout("po_1", last4="0004"))
    await other.submit(payout("po_1", last4="0004"))  # the other process's retry
    for step in (0.0, 1.0, 0.5, 5.0):
        clock.advance(step)
        assert await one.status("po_1") == await other.status("po_1") == bank.status("po_1")
    assert bank.received() == {"po_1": 1}


def test_processes_submitting_the_same_keys_at_once_pay_each_once(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from pathlib import Path
        from moneymovement.rails.base import RailPayout
        from moneymovement.rails.simulated import SimulatedRail

        async def main() -> None:
            rail = SimulatedRail(Path(sys.argv[1]))
            for index in range(20):
                await rail.submit(
                    RailPayout(f"po_{index}", "ten_a", 100, "USD", "STANDARD", "r", "0001", "fp")
                )

        asyncio.run(main())
        """
    )
    workers = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)]) for _ in range(4)]
    assert [worker.wait(timeout=30) for worker in workers] == [0, 0, 0, 0]
    bank = SimulatedBank(tmp_path)
    assert bank.received() == {f"po_{index}": 1 for index in range(20)}
    assert set(bank.submissions().values()) == {4}


async def test_a_write_cut_short_by_a_kill_is_dropped(
    tmp_path: Path, clock: FakeClock, bank: SimulatedBank
) -> None:
    rail = simulated(tmp_path, clock)
    await rail.submit(payout("po_1"))
    with (tmp_path / "rail.jsonl").open("ab") as journal:
        journal.write(b'{"type":"payout_submitted","key":"po_torn"')  # no newline: killed
    assert await rail.status("po_torn") is None
    await rail.submit(payout("po_2"))
    assert SimulatedBank(tmp_path, clock=clock).received() == {"po_1": 1, "po_2": 1}


# Callbacks


async def test_callbacks_report_changes_and_may_repeat_them(
    tmp_path: Path, clock: FakeClock
) -> None:
    rail = simulated(tmp_path, clock, duplicate_rate=1.0)
    await rail.submit(payout("po_1"))
    await rail.submit(payout("po_2", last4="0002"))
    processing = await rail.callbacks()
    assert sorted(notice.key for notice in processing) == ["po_1", "po_1", "po_2", "po_2"]
    assert {notice.state for notice in processing} == {RailState.PROCESSING}
    assert await rail.callbacks() == []  # nothing changed
    clock.advance(1.5)
    settled = {(notice.key, notice.state) for notice in await rail.callbacks()}
    assert settled == {("po_1", RailState.POSTED), ("po_2", RailState.FAILED)}


async def test_reordered_callbacks_send_stale_processing_after_the_later_state(
    tmp_path: Path, clock: FakeClock
) -> None:
    rail = simulated(tmp_path, clock, reorder=True)
    keys = [f"po_{index}" for index in range(20)]
    for key in keys:
        await rail.submit(payout(key))
    clock.advance(1.5)
    notices = await rail.callbacks()  # the first call: every payout once, POSTED by now
    stale = [index for index, notice in enumerate(notices) if notice.state is RailState.PROCESSING]
    assert stale, "with reorder some stale notices are expected among 20 payouts"
    for index in stale:
        key = notices[index].key
        posted = notices.index(RailStatus(key, RailState.POSTED, 1_000, "USD"))
        assert posted < index
    assert sorted({notice.key for notice in notices}) == sorted(keys)


# Inbound


async def test_inbound_is_redelivered_until_acknowledged(
    tmp_path: Path, clock: FakeClock, bank: SimulatedBank
) -> None:
    rail = simulated(tmp_path, clock)
    credit = bank.send_credit("ten_a", "acct_1", 500, "USD", "in_1", "salary")
    bank.send_credit("ten_a", "acct_1", 500, "USD", "in_1", "salary")  # the rail's duplicate
    assert await rail.inbound() == [credit, credit]
    assert await rail.inbound() == [credit, credit]  # not acked: delivered again
    await rail.ack_inbound([credit])
    await rail.ack_inbound([credit])  # acknowledging twice changes nothing
    assert await rail.inbound() == []

    returned = bank.return_credit("in_1", "fraud_suspected")
    assert returned == InboundNotice(
        InboundKind.RETURN, "in_1", "ten_a", "acct_1", 500, "USD", "salary", "fraud_suspected"
    )
    assert await rail.inbound() == [returned]
    with pytest.raises(ValueError, match="in_unknown"):
        bank.return_credit("in_unknown", "fraud_suspected")


async def test_a_duplicate_arriving_after_delivery_survives_the_ack(
    tmp_path: Path, clock: FakeClock, bank: SimulatedBank
) -> None:
    rail = simulated(tmp_path, clock)
    credit = bank.send_credit("ten_a", "acct_1", 500, "USD", "in_1")
    delivered = await rail.inbound()
    bank.send_credit("ten_a", "acct_1", 500, "USD", "in_1")
    await rail.ack_inbound(delivered)
    assert await rail.inbound() == [credit]
    assert await simulated(tmp_path, clock).inbound() == [credit]  # another process agrees


async def test_settlement_report_lists_payouts_and_credits(
    tmp_path: Path, clock: FakeClock, bank: SimulatedBank
) -> None:
    rail = simulated(tmp_path, clock)
    await rail.submit(payout("po_1"))
    await rail.submit(payout("po_1"))
    await rail.submit(payout("po_2", last4="0002"))
    bank.send_credit("ten_b", "acct_9", 700, "EUR", "in_1")
    bank.send_credit("ten_b", "acct_9", 300, "EUR", "in_2")
    bank.send_credit("ten_b", "acct_9", 300, "EUR", "in_2")
    bank.return_credit("in_2", "account_closed")
    clock.advance(1.5)
    expected = [
        SettlementLine(SettlementKind.PAYOUT, "ten_a", "po_1", 1_000, "USD", "POSTED"),
        SettlementLine(SettlementKind.PAYOUT, "ten_a", "po_2", 1_000, "USD", "FAILED"),
        SettlementLine(SettlementKind.INBOUND, "ten_b", "in_1", 700, "EUR", "RECEIVED"),
        SettlementLine(SettlementKind.INBOUND, "ten_b", "in_2", 300, "EUR", "RETURNED"),
    ]
    assert await rail.settlement_report() == expected
    assert bank.settlement_report() == expected


# Settlement files


LINES = [
    SettlementLine(SettlementKind.PAYOUT, "ten_a", "po_1", 1_000, "USD", "POSTED"),
    SettlementLine(SettlementKind.INBOUND, "ten_a", "in_1", 5, "JPY", "RETURNED"),
]


def test_settlement_csv_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    write_settlement_csv(LINES, path)
    assert path.read_text().splitlines()[0] == (
        "kind,tenant_id,reference,amount_minor,currency_code,state"
    )
    assert read_settlement_csv(path) == LINES


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ("PAYOUT,ten_a,po_2,12.50,USD,POSTED", "amount_minor"),
        ("PAYOUT,ten_a,po_2,1250,USD,RECEIVED", "state"),
        ("REFUND,ten_a,po_2,1250,USD,POSTED", "kind"),
        ("PAYOUT,ten_a,po_2,1250,USD", "fewer fields"),
        ("PAYOUT,ten_a,po_2,1250,USD,POSTED,extra", "more fields"),
        ("PAYOUT,ten_a,po_2,1250,usd,POSTED", "currency_code"),
    ],
)
def test_a_malformed_settlement_line_is_named(tmp_path: Path, bad_line: str, problem: str) -> None:
    path = tmp_path / "report.csv"
    write_settlement_csv(LINES, path)
    path.write_text(path.read_text() + bad_line + "\n")
    with pytest.raises(ValueError, match=rf"line 4: .*{problem}"):
        read_settlement_csv(path)


def test_a_settlement_file_without_a_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_text("kind,tenant_id,reference,amount_minor,state\n")
    with pytest.raises(ValueError, match=r"line 1: missing column.*currency_code"):
        read_settlement_csv(path)


# The file rail


async def test_file_rail_sends_once_and_reads_the_banks_settlement(
    tmp_path: Path, clock: FakeClock
) -> None:
    rail: Rail = FileRail(tmp_path, clock=clock)
    assert await rail.status("po_1") is None
    assert (await rail.submit(payout("po_1"))).state is RailState.PROCESSING
    await rail.submit(payout("po_1"))
    outgoing = (tmp_path / "outgoing" / "2023-11-14.csv").read_text().splitlines()
    assert len(outgoing) == 2  # header and one payout
    assert "0001" in outgoing[1]
    assert await rail.status("po_1") == RailStatus("po_1", RailState.PROCESSING, 1_000, "USD")
    assert await rail.callbacks() == []

    (tmp_path / "incoming" / "2023-11-15.csv").write_text(
        "kind,tenant_id,reference,amount_minor,currency_code,state,account_id,reason\n"
        "PAYOUT,ten_a,po_1,1000,USD,FAILED,,account_closed\n"
        "INBOUND,ten_a,in_1,250,USD,RECEIVED,acct_1,\n"
        "INBOUND,ten_a,in_2,90,USD,RETURNED,acct_1,not_authorised\n"
    )
    failed = RailStatus("po_1", RailState.FAILED, 1_000, "USD", "account_closed")
    assert await rail.status("po_1") == failed
    assert await rail.callbacks() == [failed]
    assert await rail.callbacks() == []  # seen by this instance

    credit_1 = InboundNotice(InboundKind.CREDIT, "in_1", "ten_a", "acct_1", 250, "USD")
    credit_2 = InboundNotice(InboundKind.CREDIT, "in_2", "ten_a", "acct_1", 90, "USD")
    return_2 = InboundNotice(
        InboundKind.RETURN, "in_2", "ten_a", "acct_1", 90, "USD", reason="not_authorised"
    )
    assert await rail.inbound() == [credit_1, credit_2, return_2]
    await rail.ack_inbound([credit_1, credit_2])
    assert await FileRail(tmp_path).inbound() == [return_2]
    assert [line.reference for line in await rail.settlement_report()] == ["po_1", "in_1", "in_2"]


async def test_file_rail_needs_the_account_of_an_inbound_line(tmp_path: Path) -> None:
    rail = FileRail(tmp_path)
    write_settlement_csv(LINES, tmp_path / "incoming" / "day.csv")  # no account_id column
    with pytest.raises(ValueError, match="line 3: an INBOUND line needs account_id"):
        await rail.inbound()
