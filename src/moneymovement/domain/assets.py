"""Assets beyond ISO 4217: codes a tenant registers, each with its exponent.

An asset is a currency of one tenant (a stable coin, loyalty points, a precious metal):
accounts count in its minor units exactly as in an ISO 4217 currency's. It is never
changed or deleted once registered, since accounts count in it; so what was read of it
stays true (docs/assets.md).

Pure: no I/O; the transaction's time comes in.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from moneymovement.domain.errors import FieldReason, FieldViolation, InvalidInput, Reason, Rejected
from moneymovement.domain.money import CURRENCY_EXPONENTS, is_known_currency

# 3 to 12 of [A-Z0-9], a letter first: any ISO 4217 code fits, so the one column of
# accounts holds both; those of the server's table are refused at registration.
ASSET_CODE = re.compile(r"[A-Z][A-Z0-9]{2,11}")
MAX_EXPONENT = 18  # 10^18 minor units per major unit still leaves 9.2 units in an int64
MAX_ASSETS_PER_TENANT = 1000
# The answer to a currency code that is neither in the ISO table nor registered by the
# caller's tenant: the same words the edge has always used, whoever registered it.
UNKNOWN_CURRENCY_TEXT = "not an ISO 4217 code we know"


class CurrencyKind(enum.StrEnum):
    """Where a code the server accepts comes from."""

    ISO_4217 = "ISO_4217"
    TENANT_ASSET = "TENANT_ASSET"


@dataclass(frozen=True)
class Asset:
    """A tenant's registered asset code."""

    code: str
    exponent: int
    name: str
    description: str
    request_id: str
    created_at: datetime


@dataclass(frozen=True)
class Currency:
    """A code the server accepts for a tenant, as ListCurrencies answers it."""

    code: str
    exponent: int
    kind: CurrencyKind
    name: str = ""
    description: str = ""
    created_at: datetime | None = None


def is_asset_code(code: str) -> bool:
    """Whether `code` has the shape of a currency code (ISO 4217 or a tenant asset)."""
    return ASSET_CODE.fullmatch(code) is not None


def iso_currencies() -> list[Currency]:
    """The server's ISO 4217 table, by code."""
    return [
        Currency(code, CURRENCY_EXPONENTS[code], CurrencyKind.ISO_4217)
        for code in sorted(CURRENCY_EXPONENTS)
    ]


def as_currency(asset: Asset) -> Currency:
    """A tenant asset as ListCurrencies shows it."""
    return Currency(
        asset.code, asset.exponent, CurrencyKind.TENANT_ASSET, asset.name, asset.description,
        asset.created_at,
    )  # fmt: skip


def require_known(code: str, assets: Mapping[str, Asset], field: str = "currency_code") -> None:
    """Refuses a code that is neither ISO 4217 nor one of the tenant's `assets`, with the
    answer the edge gives a malformed code (another tenant's asset is no different).

    Raises:
        InvalidInput: UNKNOWN_CURRENCY on `field`.
    """
    if not is_known_currency(code) and code not in assets:
        raise InvalidInput(
            [FieldViolation(field, FieldReason.UNKNOWN_CURRENCY, UNKNOWN_CURRENCY_TEXT)]
        )


def register(existing: Asset | None, registered: int, wanted: Asset) -> Asset:
    """The asset a registration answers: `existing` when it is the same registration,
    else `wanted`, new. `registered`: how many assets the tenant has.

    Raises:
        Rejected: ASSET_CODE_RESERVED, ASSET_CODE_TAKEN, ASSET_LIMIT_REACHED.
    """
    code = wanted.code
    if is_known_currency(code):
        raise Rejected(
            Reason.ASSET_CODE_RESERVED,
            f"{code} is an ISO 4217 currency every tenant has already",
            {"currency_code": code, "exponent": str(CURRENCY_EXPONENTS[code])},
        )
    if existing is not None:
        same = (existing.exponent, existing.name, existing.description) == (
            wanted.exponent, wanted.name, wanted.description,
        )  # fmt: skip
        if same:
            return existing
        raise Rejected(
            Reason.ASSET_CODE_TAKEN,
            f"{code} is registered already, with exponent {existing.exponent}; "
            "registered assets never change",
            {"currency_code": code, "exponent": str(existing.exponent)},
        )
    if registered >= MAX_ASSETS_PER_TENANT:
        raise Rejected(
            Reason.ASSET_LIMIT_REACHED,
            f"the tenant has {MAX_ASSETS_PER_TENANT} assets, the most it may have",
            {"limit": str(MAX_ASSETS_PER_TENANT)},
        )
    return wanted
