"""The in-process per-account queue (service/account_queue.py)."""

from __future__ import annotations

import asyncio

import pytest

from moneymovement.service.account_queue import AccountQueue


async def test_transactions_on_a_shared_account_take_turns_in_arrival_order() -> None:
    queue, running, order = AccountQueue(), set[int](), list[int]()

    async def transfer(number: int, accounts: tuple[str, ...]) -> None:
        async with queue.turn("ten", accounts, None):
            assert not running, f"{number} entered while {running} ran"
            running.add(number)
            order.append(number)
            await asyncio.sleep(0.001)
            running.discard(number)

    await asyncio.gather(*(transfer(n, ("hot", f"acct{n}")) for n in range(20)))
    assert order == list(range(20))
    assert len(queue) == 0  # nothing kept once nobody waits


async def test_disjoint_accounts_do_not_wait_for_each_other() -> None:
    queue, inside = AccountQueue(), asyncio.Event()

    async def first() -> None:
        async with queue.turn("ten", ("a", "b"), None):
            await inside.wait()  # holds a and b until the second one is inside

    async def second() -> None:
        async with queue.turn("ten", ("c", "d"), None):
            inside.set()

    await asyncio.wait_for(asyncio.gather(first(), second()), timeout=1)


async def test_the_same_account_of_two_tenants_is_two_accounts() -> None:
    queue, inside = AccountQueue(), asyncio.Event()

    async def tenant_a() -> None:
        async with queue.turn("ten_a", ("x",), None):
            await inside.wait()

    async def tenant_b() -> None:
        async with queue.turn("ten_b", ("x",), None):
            inside.set()

    await asyncio.wait_for(asyncio.gather(tenant_a(), tenant_b()), timeout=1)


async def test_a_deadline_while_waiting_leaves_nothing_held() -> None:
    queue, release = AccountQueue(), asyncio.Event()

    async def holder() -> None:
        async with queue.turn("ten", ("a", "b"), None):
            await release.wait()

    task = asyncio.create_task(holder())
    await asyncio.sleep(0)
    deadline = asyncio.get_running_loop().time() + 0.01
    with pytest.raises(TimeoutError):
        async with queue.turn("ten", ("b", "z"), deadline):
            raise AssertionError("entered while a was held")
    release.set()
    await task
    assert len(queue) == 0
    async with queue.turn("ten", ("a", "b", "z"), None):
        pass  # every key is free again
