"""Releases expired holds in the background.

Holds past their expiry can never be captured whether or not this has run (PostTransfer
checks the time itself); the sweeper gives their reserved amounts back and marks them
EXPIRED. Every replica may run one: each expiry is a command of the write pipeline that
re-checks the hold's state under its row lock, so a hold is released once however many
sweep. A round's expiries are submitted together, so they commit in a few batches.
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
        due = await self._database.expired_holds(_BATCH)
        # Replicas sweeping at once start at different holds instead of all racing for the
        # oldest one; a hold that fails (a deadline, a surprise) is logged, not allowed to
        # stop the round for every other tenant's holds.
        random.shuffle(due)
        results = await asyncio.gather(
            *(self._expire(tenant_id, transfer_id) for tenant_id, transfer_id in due)
        )
        return sum(results)

    async def _expire(self, tenant_id: str, transfer_id: str) -> int:
        deadline = asyncio.get_running_loop().time() + _PER_HOLD_S
        try:
            expired = await self._transfers.expire(Caller(tenant_id, deadline), transfer_id)
        except (DomainError, StorageError) as error:
            log.warning("hold_expiry_failed", transfer_id=transfer_id, error=str(error))
            return 0
        except Exception:
            # A surprise on one hold (say, a tenant row made by hand with an id of
            # another shape) must not stop every other tenant's holds from expiring.
            log.exception("hold_expiry_crashed", transfer_id=transfer_id)
            return 0
        return 0 if expired is None else 1

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
