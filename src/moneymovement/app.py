"""The process lifecycle: the database, migrations, the server (built by bootstrap.py),
signals and a graceful stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

from moneymovement.bootstrap import build_server
from moneymovement.config import Settings
from moneymovement.observability import metrics
from moneymovement.observability.metrics import configure_metrics
from moneymovement.observability.tracing import configure_tracing
from moneymovement.storage.migrate import migrate
from moneymovement.storage.session import Database
from moneymovement.transport.server import ApiServer

log = structlog.get_logger("moneymovement")


@contextmanager
def database_url(settings: Settings) -> Iterator[tuple[str, bool]]:
    """The DSN to use and whether it is the embedded server.

    With DATABASE_URL set, that server is used and nothing is started. Otherwise the
    embedded PostgreSQL under MM_DATA_DIR is started (and stopped on exit), or, when
    another process of ours already runs it, that one is used.
    """
    if settings.database_url:
        yield settings.database_url, False
        return
    from moneymovement import devdb  # the embedded extra is only needed in this mode

    data_dir = settings.data_dir / "pg"
    running = devdb.running_server_dsn(data_dir)
    if running is not None:
        yield running, True
        return
    with devdb.EmbeddedPostgres(data_dir) as server:
        yield server.dsn, True


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
