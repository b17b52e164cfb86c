"""A TCP proxy for PostgreSQL that can lose the reply to a COMMIT.

Forwards bytes both ways for any number of connections. When armed with a marker (bytes
that only the interesting transaction sends, such as its request id, which travels in the
clear in the Bind message), the first connection that sent the marker and then the simple
query `COMMIT;` (what asyncpg sends to commit) has that COMMIT forwarded to the server and
is then dropped, both sides, before any of the server's reply reaches the client. The
server commits; the client only sees its connection die. The proxy disarms itself after
one drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field

# A simple-query message: 'Q', int32 length (including itself), "COMMIT;" and a NUL.
_COMMIT = re.compile(rb"Q\x00\x00\x00\x0cCOMMIT;\x00", re.IGNORECASE)
_ROLLBACK = re.compile(rb"Q\x00\x00\x00.ROLLBACK;?\x00", re.IGNORECASE | re.DOTALL)
_CHUNK = 65536


@dataclass(eq=False)
class _Link:
    """One proxied connection."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    dropped: bool = False
    saw_marker: bool = False
    tail: bytes = b""


@dataclass
class TcpProxy:
    """Listens on 127.0.0.1:<port> and forwards to upstream_host:upstream_port."""

    upstream_host: str
    upstream_port: int
    port: int = 0
    drops: int = 0
    connections: int = 0
    _marker: bytes | None = None
    _server: asyncio.Server | None = None
    _links: set[_Link] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def arm(self, marker: bytes) -> None:
        """Drop the next connection that commits a transaction which sent `marker`."""
        self._marker = marker
        for link in self._links:
            link.saw_marker = False

    def disarm(self) -> None:
        self._marker = None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            self._drop(link)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        link = _Link(client=writer, server=up_writer)
        self._links.add(link)
        tasks = [
            asyncio.create_task(self._pump_to_server(link, reader)),
            asyncio.create_task(self._pump_to_client(link, up_reader)),
        ]
        self._tasks.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._tasks.difference_update(tasks)
            self._links.discard(link)
            self._drop(link)

    async def _pump_to_server(self, link: _Link, reader: asyncio.StreamReader) -> None:
        try:
            while not link.dropped:
                chunk = await reader.read(_CHUNK)
                if not chunk:
                    break
                # The marker may straddle two reads; a short Query message is one write
                # of asyncpg's and arrives whole, so it is looked for in this read only.
                window = link.tail + chunk
                link.tail = window[-len(self._marker or b"") :] if self._marker else b""
                lose_reply = False
                if self._marker is not None:
                    if self._marker in window:
                        link.saw_marker = True
                    if _ROLLBACK.search(chunk):
                        link.saw_marker = self._marker in chunk.rsplit(b"ROLLBACK", 1)[-1]
                    if link.saw_marker and _COMMIT.search(chunk):
                        lose_reply = True
                        # Set before forwarding: the reply must never reach the client.
                        link.dropped = True
                        self._marker = None
                        self.drops += 1
                link.server.write(chunk)
                await link.server.drain()
                if lose_reply:
                    link.client.transport.abort()
                    # A graceful close: the COMMIT already written still reaches the server.
                    link.server.close()
                    return
        except (ConnectionError, OSError):
            pass
        finally:
            if not link.dropped:
                self._drop(link)

    async def _pump_to_client(self, link: _Link, reader: asyncio.StreamReader) -> None:
        try:
            while not link.dropped:
                chunk = await reader.read(_CHUNK)
                if not chunk or link.dropped:
                    break
                link.client.write(chunk)
                await link.client.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not link.dropped:
                self._drop(link)

    def _drop(self, link: _Link) -> None:
        link.dropped = True
        for writer in (link.client, link.server):
            with contextlib.suppress(Exception):
                writer.close()
