"""One real transfer through the service before the points: pgbench's scripts then save
an outcome row, and log an event, of the same size as the service's."""

from __future__ import annotations

import hashlib
import json

import grpc

from bench.accounts import account_id
from bench.database import (
    HOT_ACCOUNT,
    BenchTenant,
    probe_event_payload,
    probe_outcome,
    service_role,
)
from bench.pgbench import ScriptInputs
from bench.server import Server
from moneymovement.client import wait_until_serving
from moneymovement.v1 import money_movement_service_pb2 as mpb
from moneymovement.v1 import money_movement_service_pb2_grpc as mgrpc

PROBE_REQUEST_ID = "bench-probe"


async def probe(server: Server, dsn: str, tenant: BenchTenant) -> ScriptInputs:
    """One real transfer through the service; pgbench then saves an outcome like it and
    logs an event like its event, for the limits' tenant (the bench tenant if none).

    If the service's outcome or event cannot be read back (the server or the schema
    changed), the limits write stand-ins of the same shape, and the report says so.
    """
    role = await service_role(dsn)
    limits_tenant = tenant.limits_tenant_id or tenant.tenant_id
    try:
        await wait_until_serving(server.target)
        request = mpb.CreateTransferRequest(
            request_id=PROBE_REQUEST_ID,
            debit_account_id=account_id(2),
            credit_account_id=account_id(3),
            amount_minor=1,
            currency_code="USD",
        )
        async with grpc.aio.insecure_channel(server.target) as channel:
            await mgrpc.MoneyMovementServiceStub(channel).CreateTransfer(
                request, metadata=(("authorization", f"Bearer {tenant.token}"),), timeout=30
            )
        found = await probe_outcome(dsn, tenant.tenant_id, PROBE_REQUEST_ID)
        payload = await probe_event_payload(dsn, tenant.tenant_id, PROBE_REQUEST_ID)
    except Exception as error:
        fingerprint, outcome = _stand_in_outcome(tenant.tenant_id)
        note = (
            "the probe transfer's outcome or event could not be read "
            f"({type(error).__name__}: {str(error)[:200]}); pgbench saved a stand-in "
            "outcome and event of the service's shape"
        )
        return ScriptInputs(
            limits_tenant,
            tenant.accounts,
            HOT_ACCOUNT,
            fingerprint,
            outcome,
            False,
            role,
            _stand_in_payload(outcome),
            note,
        )
    fingerprint, outcome, traced = found
    return ScriptInputs(
        limits_tenant, tenant.accounts, HOT_ACCOUNT, fingerprint, outcome, traced, role, payload
    )


def _stand_in_outcome(tenant_id: str) -> tuple[str, str]:
    """A SHA-256 fingerprint and a transfer outcome shaped like the service's
    (service/outcomes.py), for when the probe's cannot be read."""
    transfer = {
        "id": "tr_" + "0" * 26,
        "request_id": PROBE_REQUEST_ID,
        "debit_account_id": account_id(2),
        "credit_account_id": account_id(3),
        "amount_minor": 1,
        "currency_code": "USD",
        "state": "POSTED",
        "description": "",
        "metadata": {},
        "expires_at": None,
        "posted_amount_minor": 1,
        "reversed_amount_minor": 0,
        "reversal_of_id": None,
        "reversal_ids": [],
        "batch_id": None,
        "trace_id": None,
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-01T00:00:00+00:00",
        "history": [],
    }
    digest = hashlib.sha256(f"{tenant_id}/{PROBE_REQUEST_ID}".encode()).hexdigest()
    return digest, json.dumps({"transfer": transfer})


def _stand_in_payload(outcome_json: str) -> str:
    """An event payload shaped like the service's (storage/rows.py): the transfer and its
    two accounts as documents of their rows."""
    transfer = json.loads(outcome_json)["transfer"]
    account = {
        "account_id": account_id(2),
        "external_id": None,
        "name": "bench 2",
        "currency_code": "USD",
        "normal_balance": "CREDIT",
        "overdraft_mode": "UNLIMITED",
        "overdraft_limit_minor": 0,
        "holder_id": None,
        "metadata": {},
        "state": "ACTIVE",
        "posted_debits_minor": 0,
        "posted_credits_minor": 0,
        "pending_debits_minor": 0,
        "pending_credits_minor": 0,
        "version": 1,
        "created_at": transfer["created_at"],
        "updated_at": transfer["created_at"],
    }
    return json.dumps({"transfers": [transfer], "accounts": [account, account]})
