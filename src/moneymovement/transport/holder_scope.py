"""Which holder a call acts for, and the RPCs only the platform may call
(domain/holder_scope.py has the rules; docs/platforms.md, "Acting for a holder").

A token scoped to a holder always acts for it. A platform token acts for the holder
named in the "mm-holder" metadata, if any (as Stripe's Stripe-Account header does), and
for the platform otherwise. Checked here, before the request is read: a refusal cannot
depend on the ids the request names.
"""

from __future__ import annotations

from moneymovement.domain.errors import FieldReason, FieldViolation, InvalidInput
from moneymovement.domain.holder_scope import forbidden, mismatch
from moneymovement.domain.holders import is_holder_id
from moneymovement.service.tenants import Grant

HOLDER_HEADER = "mm-holder"

# What only the platform decides: freezing, early releases, assets, holders themselves,
# bank destinations, payouts and reconciliation. Every other RPC answers a call acting
# for a holder as if the holder's data were all there is.
PLATFORM_ONLY = frozenset(
    f"/moneymovement.v1.{name}"
    for name in (
        "AccountService/FreezeAccount",
        "AccountService/UnfreezeAccount",
        "FundsService/ReleaseFunds",
        "AssetService/RegisterAsset",
        "HolderService/CreateHolder",
        "HolderService/UpdateHolder",
        "PayoutService/CreateExternalAccount",
        "PayoutService/GetExternalAccount",
        "PayoutService/ListExternalAccounts",
        "PayoutService/DisableExternalAccount",
        "PayoutService/CreatePayout",
        "PayoutService/CancelPayout",
        "PayoutService/Reconcile",
    )
)


def acting_for(grant: Grant, metadata: dict[str, str]) -> str | None:
    """The holder a call acts for (None: the platform).

    Raises:
        InvalidInput: mm-holder is not a holder id.
        Rejected: HOLDER_SCOPE_MISMATCH, a scoped token naming another holder.
    """
    named = metadata.get(HOLDER_HEADER)
    if named is None:
        return grant.holder_id
    named = named.strip()
    if not is_holder_id(named):
        raise InvalidInput(
            [
                FieldViolation(
                    HOLDER_HEADER,
                    FieldReason.INVALID_FORMAT,
                    'metadata mm-holder must be a holder id ("hld_" and 26 of [a-z2-7])',
                )
            ]
        )
    if grant.holder_id is not None and named != grant.holder_id:
        raise mismatch(grant.holder_id)
    return named


def require_allowed(method: str, holder_id: str | None) -> None:
    """Refuses an RPC only the platform may call, when the call acts for a holder.

    Raises:
        Rejected: HOLDER_SCOPE_FORBIDS.
    """
    if holder_id is not None and method in PLATFORM_ONLY:
        raise forbidden(holder_id, f"call {method.rsplit('/', 1)[-1]}")
