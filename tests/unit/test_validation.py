"""Checker: every input rule, and that one reply names every bad field."""

import pytest

from moneymovement.domain import ids
from moneymovement.domain.errors import FieldReason, FieldViolation, InvalidInput
from moneymovement.domain.validation import Checker

INT64_MAX = 2**63 - 1


def reasons(checker: Checker) -> list[tuple[str, FieldReason]]:
    return [(v.field, v.reason) for v in checker.violations]


# --- request_id ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["r", "req-1", "2025.03.01:batch_7", "A" * 128])
def test_request_id_accepted(value: str) -> None:
    checker = Checker()

    assert checker.request_id("request_id", value) == value
    assert checker.violations == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", FieldReason.REQUIRED),
        ("A" * 129, FieldReason.TOO_LONG),
        ("has space", FieldReason.INVALID_FORMAT),
        ("slash/no", FieldReason.INVALID_FORMAT),
        ("ünïcode", FieldReason.INVALID_FORMAT),
        ("line\n", FieldReason.INVALID_FORMAT),
    ],
)
def test_request_id_refused(value: str, reason: FieldReason) -> None:
    checker = Checker()

    checker.request_id("request_id", value)

    assert reasons(checker) == [("request_id", reason)]


def test_optional_reference_may_be_empty() -> None:
    checker = Checker()

    checker.reference("external_id", "")

    assert checker.violations == []


# --- resource ids ----------------------------------------------------------------------


def test_resource_id_accepts_a_new_id() -> None:
    checker = Checker()

    checker.resource_id("account_id", ids.new_id(ids.ACCOUNT), ids.ACCOUNT)

    assert checker.violations == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", FieldReason.REQUIRED),
        (ids.new_id(ids.TRANSFER), FieldReason.INVALID_FORMAT),
        (ids.new_id(ids.ACCOUNT).upper(), FieldReason.INVALID_FORMAT),
        (ids.new_id(ids.ACCOUNT) + "a", FieldReason.INVALID_FORMAT),
        (ids.new_id(ids.ACCOUNT)[:-1], FieldReason.INVALID_FORMAT),
        ("acct_" + "1" * 26, FieldReason.INVALID_FORMAT),  # 0, 1, 8, 9 are not base32
    ],
)
def test_resource_id_refused(value: str, reason: FieldReason) -> None:
    checker = Checker()

    checker.resource_id("account_id", value, ids.ACCOUNT)

    assert reasons(checker) == [("account_id", reason)]


# --- currency --------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["USD", "JPY"])
def test_known_currency(code: str) -> None:
    checker = Checker()

    checker.currency("currency_code", code)

    assert checker.violations == []


@pytest.mark.parametrize("code", ["XYZ", "usd", "US", "USDD", "XAU"])
def test_unknown_currency(code: str) -> None:
    checker = Checker()

    checker.currency("currency_code", code)

    assert reasons(checker) == [("currency_code", FieldReason.UNKNOWN_CURRENCY)]


def test_empty_currency_is_required_unless_optional() -> None:
    required, optional = Checker(), Checker()

    required.currency("currency_code", "")
    optional.currency("currency_code", "", required=False)

    assert reasons(required) == [("currency_code", FieldReason.REQUIRED)]
    assert optional.violations == []


# --- amounts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "allow_zero", "ok"),
    [
        (1, False, True),
        (INT64_MAX, False, True),
        (0, False, False),
        (-1, False, False),
        (INT64_MAX + 1, False, False),
        (0, True, True),
        (-1, True, False),
        (INT64_MAX + 1, True, False),
    ],
)
def test_amount_bounds(value: int, allow_zero: bool, ok: bool) -> None:
    checker = Checker()

    checker.amount("amount_minor", value, allow_zero=allow_zero)

    expected = [] if ok else [("amount_minor", FieldReason.OUT_OF_RANGE)]
    assert reasons(checker) == expected


# --- metadata --------------------------------------------------------------------------


def test_metadata_within_limits() -> None:
    checker = Checker()
    values = {f"key_{i}": "v" * 500 for i in range(50)}

    assert checker.metadata("metadata", values) == values
    assert checker.violations == []


