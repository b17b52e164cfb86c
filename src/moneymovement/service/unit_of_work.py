"""Who asks and until when, and the read side's unit of work.

Writes go through the write pipeline (service/pipeline.py), which owns their
transactions and retries. Reads run here, each in one read-only snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from moneymovement.domain.errors import database_unavailable, deadline_exceeded
from moneymovement.storage.errors import DatabaseUnavailable
from moneymovement.storage.session import Database, Session

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a conflicting transaction is retried."""

    max_attempts: int = 12
    first_backoff_s: float = 0.002
    max_backoff_s: float = 0.1


@dataclass(frozen=True)
class Caller:
    """Who asks, and until when: the tenant, the absolute deadline in event-loop time
    (None: no deadline), the W3C trace id of the request, when it came with one, and
    the holder the call acts for (None: the platform; domain/holder_scope.py)."""

    tenant_id: str
    deadline: float | None = None
    trace_id: str | None = None
    holder_id: str | None = None


class UnitOfWork:
    """Runs reads in read-only snapshots on one Database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def read(
        self, caller: Caller, work: Callable[[Session], Awaitable[T]], *, statements: int = 1
    ) -> T:
        """Runs `work`, a read of one statement (one round trip), or of several in one
        read-only snapshot (`statements` > 1: BEGIN and COMMIT around them). No retries
        are ever needed: reads take no SSI locks.

        Raises:
            DomainError: DEADLINE_EXCEEDED, DATABASE_UNAVAILABLE; and whatever `work` raises.
        """
        try:
            async with asyncio.timeout_at(caller.deadline):
                if statements == 1:
                    async with self.database.reader(caller.tenant_id) as session:
                        return await work(session)
                async with self.database.session(caller.tenant_id, write=False) as session:
                    return await work(session)
        except TimeoutError as error:
            raise deadline_exceeded() from error
        except DatabaseUnavailable as error:
            raise database_unavailable() from error
