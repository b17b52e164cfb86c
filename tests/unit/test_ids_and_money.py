"""Identifiers and the currency table."""

import re

import pytest

from moneymovement.domain import ids
from moneymovement.domain.money import CURRENCY_EXPONENTS, fits_int64, is_known_currency

PREFIXES = [ids.ACCOUNT, ids.TRANSFER, ids.BATCH, ids.TENANT, ids.TOKEN]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_new_id_shape(prefix: str) -> None:
    value = ids.new_id(prefix)

    assert re.fullmatch(rf"{prefix}_[a-z2-7]{{26}}", value)
    assert ids.is_id(value, prefix)


def test_new_ids_are_random() -> None:
    values = {ids.new_id(ids.ACCOUNT) for _ in range(1000)}

    assert len(values) == 1000
    # Random, not time-ordered: the first body characters vary across ids.
    assert len({value[5] for value in values}) > 16


@pytest.mark.parametrize(
    "value",
    [
        "tr_" + "a" * 26,  # another prefix
        "acct_" + "A" * 26,  # uppercase
        "ACCT_" + "a" * 26,
        "acct_" + "a" * 25,  # too short
        "acct_" + "a" * 27,  # too long
        "acct-" + "a" * 26,
        "acct_" + "a" * 25 + "1",  # not base32
        "acct_" + "a" * 26 + "\n",
        "",
    ],
)
def test_is_id_refuses(value: str) -> None:
    assert not ids.is_id(value, ids.ACCOUNT)


@pytest.mark.parametrize(
    ("code", "exponent"), [("JPY", 0), ("USD", 2), ("EUR", 2), ("BHD", 3), ("CLF", 4)]
)
def test_currency_exponents(code: str, exponent: int) -> None:
    assert CURRENCY_EXPONENTS[code] == exponent
    assert is_known_currency(code)


def test_every_currency_code_is_three_uppercase_letters() -> None:
    bad = [code for code in CURRENCY_EXPONENTS if not re.fullmatch(r"[A-Z]{3}", code)]

    assert bad == []
    assert len(CURRENCY_EXPONENTS) > 150
    assert set(CURRENCY_EXPONENTS.values()) == {0, 2, 3, 4}


@pytest.mark.parametrize("code", ["XAU", "XTS", "usd", ""])
def test_unknown_currencies(code: str) -> None:
    assert not is_known_currency(code)


def test_fits_int64() -> None:
    assert fits_int64(2**63 - 1)
    assert fits_int64(-(2**63))
    assert not fits_int64(2**63)
    assert not fits_int64(-(2**63) - 1)
