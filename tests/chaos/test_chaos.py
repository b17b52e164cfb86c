"""The short, seeded version of the bank chaos test (`make chaos` runs the long one)."""

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
