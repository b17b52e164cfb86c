"""Asset use cases: register a tenant asset, list the currencies a tenant may use
(docs/assets.md).

Registration is a command for the write pipeline (service/pipeline.py): idempotent by
request id, decided in the write transaction against the tenant's assets.
"""

from __future__ import annotations

from moneymovement.domain.assets import Asset, Currency, as_currency, iso_currencies
from moneymovement.domain.commands import RegisterAsset
from moneymovement.domain.errors import FieldReason, FieldViolation, InvalidInput
from moneymovement.service.pages import Page, decode_token, paginate, scope_of
from moneymovement.service.pipeline import WritePipeline
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.session import Session

_LISTING = "ListCurrencies"


class AssetService:
    """A tenant's assets, and every currency it may use."""

    def __init__(self, pipeline: WritePipeline, uow: UnitOfWork) -> None:
        self._pipeline = pipeline
        self._uow = uow

    async def register(self, caller: Caller, request_id: str, command: RegisterAsset) -> Asset:
        """Registers an asset (or answers the same registration made before).

        Raises:
            Rejected: ASSET_CODE_RESERVED, ASSET_CODE_TAKEN, ASSET_LIMIT_REACHED.
        """
        return await self._pipeline.submit(caller, request_id, command)

    async def currencies(self, caller: Caller, size: int, token: str) -> Page[Currency]:
        """A page of the ISO 4217 table and the tenant's assets together, by code.

        The assets are read in one statement outside any write transaction: an asset is
        never changed or deleted, so what is read stays true.
        """
        scope = scope_of(_LISTING)
        after = _after(decode_token(token, scope))
        iso = [c for c in iso_currencies() if after is None or c.code > after][: size + 1]

        async def work(session: Session) -> list[Asset]:
            return await session.assets.list(after, size + 1)

        own = [as_currency(a) for a in await self._uow.read(caller, work)]
        merged = sorted(iso + own, key=lambda c: c.code)[: size + 1]
        return paginate(merged, size, lambda c: [c.code], scope)


def _after(position: list[str | int] | None) -> str | None:
    """The last code of the previous page, from its token's position."""
    if position is None:
        return None
    if len(position) != 1 or not isinstance(position[0], str) or len(position[0]) > 12:
        raise InvalidInput(
            [
                FieldViolation(
                    "page_token", FieldReason.INVALID_PAGE_TOKEN, "not a page token of this listing"
                )
            ]
        )
    return position[0]
