"""AccountService requests to commands, and accounts to messages."""

from __future__ import annotations

from typing import Protocol

from moneymovement.domain import ids
from moneymovement.domain.accounts import Account, AccountChanges, FreezeScope, OverdraftMode
from moneymovement.domain.balances import NormalBalance
from moneymovement.domain.commands import CreateAccount, FreezeAccount
from moneymovement.domain.errors import FieldReason
from moneymovement.domain.funds import NO_POLICY, validate_policy
from moneymovement.domain.queries import AccountQuery
from moneymovement.domain.reserve import FIELD as RESERVE_FIELD
from moneymovement.domain.validation import MAX_NAME_LENGTH, Checker
from moneymovement.transport.convert_common import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    enum_names,
    enum_value,
    timestamp,
)
from moneymovement.transport.convert_funds import funds_policy, policy_message
from moneymovement.v1 import account_pb2, account_service_pb2

NORMAL_BALANCE = enum_names(account_pb2.NormalBalance, "NORMAL_BALANCE_")
_OVERDRAFT_MODE = enum_names(account_pb2.OverdraftMode, "OVERDRAFT_MODE_")
_ACCOUNT_STATE = enum_names(account_pb2.Account.State, "STATE_")
_FREEZE_SCOPE = enum_names(account_pb2.FreezeScope, "FREEZE_SCOPE_")
_FREEZE_SCOPE_NUMBER = {None: 0} | {
    FreezeScope(name): number for number, name in _FREEZE_SCOPE.items()
}
MAX_FREEZE_REASON = 500


class _AccountRead(Protocol):
    account_id: str


class _AccountChange(Protocol):
    request_id: str
    account_id: str
    expected_version: int
    expected_attributes_version: int


def new_account(request: account_service_pb2.CreateAccountRequest) -> tuple[str, CreateAccount]:
    """CreateAccount's request id and command."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    currency = check.currency("currency_code", request.currency_code, assets=True)
    normal = enum_value(check, "normal_balance", NORMAL_BALANCE, request.normal_balance)
    if request.normal_balance == 0:
        check.fail("normal_balance", FieldReason.REQUIRED, "CREDIT or DEBIT is required")
    mode = enum_value(check, "overdraft_mode", _OVERDRAFT_MODE, request.overdraft_mode) or "NONE"
    limit = check.non_negative("overdraft_limit_minor", request.overdraft_limit_minor)
    if limit and mode != "LIMITED":
        check.fail(
            "overdraft_limit_minor",
            FieldReason.OUT_OF_RANGE,
            "a non-zero limit needs OVERDRAFT_MODE_LIMITED",
        )
    external_id = check.reference("external_id", request.external_id)
    holder_id = check.reference("holder_id", request.holder_id)
    name = check.text("name", request.name, MAX_NAME_LENGTH)
    metadata = check.metadata("metadata", request.metadata)
    policy = funds_policy(check, request.funds_policy) if request.HasField("funds_policy") else None
    reserve = _reserve_id(check, request.negative_balance_reserve_account_id)
    check.raise_if_any()
    assert normal is not None
    if policy is not None:
        validate_policy(policy, NormalBalance(normal))
    return request_id, CreateAccount(
        currency_code=currency,
        normal_balance=NormalBalance(normal),
        overdraft_mode=OverdraftMode(mode),
        overdraft_limit_minor=limit,
        external_id=external_id or None,
        name=name,
        holder_id=holder_id,
        metadata=metadata,
        funds_policy=policy or NO_POLICY,
        open_to_holders=request.open_to_holders,
        negative_balance_reserve_account_id=reserve,
    )


def _reserve_id(check: Checker, value: str) -> str:
    """An optional negative-balance reserve account id (empty: none given)."""
    if value:
        check.resource_id(RESERVE_FIELD, value, ids.ACCOUNT)
    return value


def account_id(request: _AccountRead) -> str:
    """The required account id of a request."""
    check = Checker()
    value = check.resource_id("account_id", request.account_id, ids.ACCOUNT)
    check.raise_if_any()
    return value


def account_change(request: _AccountChange) -> tuple[str, str, int | None, int | None]:
    """request_id, account_id, expected_version and expected_attributes_version of
    Freeze/Unfreeze/Close (0: not asked)."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    account = check.resource_id("account_id", request.account_id, ids.ACCOUNT)
    version, attributes = _expected_versions(check, request)
    check.raise_if_any()
    return request_id, account, version, attributes


def _expected_versions(check: Checker, request: _AccountChange) -> tuple[int | None, int | None]:
    version = check.non_negative("expected_version", request.expected_version)
    attributes = check.non_negative(
        "expected_attributes_version", request.expected_attributes_version
    )
    return version or None, attributes or None


