"""AssetService messages to commands and back (docs/assets.md)."""

from __future__ import annotations

from moneymovement.domain.assets import Asset, Currency, CurrencyKind, as_currency
from moneymovement.domain.commands import RegisterAsset
from moneymovement.domain.errors import FieldReason
from moneymovement.domain.validation import MAX_DESCRIPTION_LENGTH, MAX_NAME_LENGTH, Checker
from moneymovement.transport.convert_common import timestamp
from moneymovement.v1 import asset_pb2
from moneymovement.v1 import asset_service_pb2 as pb

# The ISO table has about 160 codes: the default page holds all of them, and a tenant's
# first few hundred assets.
DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 1000

_KIND = {
    CurrencyKind.ISO_4217: asset_pb2.CURRENCY_KIND_ISO_4217,
    CurrencyKind.TENANT_ASSET: asset_pb2.CURRENCY_KIND_TENANT_ASSET,
}


def register_request(request: pb.RegisterAssetRequest) -> tuple[str, RegisterAsset]:
    """RegisterAsset's request id and command."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    code = check.asset_code("currency_code", request.currency_code)
    exponent = check.exponent("exponent", request.exponent)
    name = check.text("name", request.name, MAX_NAME_LENGTH)
    if not name:
        check.fail("name", FieldReason.REQUIRED, "is required")
    description = check.text("description", request.description, MAX_DESCRIPTION_LENGTH)
    check.raise_if_any()
    return request_id, RegisterAsset(code, exponent, name, description)


def page_size(request: pb.ListCurrenciesRequest) -> int:
    """ListCurrencies' page size (its token is the service's to check)."""
    check = Checker()
    size = check.page_size(
        "page_size", request.page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE
    )
    check.raise_if_any()
    return size


def currency_message(currency: Currency) -> asset_pb2.Currency:
    message = asset_pb2.Currency(
        currency_code=currency.code,
        exponent=currency.exponent,
        kind=_KIND[currency.kind],
        name=currency.name,
        description=currency.description,
    )
    if currency.created_at is not None:
        message.create_time.CopyFrom(timestamp(currency.created_at))
    return message


def asset_message(asset: Asset) -> asset_pb2.Currency:
    return currency_message(as_currency(asset))
