"""Releases expired holds and scheduled funds that are due, in the background.

Holds past their expiry can never be captured whether or not this has run (PostTransfer
checks the time itself); the sweeper gives their reserved amounts back and marks them
EXPIRED. Scheduled parts of credits whose time has come are made available (one
ReleaseDueFunds per account, releasing all its due parts). Every replica may run one:
each expiry or release is a command of the write pipeline that re-checks the hold's or
the parts' state under the row locks, so each is applied once however many sweep, and a
crash before the commit changes nothing. A round's commands are submitted together, so
they commit in a few batches.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from functools import partial

import structlog

from moneymovement.domain.errors import DomainError
from moneymovement.service.funds import FundsService
from moneymovement.service.transfers import TransferService
from moneymovement.service.unit_of_work import Caller
from moneymovement.storage.errors import StorageError
from moneymovement.storage.session import Database

log = structlog.get_logger("moneymovement.sweeper")
_BATCH = 100
_PER_HOLD_S = 10.0


class HoldSweeper:
    """Expires due holds and releases due funds every `interval_s` seconds."""

    def __init__(
        self,
        database: Database,
        transfers: TransferService,
        interval_s: float,
        funds: FundsService | None = None,
    ) -> None:
        self._database = database
        self._transfers = transfers
        self._funds = funds
        self._interval_s = interval_s

    async def sweep_once(self) -> int:
        """Expires the holds due now and releases the funds due now (up to a batch of
        each); returns how many holds and accounts this call acted on (the larger)."""
        due = await self._database.expired_holds(_BATCH)
        accounts = await self._database.accounts_with_due_funds(_BATCH) if self._funds else []
        # Replicas sweeping at once start at different holds instead of all racing for the
        # oldest one; a hold that fails (a deadline, a surprise) is logged, not allowed to
        # stop the round for every other tenant's holds.
        random.shuffle(due)
        random.shuffle(accounts)
        expiries = [
            self._attempt(
                "hold_expiry", tenant, partial(self._transfers.expire, transfer_id=transfer),
                transfer_id=transfer,
            )
            for tenant, transfer in due
        ]  # fmt: skip
        releases = [
            self._attempt(
                "funds_release", tenant, partial(self._funds.release_due, account_id=account),
                account_id=account,
            )
            for tenant, account in accounts
            if self._funds is not None
        ]  # fmt: skip
        expired, released = await asyncio.gather(
            asyncio.gather(*expiries), asyncio.gather(*releases)
        )
        return max(sum(expired), sum(released))

    async def _attempt(
        self,
        what: str,
        tenant_id: str,
        call: Callable[[Caller], Awaitable[object]],
        **key: str,
    ) -> int:
        """One expiry or release in its tenant's transaction: 1 when it did something, 0
        when there was nothing to do or it failed. A failure (a deadline, a surprise such
        as a tenant row made by hand with an id of another shape) is logged and never
        stops the round for every other tenant's holds and funds."""
        deadline = asyncio.get_running_loop().time() + _PER_HOLD_S
        try:
            done = await call(Caller(tenant_id, deadline))
        except (DomainError, StorageError) as error:
            log.warning(f"{what}_failed", error=str(error), **key)
            return 0
        except Exception:
            log.exception(f"{what}_crashed", **key)
            return 0
        return 1 if done else 0

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
