"""Whole-ledger checks for tests to run after they act: the package's own `verify`.

tests/integration/test_verify.py breaks each invariant on purpose and asserts that the
matching check reports it, so a check that cannot fail would be caught there.
"""

from __future__ import annotations

from moneymovement.storage.verify import verify_ledger


async def assert_ledger_consistent(dsn: str) -> None:
    """Fails with every broken invariant and its offending rows, if any."""
    report = await verify_ledger(dsn)
    broken = {check.name: check.violations for check in report.checks if not check.ok}
    assert broken == {}, broken
