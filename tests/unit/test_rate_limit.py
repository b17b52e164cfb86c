"""The edge limits' arithmetic: a token bucket per tenant, a counter of RPCs in flight."""

import pytest

from moneymovement.transport.limits import ConcurrencyLimit, TenantRateLimiter


def test_a_burst_is_allowed_then_the_rate() -> None:
    limiter = TenantRateLimiter(rate_per_s=10, burst=3)

    assert [limiter.acquire("t", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("t", now=100.0) == pytest.approx(0.1)  # one call per 0.1 s
    assert limiter.acquire("t", now=100.05) == pytest.approx(0.05)  # half refilled
    assert limiter.acquire("t", now=100.1) == 0.0
    assert limiter.acquire("t", now=100.1) == pytest.approx(0.1)


def test_a_refused_call_takes_nothing_and_the_bucket_never_overfills() -> None:
    limiter = TenantRateLimiter(rate_per_s=1, burst=2)
    limiter.acquire("t", now=0.0)
    limiter.acquire("t", now=0.0)
    for _ in range(5):
        assert limiter.acquire("t", now=0.5) == pytest.approx(0.5)
    assert limiter.acquire("t", now=1.0) == 0.0

    assert limiter.acquire("t", now=1000.0) == 0.0  # a long pause refills to the burst only
    assert limiter.acquire("t", now=1000.0) == 0.0
    assert limiter.acquire("t", now=1000.0) > 0


def test_tenants_have_separate_buckets() -> None:
    limiter = TenantRateLimiter(rate_per_s=1, burst=1)

    assert limiter.acquire("a", now=0.0) == 0.0
    assert limiter.acquire("a", now=0.0) > 0
    assert limiter.acquire("b", now=0.0) == 0.0


def test_rate_zero_means_no_limit() -> None:
    assert not TenantRateLimiter(rate_per_s=0, burst=1).enabled
    assert TenantRateLimiter(rate_per_s=0.5, burst=1).enabled


def test_the_concurrency_limit_counts_in_and_out() -> None:
    limit = ConcurrencyLimit(2)

    assert limit.try_enter()
    assert limit.try_enter()
    assert not limit.try_enter()
    assert limit.in_flight == 2
    limit.leave()
    assert limit.try_enter()


def test_concurrency_zero_means_no_limit() -> None:
    limit = ConcurrencyLimit(0)

    assert all(limit.try_enter() for _ in range(10_000))
