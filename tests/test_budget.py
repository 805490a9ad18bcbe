"""The staging budget: reservations beyond capacity wait, are admitted on release, time out into a 503."""

from __future__ import annotations

import asyncio

import pytest

from actors.core.errors import Unavailable
from actors.reducer.budget import StagingBudget


async def settle() -> None:
    """Let every ready task run until it blocks (yields only; no timed sleeps)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def holder(budget: StagingBudget, size: int, admitted: asyncio.Event, release: asyncio.Event,
                 timeout: float = 10.0) -> None:
    async with budget.reserve(size, timeout):
        admitted.set()
        await release.wait()


async def test_reservations_within_capacity_are_admitted_together() -> None:
    budget = StagingBudget(100)
    release = asyncio.Event()
    admitted = [asyncio.Event() for _ in range(3)]
    tasks = [asyncio.create_task(holder(budget, size, event, release)) for size, event in zip((30, 30, 40), admitted,
                                                                                             strict=True)]
    await settle()
    assert all(e.is_set() for e in admitted)
    assert budget.used == 100
    release.set()
    await asyncio.gather(*tasks)
    assert budget.used == 0
    assert budget.refused == 0


async def test_reservation_beyond_capacity_waits_until_another_releases() -> None:
    budget = StagingBudget(100)
    first_in, first_out = asyncio.Event(), asyncio.Event()
    second_in, second_out = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(holder(budget, 60, first_in, first_out))
    await first_in.wait()
    second = asyncio.create_task(holder(budget, 60, second_in, second_out))
    await settle()
    assert not second_in.is_set()
    assert budget.used == 60
    first_out.set()
    await asyncio.wait_for(second_in.wait(), 5)
    assert budget.used == 60
    second_out.set()
    await asyncio.gather(first, second)
    assert budget.used == 0
    assert budget.refused == 0


async def test_waiter_times_out_into_unavailable() -> None:
    budget = StagingBudget(100)
    held, release = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(holder(budget, 100, held, release))
    await held.wait()
    with pytest.raises(Unavailable) as info:
        async with budget.reserve(1, timeout=0.05):
            raise AssertionError("admitted beyond capacity")
    assert info.value.status == 503
    assert info.value.retry_after > 0
    assert budget.refused == 1
    assert budget.used == 100  # the refused reservation took nothing
    release.set()
    await task
    assert budget.used == 0
    async with budget.reserve(100, timeout=1):
        assert budget.used == 100


async def test_stream_larger_than_the_whole_budget_is_admitted_alone() -> None:
    budget = StagingBudget(100)
    # Nothing else staged: admitted at once rather than never.
    big_in, big_out = asyncio.Event(), asyncio.Event()
    big = asyncio.create_task(holder(budget, 500, big_in, big_out))
    await asyncio.wait_for(big_in.wait(), 5)
    assert budget.used == 500
    # While it is staged, nothing else fits.
    small_in, small_out = asyncio.Event(), asyncio.Event()
    small = asyncio.create_task(holder(budget, 1, small_in, small_out))
    await settle()
    assert not small_in.is_set()
    big_out.set()
    await asyncio.wait_for(small_in.wait(), 5)
    small_out.set()
    await asyncio.gather(big, small)
    assert budget.used == 0


async def test_big_stream_waits_for_the_budget_to_empty() -> None:
    budget = StagingBudget(100)
    small_in, small_out = asyncio.Event(), asyncio.Event()
    small = asyncio.create_task(holder(budget, 10, small_in, small_out))
    await small_in.wait()
    big_in, big_out = asyncio.Event(), asyncio.Event()
    big = asyncio.create_task(holder(budget, 500, big_in, big_out))
    await settle()
    assert not big_in.is_set()
    small_out.set()
    await asyncio.wait_for(big_in.wait(), 5)
    assert budget.used == 500
    big_out.set()
    await asyncio.gather(small, big)


async def test_release_on_error_inside_the_reservation() -> None:
    budget = StagingBudget(100)
    with pytest.raises(RuntimeError):
        async with budget.reserve(80, timeout=1):
            assert budget.used == 80
            raise RuntimeError("stream broke")
    assert budget.used == 0


async def test_release_on_cancellation() -> None:
    budget = StagingBudget(100)
    held, never = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(holder(budget, 70, held, never))
    await held.wait()
    waiter_in = asyncio.Event()
    waiter = asyncio.create_task(holder(budget, 70, waiter_in, never))
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(waiter_in.wait(), 5)
    assert budget.used == 70
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert budget.used == 0
    assert budget.refused == 0
