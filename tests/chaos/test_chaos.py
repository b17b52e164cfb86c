"""The short, seeded version of the bank chaos test (`make chaos` runs the long one), with
its event watcher (the audit's `events` lines) and the sellers' reserve (`reserve`)."""

from __future__ import annotations

import re

import pytest

from tests.chaos.harness import ChaosConfig, run_chaos


@pytest.mark.timeout(240)
async def test_bank_chaos_short(capsys: pytest.CaptureFixture[str]) -> None:
    config = ChaosConfig(
        seed=20261122, duration_s=30, clients=8, server_kills=2, database_restarts=1
    )
    result = await run_chaos(config)
    with capsys.disabled():
        print("\n" + "\n".join(result.lines))
    assert result.passed, result.failures[:20]
    assert "events 4/4" in "\n".join(result.lines)
    # The reserve was used, not merely set up: covered refunds, recoveries, and moves
    # acting for the holder.
    [reserve] = [line for line in result.lines if line.startswith("  reserve: ")]
    numbers = re.search(
        r"(\d+) moves acting for the holder.*\((\d+) covered;.*\), (\d+) recoveries", reserve
    )
    assert numbers is not None, reserve
    assert all(int(n) > 0 for n in numbers.groups()), reserve


@pytest.mark.timeout(300)
async def test_three_replicas_survive_a_kill_and_a_rolling_restart(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = ChaosConfig(
        seed=7,
        duration_s=30,
        clients=8,
        server_kills=1,
        database_restarts=0,
        replicas=3,
        rolling_restarts=1,
    )
    result = await run_chaos(config)
    with capsys.disabled():
        print("\n" + "\n".join(result.lines))
    assert result.passed, result.failures[:20]
    assert "rolling restarts: 1" in "\n".join(result.lines)
    assert "events 4/4" in "\n".join(result.lines)
