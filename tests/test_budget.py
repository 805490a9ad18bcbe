"""The staging budget: reservations beyond capacity wait, are admitted on release, time out into a 503."""

from __future__ import annotations

import asyncio
import sys
import tracemalloc

import pytest

from actors.core import wire
from actors.core.errors import PayloadTooLarge, Unavailable
from actors.core.messages import Data, to_wire
from actors.jobs import get_job
from actors.jobs.wordcount import kernel
from actors.jobs.wordcount.columns import pack_columns
from actors.reducer.budget import DECODED_RATIO, StagingBudget, footprint, reservation
from actors.reducer.stage import Stage


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


# ---------------------------------------------------------------------------------------------------------------
# Decoded bytes: reservations grow as frames show what they hold, and never past the budget


async def test_a_reservation_grows_while_the_budget_has_room() -> None:
    budget = StagingBudget(100)
    async with budget.reserve(30, 1.0) as reserved:
        reserved.cover(20)  # within the reservation: nothing changes
        assert (reserved.size, budget.used) == (30, 30)
        reserved.cover(90)
        assert (reserved.size, budget.used) == (90, 90)
    assert budget.used == 0  # the grown reservation is released whole


async def test_growth_past_what_others_hold_is_refused_not_waited_for() -> None:
    budget = StagingBudget(100)
    release, admitted = asyncio.Event(), asyncio.Event()
    other = asyncio.create_task(holder(budget, 60, admitted, release))
    await admitted.wait()
    try:
        async with budget.reserve(30, 1.0) as reserved:
            with pytest.raises(Unavailable, match="MR_STAGE_BUDGET"):
                reserved.cover(50)  # waiting here could deadlock two growing streams: refuse, the sender retries
            assert budget.used == 90
    finally:
        release.set()
        await other
    assert budget.used == 0
    assert budget.refused == 1


async def test_a_stream_decoding_past_the_whole_budget_is_too_large() -> None:
    budget = StagingBudget(100)
    async with budget.reserve(100, 1.0) as reserved:
        with pytest.raises(PayloadTooLarge, match="MR_STAGE_BUDGET"):
            reserved.cover(101)
    assert budget.used == 0


def test_footprint_counts_nested_values() -> None:
    names = ["one.txt", "two.txt"]
    items = {"a": names}
    expected = sys.getsizeof(items) + sys.getsizeof("a") + sys.getsizeof(names) + sum(map(sys.getsizeof, names))
    assert footprint(items) == expected
    assert footprint({"a": 1, "b": 2}) == sum(map(sys.getsizeof, ({"a": 1, "b": 2}, "a", "b", 1, 2)))


def test_decoded_ratio_covers_what_word_frames_really_hold() -> None:
    # The measurement behind DECODED_RATIO: what decoding a frame of ordinary words allocates, per wire byte.
    items = {f"{word}{i}": i % 5 + 1 for i, word in enumerate(["the", "counted", "word", "reducer"] * 5000)}
    body = wire.encode(to_wire(Data(items)))
    tracemalloc.start()
    try:
        decoded = wire.decode(body, len(body))
        allocated, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(decoded["items"]) == len(items)
    # sys.getsizeof over-counts (shared small ints), so footprint() is a safe charge...
    assert footprint(decoded["items"]) >= allocated * 0.9
    # ...and the up-front estimate is in the right range for such words (within a factor of 2 either way).
    assert len(body) * DECODED_RATIO / 2 <= allocated <= len(body) * DECODED_RATIO * 2


@pytest.mark.parametrize(("packed", "expected"), [(False, 8000), (True, 2000)])
def test_a_packed_stream_reserves_near_its_wire_size(packed: bool, expected: int) -> None:
    assert reservation(1000, packed, 1 << 20) == expected
    assert reservation(1 << 20, packed, 4096) == 4096  # never more than the whole budget


def test_a_staged_columns_stream_stays_within_its_packed_reservation() -> None:
    if not kernel.NATIVE:
        pytest.skip("without the native kernel COLUMNS frames are decoded and charged as maps")
    stage = Stage(get_job("wordcount"), 1 << 20)
    frames = [pack_columns({f"w{j}-{i}": 1 + i for i in range(2000)}) for j in range(4)]
    size = sum(len(wire.frame(to_wire(f), 1 << 20)) for f in frames)
    for frame in frames:
        stage.add(frame)
    assert stage.packed and stage.held <= reservation(size, True, 1 << 30)
