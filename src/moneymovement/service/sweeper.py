"""Releases expired holds in the background.

Holds past their expiry can never be captured whether or not this has run (PostTransfer
checks the time itself); the sweeper gives their reserved amounts back and marks them
EXPIRED. Every replica may run one: each hold is expired in its own transaction that
re-checks its state under a row lock, so a hold is released once however many sweep.
"""

from __future__ import annotations

import asyncio
import random

import structlog

from moneymovement.domain.errors import DomainError
from moneymovement.service.transfers import TransferService
from moneymovement.service.unit_of_work import Caller
from moneymovement.storage.errors import StorageError
from moneymovement.storage.session import Database

log = structlog.get_logger("moneymovement.sweeper")
_BATCH = 100
_PER_HOLD_S = 10.0


class HoldSweeper:
    """Expires due holds every `interval_s` seconds."""

    def __init__(self, database: Database, transfers: TransferService, interval_s: float) -> None:
        self._database = database
        self._transfers = transfers
        self._interval_s = interval_s

    async def sweep_once(self) -> int:
        """Expires the holds due now (up to a batch); returns how many this call ended."""
        loop = asyncio.get_running_loop()
        expired = 0
        due = await self._database.expired_holds(_BATCH)
        # Replicas sweeping at once start at different holds instead of all racing for the
        # oldest one; a hold that fails (a hot account, a deadline) is skipped, not allowed
        # to stop the round for every other tenant's holds.
        random.shuffle(due)
        for tenant_id, transfer_id in due:
            caller = Caller(tenant_id=tenant_id, deadline=loop.time() + _PER_HOLD_S)
            try:
                if await self._transfers.expire(caller, transfer_id) is not None:
                    expired += 1
            except (DomainError, StorageError) as error:
                log.warning("hold_expiry_failed", transfer_id=transfer_id, error=str(error))
            except Exception:
                # A surprise on one hold (say, a tenant row made by hand with an id of
                # another shape) must not stop every other tenant's holds from expiring.
                log.exception("hold_expiry_crashed", transfer_id=transfer_id)
        return expired

    async def run(self) -> None:
        """Sweeps until cancelled; a failed round is logged and retried next round.

        Any error is survived: a sweeper that died would leave expired holds reserved.
        """
        while True:
            try:
                while await self.sweep_once() == _BATCH:
                    pass  # a backlog: keep going without waiting
            except (DomainError, StorageError) as error:
                log.warning("hold_sweep_failed", error=str(error))
            except Exception:
                log.exception("hold_sweep_crashed")
            await asyncio.sleep(self._interval_s)
