"""The process lifecycle: the database, migrations, the server (built by bootstrap.py),
signals and a graceful stop."""

from __future__ import annotations

import asyncio
import errno
import signal
import socket
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import structlog

from moneymovement.bootstrap import build_server
from moneymovement.config import Settings
from moneymovement.observability import metrics
from moneymovement.observability.logging import quiet_connection_resets
from moneymovement.observability.metrics import configure_metrics
from moneymovement.observability.tracing import configure_tracing
from moneymovement.storage.database import switch_to_service_role
from moneymovement.storage.migrate import migrate
from moneymovement.storage.session import Database
from moneymovement.transport.server import ApiServer

log = structlog.get_logger("moneymovement")

# The server went away under a session: stopped, crashed, or the connection dropped.
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
# OSErrors that mean the network path to the database, not a file or a bug of ours.
_NETWORK_ERRNOS = frozenset(
    {
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.ENETDOWN,
        errno.EHOSTDOWN,
        errno.ETIMEDOUT,
        errno.EADDRNOTAVAIL,
    }
)


class SetupError(Exception):
    """A mistake in the set-up that the operator can fix (a setting, a second server, the
    database's address or password). Its message says what is wrong and what to do, in
    one line; the command prints it and exits 1, without a traceback."""


@contextmanager
def database_url(
    settings: Settings, *, owner: str, exclusive: bool = False
) -> Iterator[tuple[str, bool]]:
    """The DSN to use and whether it is the embedded server.

    With DATABASE_URL set, that server is used and nothing is started. Otherwise the
    embedded PostgreSQL under MM_DATA_DIR is started (and stopped on exit), or, when
    another process of ours already runs it, that one is used, unless `exclusive`.

    Args:
        settings: MM_DATA_DIR and DATABASE_URL.
        owner: Who we are, for a second process to name us, e.g.
            "moneymovement serve on 127.0.0.1:50051".
        exclusive: Refuse (SetupError) to use an embedded server another process runs:
            `serve`'s, which would lose its database when that process stops.

    Raises:
        SetupError: `exclusive`, and another process runs the embedded server; or the
            block met a database it could not use (database_problem's message).
        EmbeddedPostgresError: The embedded server cannot be placed or started.
    """
    if settings.database_url:
        with _told_plainly(settings.database_url, configured=True):
            yield settings.database_url, False
        return
    from moneymovement import devdb  # the embedded extra is only needed in this mode

    placement = devdb.place_cluster(settings.data_dir / "pg")
    running = devdb.running_server(placement.data_dir)
    if running is not None:
        if exclusive:
            raise SetupError(_in_use(settings, running.owner, running.owner_pid))
        with _told_plainly(running.dsn, configured=False):
            yield running.dsn, True
        return
    if placement.moved_because:
        log.info(
            "embedded_postgres_relocated",
            data_dir=str(placement.data_dir),
            binaries=str(placement.pginstall),
            why=placement.moved_because,
        )
    server = devdb.EmbeddedPostgres(placement.data_dir, pginstall=placement.pginstall, owner=owner)
    try:
        server.start()
    except devdb.EmbeddedPostgresInUse as error:  # started by another in the meantime
        if exclusive:
            raise SetupError(_in_use(settings, error.owner, error.owner_pid)) from None
        raise
    try:
        with _told_plainly(server.dsn, configured=False):
            yield server.dsn, True
    finally:
        server.stop()


@contextmanager
def _told_plainly(dsn: str, *, configured: bool) -> Iterator[None]:
    """Turns the block's failure to use the database at `dsn` into a SetupError."""
    try:
        yield
    except Exception as error:
        problem = database_problem(error, dsn, configured=configured)
        if problem is None:
            raise
        raise SetupError(problem.message) from error


