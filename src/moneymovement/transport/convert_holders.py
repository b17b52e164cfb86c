"""HolderService messages to commands and back (docs/platforms.md)."""

from __future__ import annotations

from datetime import datetime

from moneymovement.domain import ids
from moneymovement.domain.commands import CreateHolder, UpdateHolder
from moneymovement.domain.holders import (
    Holder,
    HolderBalance,
    HolderChanges,
    HolderQuery,
    HolderState,
)
from moneymovement.domain.validation import MAX_NAME_LENGTH, Checker
from moneymovement.transport.convert_common import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    enum_names,
    enum_value,
    named,
    timestamp,
)
from moneymovement.v1 import holder_pb2
from moneymovement.v1 import holder_service_pb2 as pb

_STATE = enum_names(holder_pb2.Holder.State, "STATE_")


def create_request(request: pb.CreateHolderRequest) -> tuple[str, CreateHolder]:
    """CreateHolder's request id and command."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    external_id = check.reference("external_id", request.external_id, required=True)
    name = check.text("name", request.name, MAX_NAME_LENGTH)
    metadata = check.metadata("metadata", request.metadata)
    check.raise_if_any()
    return request_id, CreateHolder(external_id=external_id, name=name, metadata=metadata)


def update_request(request: pb.UpdateHolderRequest) -> tuple[str, UpdateHolder]:
    """UpdateHolder's request id and command (fields unset: unchanged)."""
    check = Checker()
    request_id = check.request_id("request_id", request.request_id)
    holder = check.resource_id("holder_id", request.holder_id, ids.HOLDER)
    name = check.text("name", request.name, MAX_NAME_LENGTH) if request.HasField("name") else None
    metadata = check.metadata("metadata", request.metadata, allow_empty=True)
    state = enum_value(check, "state", _STATE, request.state)
    check.raise_if_any()
    changes = HolderChanges(
        name=name, metadata=metadata, state=None if state is None else HolderState(state)
    )
    return request_id, UpdateHolder(holder_id=holder, changes=changes)


def holder_id(request: pb.GetHolderRequest | pb.GetHolderBalancesRequest) -> str:
    """The required holder id of a read."""
    return named(request, "holder_id", ids.HOLDER)[1]


def holder_query(request: pb.ListHoldersRequest) -> tuple[HolderQuery, int]:
    """ListHolders' filters and page size."""
    check = Checker()
    size = check.page_size(
        "page_size", request.page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE
    )
    state = enum_value(check, "state", _STATE, request.state)
    external = check.reference("external_id", request.external_id)
    metadata = check.metadata("metadata", request.metadata)
    check.raise_if_any()
    where = HolderQuery(
        state=None if state is None else HolderState(state),
        external_id=external or None,
        metadata=metadata,
    )
    return where, size


def holder_message(holder: Holder) -> holder_pb2.Holder:
    """A Holder as its proto message."""
    return holder_pb2.Holder(
        holder_id=holder.id,
        external_id=holder.external_id,
        name=holder.name,
        metadata=holder.metadata,
        state=holder_pb2.Holder.State.Value("STATE_" + holder.state.value),
        version=holder.version,
        create_time=timestamp(holder.created_at),
        update_time=timestamp(holder.updated_at),
    )


def balances_response(as_of: datetime, sums: list[HolderBalance]) -> pb.GetHolderBalancesResponse:
    """GetHolderBalances' answer: one entry per currency."""
    return pb.GetHolderBalancesResponse(
        balances=[
            holder_pb2.HolderBalance(
                currency_code=s.currency_code,
                account_count=s.account_count,
                posted_minor=s.posted_minor,
                pending_inbound_minor=s.pending_inbound_minor,
                pending_outbound_minor=s.pending_outbound_minor,
                available_minor=s.available_minor,
                pending_availability_minor=s.pending_availability_minor,
                reserved_minor=s.reserved_minor,
            )
            for s in sums
        ],
        as_of_time=timestamp(as_of),
    )
