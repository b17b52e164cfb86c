"""The short, seeded version of the bank chaos test (`make chaos` runs the long one), with
its event watcher (the audit's `events` lines) and the sellers' reserve (`reserve`)."""

from __future__ import annotations

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
    assert "  reserve: " in "\n".join(result.lines)


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
