"""Flow guides run as written against a real `serve --dev` process, as the README's
walk-through is (test_readme_walkthrough.py): the ```sh block of the guide is run with
bash, only the port and the dev-token path changed, and what it prints is checked
against what the guide says it prints. If a guide rots, this fails."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import subprocess
from typing import Any

import pytest

from moneymovement.devdb import running_server_dsn
from tests.conftest import PROJECT_ROOT
from tests.e2e.test_process import ServeProcess, _wait_serving
from tests.e2e.test_readme_walkthrough import (
    README_ADDRESS,
    README_TOKEN_PATH,
    _json_documents,
    serve,
)
from tests.ledger_checks import assert_ledger_consistent

pytestmark = pytest.mark.timeout(120)
__all__ = ["serve"]  # the fixture, shared with the walk-through


async def _run_guide(
    serve: ServeProcess, name: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    text = (PROJECT_ROOT / "docs" / "flows" / name).read_text()
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)
    assert len(blocks) == 1, f"{name}: one ```sh block expected"
    script = (
        blocks[0]
        .replace(README_ADDRESS, f"127.0.0.1:{serve.port}")
        .replace(README_TOKEN_PATH, str(serve.data_dir / "dev-token"))
    )
    serve.start()
    await _wait_serving(serve)
    env = {**os.environ, "PATH": f"{PROJECT_ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    bash = functools.partial(
        subprocess.run, ["bash", "-c", script], cwd=PROJECT_ROOT, env=env,
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    run = await asyncio.to_thread(bash)
    return run, f"\n--- stdout ---\n{run.stdout}\n--- stderr ---\n{run.stderr}"


def _parts(balance: dict[str, Any]) -> tuple[str, str, str, str]:
    return tuple(  # type: ignore[return-value]
        balance[k]
        for k in ("posted_minor", "pending_availability_minor", "reserved_minor", "available_minor")
    )


async def test_the_seller_availability_guide_does_what_it_says(serve: ServeProcess) -> None:
    run, shown = await _run_guide(serve, "seller-availability.md")
    assert run.returncode == 0, shown
    top_up, paid, scheduled, released, again, after, payout, every, end = _json_documents(
        run.stdout
    )
    assert top_up["transfer"]["state"] == "STATE_POSTED", shown

    assert _parts(paid["balance"]) == ("10000", "9000", "1000", "0"), shown
    schedule = [(p["kind"], p["amount_minor"]) for p in paid["balance"]["availability_schedule"]]
    assert schedule == [("FUNDS_KIND_AVAILABILITY", "9000"), ("FUNDS_KIND_RESERVE", "1000")]
    rows = [(f["kind"], f["amount_minor"], f["state"]) for f in scheduled["funds"]]
    assert rows == [
        ("FUNDS_KIND_AVAILABILITY", "9000", "STATE_SCHEDULED"),
        ("FUNDS_KIND_RESERVE", "1000", "STATE_SCHEDULED"),
    ], shown

    [refused] = run.stderr.split("ERROR:")[1:]
    assert "Code: FailedPrecondition" in refused, shown
    assert "INSUFFICIENT_FUNDS" in refused, shown
    assert '"pending_availability_minor":"9000"' in refused, shown

    [part] = released["released"]
    assert (part["state"], part["amount_minor"], part["ended_amount_minor"]) == (
        "STATE_RELEASED_EARLY", "9000", "5000",
    ), shown  # fmt: skip
    assert released["released_minor"] == "5000", shown
    assert released["fee_transfer"]["amount_minor"] == "50", shown
    assert _parts(released["balance"]) == ("9950", "4000", "1000", "4950"), shown
    assert again == released, shown  # the retry: the recorded answer
    assert _parts(after["balance"]) == ("9950", "4000", "1000", "4950"), shown
    assert payout["transfer"]["state"] == "STATE_POSTED", shown

    rows = [(f["kind"], f["amount_minor"], f["state"]) for f in every["funds"]]
    assert sorted(rows) == sorted([
        ("FUNDS_KIND_AVAILABILITY", "9000", "STATE_RELEASED_EARLY"),
        ("FUNDS_KIND_AVAILABILITY", "4000", "STATE_SCHEDULED"),
        ("FUNDS_KIND_RESERVE", "1000", "STATE_SCHEDULED"),
    ]), shown  # fmt: skip
    balances = [_parts(b) for b in end["balances"]]
    assert balances == [
        ("5000", "4000", "1000", "0"),  # the seller
        ("4950", "0", "0", "4950"),  # payouts clearing
        ("50", "0", "0", "50"),  # fees
        ("0", "0", "0", "0"),  # the buyer
        ("10000", "0", "0", "10000"),  # funding
    ], shown

    dsn = running_server_dsn(serve.data_dir / "pg")
    assert dsn is not None
    await assert_ledger_consistent(dsn)


async def test_the_payouts_guide_does_what_it_says(serve: ServeProcess) -> None:
    run, shown = await _run_guide(serve, "payouts.md")
    assert run.returncode == 0, shown
    [created] = _json_documents(run.stderr)
    paid, failed, returned, balance, reconciled = _json_documents(run.stdout)
    assert created["payout"]["state"] in ("PAYOUT_STATE_PENDING", "PAYOUT_STATE_PROCESSING")
    assert created["payout"]["fee_transfer_id"], shown
    assert (paid["payout"]["state"], paid["payout"]["amount_minor"]) == (
        "PAYOUT_STATE_POSTED",
        "20000",
    ), shown
    assert failed["payout"]["state"] == "PAYOUT_STATE_FAILED", shown
    assert failed["payout"]["failure_reason"] == "account_closed", shown
    assert returned["payout"]["state"] == "PAYOUT_STATE_RETURNED", shown
    assert returned["payout"]["return_reason"] == "account_frozen", shown
    assert returned["payout"]["return_transfer_id"], shown
    assert balance["balance"]["posted_minor"] == "29900", shown
    assert balance["balance"]["available_minor"] == "29900", shown
    assert reconciled["matched"] == 3, shown
    assert reconciled["breaks"] == [], shown


def _available(balances: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Each balance's posted, available and debt to its reserve (grpcurl omits zeros)."""
    return [
        (
            b.get("posted_minor", "0"),
            b.get("available_minor", "0"),
            b.get("reserve_debt_minor", "0"),
        )
        for b in balances["balances"]
    ]