def test_metadata_with_too_many_keys() -> None:
    checker = Checker()

    checker.metadata("metadata", {f"k{i}": "v" for i in range(51)})

    assert reasons(checker) == [("metadata", FieldReason.TOO_MANY)]


@pytest.mark.parametrize("key", ["has space", "emoji🙂", "", "k" * 41, "a/b"])
def test_metadata_bad_key(key: str) -> None:
    checker = Checker()

    checker.metadata("metadata", {key: "v"})

    assert reasons(checker) == [(f"metadata[{key[:40]}]", FieldReason.INVALID_FORMAT)]


def test_metadata_value_too_long() -> None:
    checker = Checker()

    checker.metadata("metadata", {"note": "x" * 501})

    assert reasons(checker) == [("metadata[note]", FieldReason.TOO_LONG)]


def test_metadata_empty_value_only_with_allow_empty() -> None:
    strict, patch = Checker(), Checker()

    strict.metadata("metadata", {"gone": ""})
    patch.metadata("metadata_patch", {"gone": ""}, allow_empty=True)

    assert reasons(strict) == [("metadata[gone]", FieldReason.REQUIRED)]
    assert patch.violations == []


def test_metadata_keys_are_one_sorted_set() -> None:
    checker = Checker()

    keys = checker.metadata_keys("metadata_keys", ["tier", "a.b-c_1", "tier", "x" * 40])

    assert keys == ("a.b-c_1", "tier", "x" * 40)
    assert checker.violations == []
    assert Checker().metadata_keys("metadata_keys", []) == ()


def test_metadata_keys_name_each_bad_key_by_its_index() -> None:
    checker = Checker()

    checker.metadata_keys("metadata_keys", ["ok", "", "bad key", "x" * 41])

    assert reasons(checker) == [
        ("metadata_keys[1]", FieldReason.INVALID_FORMAT),
        ("metadata_keys[2]", FieldReason.INVALID_FORMAT),
        ("metadata_keys[3]", FieldReason.INVALID_FORMAT),
    ]


def test_metadata_keys_at_most_fifty() -> None:
    checker = Checker()

    checker.metadata_keys("metadata_keys", [f"k{i}" for i in range(51)])

    assert reasons(checker) == [("metadata_keys", FieldReason.TOO_MANY)]


# --- page size -------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [(0, 25), (1, 1), (40, 40), (100, 100)])
def test_page_size_accepted(value: int, expected: int) -> None:
    checker = Checker()

    assert checker.page_size("page_size", value, default=25, maximum=100) == expected
    assert checker.violations == []


@pytest.mark.parametrize("value", [101, -1])
def test_page_size_out_of_range(value: int) -> None:
    checker = Checker()

    assert checker.page_size("page_size", value, default=25, maximum=100) == 25
    assert reasons(checker) == [("page_size", FieldReason.OUT_OF_RANGE)]


# --- nesting and reporting -------------------------------------------------------------


def test_nested_prefixes_field_paths_and_reports_to_the_parent() -> None:
    checker = Checker()

    item = checker.nested("transfers[3].")
    item.amount("amount_minor", 0)
    item.nested("source.").currency("currency_code", "ABC")

    assert reasons(checker) == [
        ("transfers[3].amount_minor", FieldReason.OUT_OF_RANGE),
        ("transfers[3].source.currency_code", FieldReason.UNKNOWN_CURRENCY),
    ]


def test_raise_if_any_is_silent_without_violations() -> None:
    Checker().raise_if_any()


def test_raise_if_any_carries_every_violation_in_order() -> None:
    checker = Checker()
    checker.request_id("request_id", "")
    checker.amount("amount_minor", -5)
    checker.currency("currency_code", "QQQ")

    with pytest.raises(InvalidInput) as caught:
        checker.raise_if_any()

    assert caught.value.violations == [
        FieldViolation("request_id", FieldReason.REQUIRED, "is required"),
        FieldViolation("amount_minor", FieldReason.OUT_OF_RANGE, f"must be 1 to {INT64_MAX}"),
        FieldViolation(
            "currency_code", FieldReason.UNKNOWN_CURRENCY, "not an ISO 4217 code we know"
        ),
    ]
    assert "request_id" in caught.value.message
    assert "currency_code" in caught.value.message
