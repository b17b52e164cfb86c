"""A dedicated connection that LISTENs: how servers hear of changes made elsewhere.

Used for token changes (storage/tenants.py) and for committed events (the event
stream's wake-ups). Notifications arrive only while the connection lives, so its owner
waits on `wait_lost` and treats the time without one as "anything may have changed".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from moneymovement.storage.database import translated_errors
from moneymovement.storage.queries import query
from moneymovement.storage.spans import connection_class


class Listening:
    """A live LISTEN connection."""

    def __init__(self, connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        self._connection = connection
        self._lost = lost
        self._busy = asyncio.Lock()  # one query at a time on the connection

    async def execute(self, sql: str, *args: Any) -> None:
        """Runs a statement on the connection (a reply on another channel, say)."""
        async with self._busy:
            await self._connection.execute(sql, *args)

    async def wait_lost(self, check_every_s: float) -> None:
        """Returns when the connection is gone. Every `check_every_s` a trivial query
        proves it alive: a half-open connection (a silent network partition) would
        otherwise look healthy while notifications are no longer arriving."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), timeout=check_every_s)
            if self._lost.is_set():
                return
            try:
                async with self._busy, translated_errors():
                    await self._connection.fetchval(query("ping"), timeout=check_every_s)
            except Exception:
                return


@asynccontextmanager
async def listening(
    dsn: str, channels: Mapping[str, Callable[[str], None]], *, application_name: str
) -> AsyncIterator[Listening]:
    """LISTENs on each channel until exit, calling its callback with each payload.

    Raises:
        DatabaseUnavailable: the database cannot be reached.
    """
    lost = asyncio.Event()
    async with translated_errors():
        connection = await asyncpg.connect(
            dsn,
            timeout=5,
            server_settings={"application_name": application_name},
            connection_class=connection_class(),
        )
    try:
        connection.add_termination_listener(lambda _connection: lost.set())
        async with translated_errors():
            for channel, callback in channels.items():
                await connection.add_listener(channel, _payload_to(callback))
        yield Listening(connection, lost)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), timeout=2)
        if not connection.is_closed():
            connection.terminate()


def _payload_to(callback: Callable[[str], None]) -> Callable[[object, int, str, object], None]:
    def notified(_connection: object, _pid: int, _channel: str, payload: object) -> None:
        callback(str(payload))

    return notified