async def test_the_platform_charges_guide_does_what_it_says(serve: ServeProcess) -> None:
    run, shown = await _run_guide(serve, "platform-charges.md")
    assert run.returncode == 0, shown
    (
        platform_top_up, reserve_top_up, charge, promotion, refund, after_refund, payout,
        covered_refund, seller, after_cover, charge_2, end, reserve_transfers,
    ) = _json_documents(run.stdout)  # fmt: skip
    assert platform_top_up["transfer"]["amount_minor"] == "50000", shown
    assert reserve_top_up["transfer"]["amount_minor"] == "20000", shown
    share, fee = charge["transfers"]
    assert (share["amount_minor"], fee["amount_minor"]) == ("9000", "1000"), shown
    assert share["batch_id"] == fee["batch_id"], shown
    assert promotion["transfer"]["amount_minor"] == "500", shown
    share_back, fee_back = refund["transfers"]
    assert (share_back["amount_minor"], fee_back["amount_minor"]) == ("2700", "300"), shown
    assert share_back["reversal_of_transfer_id"] == share["id"], shown
    assert fee_back["reversal_of_transfer_id"] == fee["id"], shown
    assert _available(after_refund) == [
        ("6800", "6800", "0"), ("700", "700", "0"), ("49500", "49500", "0"),
        ("20000", "20000", "0"),
    ], shown  # fmt: skip
    assert payout["transfer"]["amount_minor"] == "6800", shown
    assert [t["amount_minor"] for t in covered_refund["transfers"]] == ["6300", "700"], shown
    assert seller["account"]["reserve_debt_minor"] == "6300", shown
    assert seller["account"]["negative_balance_reserve_account_id"], shown
    assert _available(after_cover) == [
        ("0", "0", "6300"), ("0", "0", "0"), ("13700", "13700", "0"),
    ], shown  # fmt: skip

    [refused] = run.stderr.split("ERROR:")[1:]
    assert "Code: FailedPrecondition" in refused, shown
    assert "REVERSAL_EXCEEDS_ORIGINAL" in refused, shown
    assert '"item_index": "0"' in refused or '"item_index":"0"' in refused, shown

    assert [t["amount_minor"] for t in charge_2["transfers"]] == ["7200", "800"], shown
    assert _available(end) == [
        ("900", "900", "0"), ("800", "800", "0"), ("20000", "20000", "0"),
        ("49500", "49500", "0"), ("6800", "6800", "0"),
    ], shown  # fmt: skip
    recovery, cover, top_up = reserve_transfers["transfers"]
    assert (recovery["amount_minor"], recovery["metadata"]) == (
        "6300", {"negative_balance_reserve": "RECOVERY"},
    ), shown  # fmt: skip
    assert recovery["credit_account_id"] == cover["debit_account_id"], shown
    assert cover["amount_minor"] == "6300", shown
    assert cover["metadata"] == {
        "negative_balance_reserve": "COVER",
        "reversal_transfer_id": covered_refund["transfers"][0]["id"],
    }, shown
    assert top_up["amount_minor"] == "20000", shown

    dsn = running_server_dsn(serve.data_dir / "pg")
    assert dsn is not None
    await assert_ledger_consistent(dsn)
