"""The asyncpg pool and the translation of its failures into storage errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from moneymovement.storage.errors import DatabaseUnavailable, SerializationConflict
from moneymovement.storage.queries import query
from moneymovement.storage.spans import connection_class

# Unique violation on the request outcome key means a concurrent duplicate committed
# first: retrying the unit of work finds its outcome and replays it.
_REQUEST_KEY_CONSTRAINTS = {
    "request_outcomes_pkey",
    "transfers_tenant_id_request_id_batch_index_key",
}
# The binary jsonb format: a version byte, then the JSON text.
_JSONB_VERSION = b"\x01"
_EMPTY_OBJECT = _JSONB_VERSION + b"{}"
# Unique violations that mean a concurrent transaction claimed the same key first: the
# retry then sees it (an external id taken, say) and answers accordingly.
# A rail's settlement account, opened by the first payout or credit in its currency
# (domain/rail_ledger.py), has one id: two opening it at once meet on the key.
# Two registrations of one asset code (AssetService) meet on the assets' key likewise.
# A holder's external id, claimed by two creations at once, likewise (HolderService).
_CLAIMED_KEY_CONSTRAINTS = {
    "accounts_external_id", "accounts_pkey", "assets_pkey", "holders_external_id",
}  # fmt: skip
# Failures that another attempt may well not meet: serialization failures and deadlocks,
# and the waits a server's own timeouts cut short (lock_timeout, statement_timeout,
# idle_in_transaction_session_timeout). Retried as a unit, never taken for a poisoned batch.
_RETRYABLE = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.LockNotAvailableError,
    asyncpg.QueryCanceledError,
    asyncpg.IdleInTransactionSessionTimeoutError,
)
_CONNECTION_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


def _jsonb_out(value: object) -> bytes:
    if value == {}:  # most metadata: every account row written carries its own
        return _EMPTY_OBJECT
    return _JSONB_VERSION + json.dumps(value, separators=(",", ":")).encode()


def _jsonb_in(data: bytes) -> object:
    if data == _EMPTY_OBJECT:
        return {}
    return json.loads(data[1:])  # after the format's version byte


async def _init_connection(connection: asyncpg.Connection) -> None:
    # jsonb in and out as Python values, in the binary format: the text format's codec is
    # not used for jsonb inside row types and records, which the write pipeline's
    # statements pass (sql/ledger.sql). json (not jsonb) is not used by the schema.
    await connection.set_type_codec(
        "jsonb", encoder=_jsonb_out, decoder=_jsonb_in, schema="pg_catalog", format="binary"
    )
    await switch_to_service_role(connection)


async def switch_to_service_role(connection: asyncpg.Connection) -> None:
    """Makes everything the connection does subject to row-level security, whoever
    logged in (migrations/0003, 0004). Session-level on purpose: set once per connection
    and never changed (the custom reset below keeps it).

    Raises:
        DatabaseUnavailable: the database is not migrated, or the login may not switch
            to the service's role: the service must not go on as the login.
    """
    try:
        role = await connection.fetchval(query("set_service_role"))
    except (asyncpg.UndefinedTableError, asyncpg.InsufficientPrivilegeError) as error:
        raise DatabaseUnavailable(f"cannot switch to the service's role: {error}") from error
    if role is None:
        raise DatabaseUnavailable("the database has no service role: run `moneymovement migrate`")


async def _reset_connection(connection: asyncpg.Connection) -> None:
    """Nothing to reset on release.

    asyncpg's default reset sends "RESET ALL; UNLISTEN *; CLOSE ALL; ..." on every release:
    a round trip per request for session state this service never changes after the
    connection's first use (keep it that way: a session-level SET would now carry over
    to the next request; the tenant is declared per transaction, never per session).
    With a custom reset, asyncpg still rolls back a transaction a cancelled request left
    open (asyncpg 0.32, Connection._reset) before calling this.
    """
    del connection


async def create_pool(dsn: str, *, max_size: int) -> asyncpg.Pool:
    """A connection pool with the codecs the repositories expect.

    It opens connections on demand and none up front, so that a server started while
    the database is down still starts: it reports NOT_SERVING and answers UNAVAILABLE
    until the database is back, instead of exiting (and crash-looping under a supervisor).

    Raises:
        DatabaseUnavailable: the DSN is unusable.
    """
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=0,
            max_size=max_size,
            init=_init_connection,
            reset=_reset_connection,
            connection_class=connection_class(),  # a span per statement, when made
            # Statements are few and named; caching their plans saves a parse per call.
            statement_cache_size=256,
            server_settings={
                "application_name": "moneymovement",
                # Under SERIALIZABLE a sequential scan takes a predicate lock on the whole
                # relation, and every concurrent writer then conflicts (measured: ~10x
                # fewer transfers/s). The planner picks them on small or fresh tables;
                # every query here has an index to use instead.
                "enable_seqscan": "off",
            },
        )
    except _CONNECTION_ERRORS as error:
        raise DatabaseUnavailable(f"cannot connect to the database: {error}") from error
    assert pool is not None
    return pool


def translate(error: BaseException) -> BaseException:
    """The storage error an asyncpg failure stands for, or the error itself."""
    if isinstance(error, _RETRYABLE):
        return SerializationConflict(str(error))
    if isinstance(error, asyncpg.UniqueViolationError) and (
        error.constraint_name in _REQUEST_KEY_CONSTRAINTS
    ):
        return SerializationConflict(str(error), on_request_id=True)
    if isinstance(error, asyncpg.UniqueViolationError) and (
        error.constraint_name in _CLAIMED_KEY_CONSTRAINTS
    ):
        return SerializationConflict(str(error))
    if isinstance(error, _CONNECTION_ERRORS):
        return DatabaseUnavailable(str(error))
    return error


@asynccontextmanager
async def translated_errors() -> AsyncIterator[None]:
    """Re-raises asyncpg failures as storage errors."""
    try:
        yield
    except Exception as error:
        translated = translate(error)
        if translated is error:
            raise
        raise translated from error