def _in_use(settings: Settings, owner: str, owner_pid: int | None) -> str:
    pid = f" (pid {owner_pid})" if owner_pid is not None else ""
    return (
        f"another {owner or 'process'}{pid} already runs the embedded PostgreSQL of "
        f"MM_DATA_DIR={settings.data_dir}, and would stop it under this server when it exits: "
        "stop that one first, or give this one its own MM_DATA_DIR and MM_LISTEN_ADDRESS"
    )


async def serve(
    settings: Settings, dsn: str, *, embedded: bool, dev_token_file: Path | None
) -> None:
    """Serves until SIGTERM or SIGINT, then drains and closes the pool."""
    tracing = configure_tracing(settings)
    meters = configure_metrics(settings)
    if embedded:
        applied = await migrate(dsn)
        log.info("migrations_applied", applied=applied)
    database = await Database.connect(dsn, max_size=settings.pool_max_size)
    metrics.observe_pool(database.pool_gauges)
    server = build_server(settings, database, dsn=dsn)  # dsn: to LISTEN for token changes
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(quiet_connection_resets)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        port = await server.start()
        if dev_token_file is not None:
            token = await dev_token(server, dev_token_file)
            print_dev_banner(port, token)
        await stopping.wait()
        log.info("shutdown_requested")
        await server.stop(settings.shutdown_grace_s)
    finally:
        await database.close()
        if tracing is not None:
            tracing.shutdown()  # flushes spans still queued for export
        if meters is not None:
            meters.shutdown()


async def dev_token(server: ApiServer, token_file: Path) -> str:
    """The development tenant's token, created once and kept in `token_file` (0600)."""
    token = await asyncio.to_thread(_read_token, token_file)
    if token and await server.directory.tenant_of(token) is not None:
        return token
    issued = await server.directory.create_tenant("dev")
    await asyncio.to_thread(_write_token, token_file, issued.token)
    return issued.token


def _read_token(token_file: Path) -> str:
    return token_file.read_text().strip() if token_file.exists() else ""


def _write_token(token_file: Path, token: str) -> None:
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.touch(mode=0o600)
    token_file.write_text(token + "\n")


def print_dev_banner(port: int, token: str) -> None:
    """What a developer needs to start calling the server."""
    print(
        f"""
moneymovement is serving on 127.0.0.1:{port} (embedded PostgreSQL; Ctrl-C stops both).
Development tenant token: {token}

  export MM_TOKEN={token}
  grpcurl -plaintext 127.0.0.1:{port} list
  grpcurl -plaintext -H "authorization: Bearer $MM_TOKEN" -d '{{"account_id": "acct_x"}}' \\
    127.0.0.1:{port} moneymovement.v1.AccountService/GetAccount

The README's walk-through goes on from here.
""",
        flush=True,
    )


@dataclass(frozen=True)
class DatabaseProblem:
    """Why the database could not be used, for an operator, in one line.

    Attributes:
        message: What is wrong and what to do.
        transient: The database may yet come (it did not answer, or is not migrated yet),
            as opposed to a setting that is wrong (the URL, the password, the database's
            name). `serve` starts anyway on a transient problem and reports NOT_SERVING
            until the database answers: under a supervisor, exiting would be a crash loop
            for as long as an outage lasts.
    """

    message: str
    transient: bool


async def check_database(dsn: str, *, timeout_s: float = 5.0) -> BaseException | None:
    """Connects once as the service would (then switching to its role); the failure, if any."""
    try:
        connection = await asyncpg.connect(dsn, timeout=timeout_s)
    except Exception as error:
        return error
    try:
        await switch_to_service_role(connection)
    except Exception as error:
        return error
    finally:
        await connection.close()
    return None


