"""Tenant assets: the shape of a code, the exponent's bounds, what the edge lets through
for the ledger to decide, and how a registration is decided."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from moneymovement.domain.assets import (
    MAX_ASSETS_PER_TENANT,
    Asset,
    CurrencyKind,
    iso_currencies,
    register,
    require_known,
)
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.commands import CreateAccount, CreateTransfers, RegisterAsset
from moneymovement.domain.errors import FieldReason, InvalidInput, Reason, Rejected
from moneymovement.domain.money import CURRENCY_EXPONENTS
from moneymovement.domain.transfers import TransferSpec
from moneymovement.domain.validation import Checker

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def asset(code: str = "USDC", exponent: int = 6, name: str = "USD Coin") -> Asset:
    return Asset(code, exponent, name, "", "req-1", NOW)


def reasons(checker: Checker) -> list[tuple[str, FieldReason]]:
    return [(v.field, v.reason) for v in checker.violations]


@pytest.mark.parametrize("code", ["XAU", "USDC", "POINTS", "A1B2C3D4E5F6", "EUR"])
def test_asset_code_shapes(code: str) -> None:
    checker = Checker()
    checker.asset_code("currency_code", code)
    assert checker.violations == []


@pytest.mark.parametrize(
    "code", ["AB", "usdc", "1COIN", "A1B2C3D4E5F6G", "US-D", "US D", "ÄBC", "US\x00"]
)
def test_malformed_asset_codes(code: str) -> None:
    checker = Checker()
    checker.asset_code("currency_code", code)
    assert reasons(checker) == [("currency_code", FieldReason.INVALID_FORMAT)]


def test_an_asset_code_is_required() -> None:
    checker = Checker()
    checker.asset_code("currency_code", "")
    assert reasons(checker) == [("currency_code", FieldReason.REQUIRED)]


@pytest.mark.parametrize(("exponent", "ok"), [(0, True), (18, True), (-1, False), (19, False)])
def test_exponent_bounds(exponent: int, ok: bool) -> None:
    checker = Checker()
    checker.exponent("exponent", exponent)
    assert reasons(checker) == ([] if ok else [("exponent", FieldReason.OUT_OF_RANGE)])


@pytest.mark.parametrize(("code", "passes"), [("POINTS", True), ("XAU", True), ("usd", False)])
def test_the_edge_lets_asset_shaped_codes_through_only_where_assets_go(
    code: str, passes: bool
) -> None:
    with_assets, iso_only = Checker(), Checker()
    with_assets.currency("currency_code", code, assets=True)
    iso_only.currency("currency_code", code)
    unknown = [("currency_code", FieldReason.UNKNOWN_CURRENCY)]
    assert reasons(with_assets) == ([] if passes else unknown)
    assert reasons(iso_only) == unknown  # payouts: rails move ISO 4217 currencies only


def test_an_unregistered_code_gets_the_edges_answer() -> None:
    edge = Checker()
    edge.currency("currency_code", "usd", assets=True)
    with pytest.raises(InvalidInput) as refused:
        require_known("POINTS", {})
    assert refused.value.violations == edge.violations
    assert str(refused.value) == str(InvalidInput(edge.violations))
    require_known("POINTS", {"POINTS": asset("POINTS")})
    require_known("JPY", {})


def test_a_registration_is_new_or_the_same_again() -> None:
    wanted = asset()
    assert register(None, 0, wanted) is wanted
    earlier = asset()
    again = Asset("USDC", 6, "USD Coin", "", "req-2", datetime(2026, 12, 1, tzinfo=UTC))
    assert register(earlier, 1, again) is earlier  # answered as registered first


@pytest.mark.parametrize(
    "other", [asset(exponent=2), asset(name="Coin"), Asset("USDC", 6, "USD Coin", "x", "r", NOW)]
)
def test_a_registered_code_never_changes(other: Asset) -> None:
    with pytest.raises(Rejected) as taken:
        register(asset(), 1, other)
    assert taken.value.reason is Reason.ASSET_CODE_TAKEN
    assert taken.value.metadata == {"currency_code": "USDC", "exponent": "6"}


@pytest.mark.parametrize("code", ["EUR", "JPY", "KWD", "CLF"])
def test_iso_codes_are_reserved(code: str) -> None:
    with pytest.raises(Rejected) as reserved:
        register(None, 0, asset(code))
    assert reserved.value.reason is Reason.ASSET_CODE_RESERVED
    exponent = str(CURRENCY_EXPONENTS[code])
    assert reserved.value.metadata == {"currency_code": code, "exponent": exponent}


def test_a_tenant_has_at_most_a_thousand_assets() -> None:
    assert register(None, MAX_ASSETS_PER_TENANT - 1, asset()) == asset()
    with pytest.raises(Rejected) as full:
        register(None, MAX_ASSETS_PER_TENANT, asset())
    assert (full.value.reason, full.value.metadata) == (
        Reason.ASSET_LIMIT_REACHED, {"limit": str(MAX_ASSETS_PER_TENANT)},
    )  # fmt: skip
    # The same registration again is answered even then.
    assert register(asset(), MAX_ASSETS_PER_TENANT, asset()) == asset()


def test_the_iso_table_is_listed_by_code() -> None:
    listed = iso_currencies()
    assert [c.code for c in listed] == sorted(CURRENCY_EXPONENTS)
    assert {c.kind for c in listed} == {CurrencyKind.ISO_4217}


def test_commands_name_their_non_iso_codes_for_the_lock() -> None:
    def spec(code: str) -> TransferSpec:
        return TransferSpec("acct_a", "acct_b", 1, code)

    assert CreateAccount("USD", NormalBalance.CREDIT).asset_codes() == ()
    assert CreateAccount("POINTS", NormalBalance.CREDIT).asset_codes() == ("POINTS",)
    batch = CreateTransfers([spec("USD"), spec("XAU"), spec("XAU"), spec("GOLD")])
    assert batch.asset_codes() == ("XAU", "GOLD")
    registration = RegisterAsset("GOLD", 3, "Gold")
    assert (registration.asset_codes(), registration.counts_assets) == (("GOLD",), True)
    assert not CreateAccount("USD", NormalBalance.CREDIT).counts_assets