def freeze_request(request: account_service_pb2.FreezeAccountRequest) -> tuple[str, FreezeAccount]:
    """FreezeAccount's request id and command (scope UNSPECIFIED: ALL)."""
    check = Checker()
    request_id, account, version, attributes = account_change(request)
    scope = enum_value(check, "scope", _FREEZE_SCOPE, request.scope)
    reason = check.text("reason", request.reason, MAX_FREEZE_REASON)
    check.raise_if_any()
    return request_id, FreezeAccount(
        account_id=account,
        expected_version=version,
        expected_attributes_version=attributes,
        scope=FreezeScope(scope) if scope else FreezeScope.ALL,
        reason=reason,
    )


def account_update(
    request: account_service_pb2.UpdateAccountRequest,
) -> tuple[str, str, AccountChanges, int | None, int | None]:
    """UpdateAccount's request id, account id, changes and expected versions (any change;
    attributes)."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    account = check.resource_id("account_id", request.account_id, ids.ACCOUNT)
    name = check.text("name", request.name, MAX_NAME_LENGTH) if request.HasField("name") else None
    metadata = check.metadata("metadata", request.metadata, allow_empty=True)
    mode = enum_value(check, "overdraft_mode", _OVERDRAFT_MODE, request.overdraft_mode)
    limit = None
    if request.HasField("overdraft_limit_minor"):
        limit = check.non_negative("overdraft_limit_minor", request.overdraft_limit_minor)
    version, attributes = _expected_versions(check, request)
    policy = funds_policy(check, request.funds_policy) if request.HasField("funds_policy") else None
    reserve: str | None = _reserve_id(check, request.negative_balance_reserve_account_id) or None
    if request.remove_negative_balance_reserve:
        if reserve is not None:
            check.fail(
                "remove_negative_balance_reserve",
                FieldReason.MUST_DIFFER,
                f"give {RESERVE_FIELD} or this, not both",
            )
        reserve = ""
    check.raise_if_any()
    if policy is not None:  # its ranges here; whether the account can have one, with it
        validate_policy(policy, NormalBalance.CREDIT)
    changes = AccountChanges(
        name=name,
        metadata_patch=metadata,
        overdraft_mode=None if mode is None else OverdraftMode(mode),
        overdraft_limit_minor=limit,
        funds_policy=policy,
        open_to_holders=request.open_to_holders if request.HasField("open_to_holders") else None,
        negative_balance_reserve_account_id=reserve,
    )
    return request_id, account, changes, version, attributes


def account_query(request: account_service_pb2.ListAccountsRequest) -> tuple[AccountQuery, int]:
    """ListAccounts' filters and page size."""
    check = Checker()
    size = check.page_size(
        "page_size", request.page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE
    )
    currency = check.currency("currency_code", request.currency_code, required=False, assets=True)
    state = enum_value(check, "state", _ACCOUNT_STATE, request.state)
    holder = check.reference("holder_id", request.holder_id)
    external = check.reference("external_id", request.external_id)
    metadata = check.metadata("metadata", request.metadata)
    keys = check.metadata_keys("metadata_keys", request.metadata_keys)
    check.raise_if_any()
    where = AccountQuery(
        currency_code=currency or None,
        state=state,
        holder_id=holder or None,
        external_id=external or None,
        metadata=metadata,
        metadata_keys=keys,
    )
    return where, size


def account_message(account: Account) -> account_pb2.Account:
    """An Account as its proto message."""
    return account_pb2.Account(
        id=account.id,
        external_id=account.external_id or "",
        name=account.name,
        currency_code=account.currency_code,
        normal_balance=account_pb2.NormalBalance.Value(
            "NORMAL_BALANCE_" + account.normal_balance.value
        ),
        overdraft_mode=account_pb2.OverdraftMode.Value(
            "OVERDRAFT_MODE_" + account.overdraft_mode.value
        ),
        overdraft_limit_minor=account.overdraft_limit_minor,
        holder_id=account.holder_id,
        metadata=account.metadata,
        state=account_pb2.Account.State.Value("STATE_" + account.state.value),
        version=account.version,
        attributes_version=account.attributes_version,
        create_time=timestamp(account.created_at),
        update_time=timestamp(account.updated_at),
        funds_policy=policy_message(account.funds_policy),
        freeze_scope=account_pb2.FreezeScope.Value(
            "FREEZE_SCOPE_"
            + (account.freeze_scope.value if account.freeze_scope else "UNSPECIFIED")
        ),
        freeze_reason=account.freeze_reason,
        open_to_holders=account.open_to_holders,
        negative_balance_reserve_account_id=account.negative_balance_reserve_account_id,
        reserve_debt_minor=account.reserve_debt_minor,
    )