def database_problem(error: BaseException, dsn: str, *, configured: bool) -> DatabaseProblem | None:
    """The operator's view of `error`, met while connecting to or using `dsn`, or None when
    it is not about the database's address, credentials or availability (a bug: keep its
    traceback).

    Args:
        error: What was raised (storage errors are followed to their cause).
        dsn: The database's URL; its password is never shown.
        configured: Whether `dsn` is DATABASE_URL (else the embedded server's).
    """
    where = _where(dsn)
    fix = (
        "check DATABASE_URL"
        if configured
        else "the embedded PostgreSQL stops with the process that started it: run again"
    )
    for cause in _causes(error):
        if isinstance(cause, asyncpg.InvalidPasswordError):
            return DatabaseProblem(
                f"PostgreSQL at {where} refused {_user(dsn)}: {cause}; check the user name "
                "and password in DATABASE_URL",
                transient=False,
            )
        if isinstance(cause, asyncpg.InvalidAuthorizationSpecificationError):
            return DatabaseProblem(
                f"PostgreSQL at {where} refused {_user(dsn)}: {cause}; check the user name in "
                "DATABASE_URL (and sslmode, if the server requires encryption)",
                transient=False,
            )
        if isinstance(cause, asyncpg.InvalidCatalogNameError):
            return DatabaseProblem(
                f"PostgreSQL at {where}: {cause}; create it (CREATE DATABASE) or fix the "
                "database name at the end of DATABASE_URL",
                transient=False,
            )
        if isinstance(cause, asyncpg.ClientConfigurationError) or _raised_by_dsn_parser(cause):
            return DatabaseProblem(
                f"DATABASE_URL is malformed: {cause}; expected "
                "postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
                transient=False,
            )
        if isinstance(cause, asyncpg.UndefinedTableError):  # service_role, entries, ...
            return DatabaseProblem(
                f"the database at {where} has no moneymovement schema yet ({cause}): run "
                "`moneymovement migrate` with the same DATABASE_URL",
                transient=True,
            )
        if isinstance(cause, socket.gaierror):
            return DatabaseProblem(
                f"cannot resolve the database host {_host(dsn)!r}: "
                f"{(cause.strerror or str(cause)).lower()}; {fix} (the host name)",
                transient=True,
            )
        if isinstance(cause, ConnectionRefusedError):
            return DatabaseProblem(
                f"nothing accepts connections at {where} (connection refused): is PostgreSQL "
                f"running there? {fix} (host and port)",
                transient=True,
            )
        if isinstance(cause, TimeoutError):
            return DatabaseProblem(
                f"no answer from the database at {where} in time: is the host right and the "
                f"port open? {fix}",
                transient=True,
            )
        if isinstance(cause, asyncpg.CannotConnectNowError | asyncpg.TooManyConnectionsError):
            return DatabaseProblem(
                f"PostgreSQL at {where} takes no connection now: {cause}; try again shortly",
                transient=True,
            )
        if _network_failure(cause) or isinstance(cause, _CONNECTION_LOST):
            text = cause.strerror if isinstance(cause, OSError) and cause.strerror else cause
            return DatabaseProblem(
                f"cannot reach the database at {where}: {str(text).lower()}; {fix}",
                transient=True,
            )
    return None


def _network_failure(error: BaseException) -> bool:
    if isinstance(error, ConnectionError):  # refused, reset, aborted, broken pipe
        return True
    return isinstance(error, OSError) and error.errno in _NETWORK_ERRNOS


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _raised_by_dsn_parser(error: BaseException) -> bool:
    """A ValueError (or OverflowError) from asyncpg's parsing of the URL, not from our code."""
    if not isinstance(error, ValueError | OverflowError):
        return False
    frames = traceback.extract_tb(error.__traceback__)
    return any(
        "asyncpg" in frame.filename
        and ("connect_utils" in frame.filename or frame.name == "connect")
        for frame in frames
    )


def _where(dsn: str) -> str:
    host = _host(dsn)
    try:
        port = urlsplit(dsn).port or 5432
    except ValueError:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _host(dsn: str) -> str:
    try:
        return urlsplit(dsn).hostname or "localhost"
    except ValueError:
        return "(unparsable host)"


def _user(dsn: str) -> str:
    try:
        user = urlsplit(dsn).username
    except ValueError:
        user = None
    return f"user {user!r}" if user else "the login"
