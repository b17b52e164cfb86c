"""Balance monitors: a condition on one of an account's balances, edge-triggered.

A monitor remembers whether its condition held after the account's last change
(`triggered`). The ledger evaluates an account's monitors after every command that
changed the account, in the same transaction, and each flip is one event:
BALANCE_MONITOR_TRIGGERED when the condition becomes true, BALANCE_MONITOR_CLEARED when
it stops being true. A change that leaves the condition as it was tells nothing, so a
crossing is told once however many changes follow on the same side.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from moneymovement.domain.balances import Balances, NormalBalance
from moneymovement.domain.errors import Reason, Rejected

MAX_MONITORS_PER_ACCOUNT = 20


class MonitorField(enum.Enum):
    """Which balance a monitor watches (signed by the account's normal balance)."""

    AVAILABLE = "AVAILABLE"
    POSTED = "POSTED"
    PENDING_AVAILABILITY = "PENDING_AVAILABILITY"
    RESERVED = "RESERVED"
    PENDING_INBOUND = "PENDING_INBOUND"
    PENDING_OUTBOUND = "PENDING_OUTBOUND"

    def of(self, balances: Balances, normal: NormalBalance) -> int:
        if self is MonitorField.AVAILABLE:
            return balances.available(normal)
        if self is MonitorField.POSTED:
            return balances.posted(normal)
        if self is MonitorField.PENDING_AVAILABILITY:
            return balances.pending_availability_minor
        if self is MonitorField.RESERVED:
            return balances.reserved_minor
        if self is MonitorField.PENDING_INBOUND:
            return balances.pending_inbound(normal)
        return balances.pending_outbound(normal)


class MonitorOperator(enum.Enum):
    """How the watched balance compares with the threshold."""

    BELOW = "BELOW"
    AT_OR_BELOW = "AT_OR_BELOW"
    ABOVE = "ABOVE"
    AT_OR_ABOVE = "AT_OR_ABOVE"

    def holds(self, value: int, threshold: int) -> bool:
        if self is MonitorOperator.BELOW:
            return value < threshold
        if self is MonitorOperator.AT_OR_BELOW:
            return value <= threshold
        if self is MonitorOperator.ABOVE:
            return value > threshold
        return value >= threshold


@dataclass(frozen=True)
class BalanceMonitor:
    """A condition on one account's balance and whether it holds now."""

    id: str
    account_id: str
    field: MonitorField
    operator: MonitorOperator
    threshold_minor: int
    triggered: bool
    created_at: datetime
    updated_at: datetime
    description: str = ""
    deleted: bool = False

    def holds(self, balances: Balances, normal: NormalBalance) -> bool:
        """Whether the condition is true of `balances`."""
        return self.operator.holds(self.field.of(balances, normal), self.threshold_minor)


def monitor_not_found(monitor_id: str) -> Rejected:
    """The rejection for a monitor that does not exist (or is not the caller's to see)."""
    return Rejected(
        Reason.MONITOR_NOT_FOUND,
        f"balance monitor {monitor_id} not found",
        {"monitor_id": monitor_id},
    )
