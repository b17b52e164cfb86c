"""Input rules shared by every entry point: bounds, formats and the currency table.

The transport layer calls these while it turns a request into a command, so that a bad
request is refused, whole and with every offending field named, before any database work.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from moneymovement.domain import ids
from moneymovement.domain.assets import MAX_EXPONENT, UNKNOWN_CURRENCY_TEXT, is_asset_code
from moneymovement.domain.errors import FieldReason, FieldViolation, InvalidInput
from moneymovement.domain.money import INT64_MAX, is_known_currency

MAX_METADATA_KEYS = 50
MAX_METADATA_VALUE_LENGTH = 500
MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 500
MAX_REFERENCE_LENGTH = 128
MAX_BATCH_GET = 100
MAX_BATCH_TRANSFERS = 1000

_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_METADATA_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,40}")


class Checker:
    """Collects field violations so that one reply names every bad field."""

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix
        self.violations: list[FieldViolation] = []

    def nested(self, prefix: str) -> Checker:
        """A checker whose field paths start with `prefix` and that reports here."""
        child = Checker(self._prefix + prefix)
        child.violations = self.violations
        return child

    def fail(self, field: str, reason: FieldReason, description: str) -> None:
        """Records one violation."""
        self.violations.append(FieldViolation(self._prefix + field, reason, description))

    def raise_if_any(self) -> None:
        """Raises InvalidInput naming every violation found so far."""
        if self.violations:
            raise InvalidInput(list(self.violations))

    def request_id(self, field: str, value: str) -> str:
        """Required; 1 to 128 characters from [A-Za-z0-9._:-]."""
        return self.reference(field, value, required=True)

    def reference(self, field: str, value: str, *, required: bool = False) -> str:
        """A caller's identifier (external id, holder id): [A-Za-z0-9._:-], at most 128."""
        if not value:
            if required:
                self.fail(field, FieldReason.REQUIRED, "is required")
            return value
        if len(value) > MAX_REFERENCE_LENGTH:
            self.fail(field, FieldReason.TOO_LONG, f"at most {MAX_REFERENCE_LENGTH} characters")
        elif not _TOKEN_CHARS.fullmatch(value):
            self.fail(field, FieldReason.INVALID_FORMAT, "only letters, digits and ._:-")
        return value

    def resource_id(self, field: str, value: str, prefix: str) -> str:
        """Required server-generated id with the given type prefix."""
        if not value:
            self.fail(field, FieldReason.REQUIRED, "is required")
        elif not ids.is_id(value, prefix):
            self.fail(field, FieldReason.INVALID_FORMAT, f"must look like {prefix}_<26 chars>")
        return value

    def text(self, field: str, value: str, max_length: int) -> str:
        """Optional free text of bounded length, without NUL characters (which PostgreSQL
        text cannot hold)."""
        if len(value) > max_length:
            self.fail(field, FieldReason.TOO_LONG, f"at most {max_length} characters")
        elif "\x00" in value:
            self.fail(field, FieldReason.INVALID_FORMAT, "must not contain NUL characters")
        return value

    def currency(
        self, field: str, value: str, *, required: bool = True, assets: bool = False
    ) -> str:
        """An ISO 4217 code from the server's table; with `assets`, also any code of a
        tenant asset's shape, which the write transaction then checks against the
        tenant's registered assets (domain/assets.py, require_known): only the database
        knows them, and an unregistered one gets this same answer there."""
        if not value:
            if required:
                self.fail(field, FieldReason.REQUIRED, "is required")
        elif not (is_known_currency(value) or (assets and is_asset_code(value))):
            self.fail(field, FieldReason.UNKNOWN_CURRENCY, UNKNOWN_CURRENCY_TEXT)
        return value

    def asset_code(self, field: str, value: str) -> str:
        """A code to register: 3 to 12 of [A-Z0-9], a letter first (ISO 4217 codes of
        the table have this shape too; the ledger refuses them, ASSET_CODE_RESERVED)."""
        if not value:
            self.fail(field, FieldReason.REQUIRED, "is required")
        elif not is_asset_code(value):
            self.fail(
                field, FieldReason.INVALID_FORMAT, "3 to 12 of [A-Z0-9], starting with a letter"
            )
        return value

    def exponent(self, field: str, value: int) -> int:
        """Minor units per major unit as a power of ten: 0 to MAX_EXPONENT."""
        if not 0 <= value <= MAX_EXPONENT:
            self.fail(field, FieldReason.OUT_OF_RANGE, f"must be 0 to {MAX_EXPONENT}")
        return value

    def amount(self, field: str, value: int, *, allow_zero: bool = False) -> int:
        """A positive int64 amount in minor units (or zero where zero means 'all')."""
        lowest = 0 if allow_zero else 1
        if not lowest <= value <= INT64_MAX:
            self.fail(field, FieldReason.OUT_OF_RANGE, f"must be {lowest} to {INT64_MAX}")
        return value

    def non_negative(self, field: str, value: int) -> int:
        """An int64 that must be >= 0."""
        if value < 0:
            self.fail(field, FieldReason.OUT_OF_RANGE, "must be >= 0")
        return value

    def metadata(
        self, field: str, values: Mapping[str, str], *, allow_empty: bool = False
    ) -> dict[str, str]:
        """At most 50 keys of [A-Za-z0-9_.-]{1,40}; values of at most 500 characters."""
        if len(values) > MAX_METADATA_KEYS:
            self.fail(field, FieldReason.TOO_MANY, f"at most {MAX_METADATA_KEYS} keys")
        for key, value in values.items():
            if not _METADATA_KEY.fullmatch(key):
                self.fail(f"{field}[{key[:40]}]", FieldReason.INVALID_FORMAT, "bad key")
            if len(value) > MAX_METADATA_VALUE_LENGTH:
                self.fail(f"{field}[{key[:40]}]", FieldReason.TOO_LONG, "value too long")
            elif "\x00" in value:
                self.fail(f"{field}[{key[:40]}]", FieldReason.INVALID_FORMAT, "NUL in value")
            if not value and not allow_empty:
                self.fail(f"{field}[{key[:40]}]", FieldReason.REQUIRED, "empty value")
        return dict(values)

    def metadata_keys(self, field: str, keys: Sequence[str]) -> tuple[str, ...]:
        """A filter's metadata keys: at most 50, each a metadata key. Returned sorted and
        without repeats, so that the same set of keys is the same filter (and page token
        scope) however the caller orders it."""
        if len(keys) > MAX_METADATA_KEYS:
            self.fail(field, FieldReason.TOO_MANY, f"at most {MAX_METADATA_KEYS} keys")
        for index, key in enumerate(keys):
            if not _METADATA_KEY.fullmatch(key):
                self.fail(f"{field}[{index}]", FieldReason.INVALID_FORMAT, "bad key")
        return tuple(sorted(set(keys)))

    def page_size(self, field: str, value: int, *, default: int, maximum: int) -> int:
        """0 means the default; otherwise 1 to `maximum`."""
        if value == 0:
            return default
        if not 1 <= value <= maximum:
            self.fail(field, FieldReason.OUT_OF_RANGE, f"must be 0 to {maximum}")
            return default
        return value
