"""The limits at the edge: RPCs served at once, and each tenant's call rate.

Both refuse at once with a delay to retry after, instead of queueing: a queue in front of
a saturated database only turns overload into timeouts for everyone. They count per
process (per replica), in the interceptor, because grpc.aio's own
`maximum_concurrent_rpcs` was ignored, then bypassable (grpc issues 30424 and 41531),
and answers without our error details.
"""

from __future__ import annotations

import time

# Float error must not refuse a call that is due: 0.999999999 of a call counts as one.
_EPSILON = 1e-9
# Past this many tenants the buckets start over: buckets of idle tenants are full anyway,
# so forgetting them only forgives a tenant part of a burst.
_MAX_BUCKETS = 100_000


class TenantRateLimiter:
    """A token bucket per tenant: `rate_per_s` calls per second, `burst` at once.

    A bucket is two floats in a list, updated in place: no allocation per call.
    """

    def __init__(self, rate_per_s: float, burst: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(1.0, burst)
        self._buckets: dict[str, list[float]] = {}  # tenant -> [tokens, when last filled]

    @property
    def enabled(self) -> bool:
        """False when the rate is 0 (no limit)."""
        return self.rate_per_s > 0

    def acquire(self, tenant_id: str, now: float | None = None) -> float:
        """Takes one call from the tenant's bucket: 0.0 when allowed, else the seconds
        until the bucket holds a whole call again (nothing is taken then)."""
        if now is None:
            now = time.monotonic()
        bucket = self._buckets.get(tenant_id)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._buckets.clear()
            self._buckets[tenant_id] = [self.burst - 1.0, now]
            return 0.0
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate_per_s)
        bucket[1] = now
        if tokens >= 1.0 - _EPSILON:
            bucket[0] = max(0.0, tokens - 1.0)
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate_per_s


class ConcurrencyLimit:
    """At most `limit` RPCs at once (0: no limit). Single-threaded (one event loop), so a
    plain counter suffices."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def try_enter(self) -> bool:
        """Counts an RPC in, or returns False when `limit` are already in flight."""
        if self.limit and self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        """Counts an RPC out (only after a successful `try_enter`)."""
        self.in_flight -= 1
