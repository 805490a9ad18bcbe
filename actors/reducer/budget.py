"""The staging budget: how much memory a reducer's staged streams hold at once; streams wait or are turned away."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..core.errors import PayloadTooLarge, Unavailable

# Decoded partial values take several times their wire size. Measured (1 M word-count keys of 4-19 characters,
# 15.7 wire bytes a key): tracemalloc saw 6.2 bytes of memory per wire byte, sys.getsizeof (what footprint()
# charges) 7.7; 2-character keys reach about 20. A stream reserves its declared wire size times this up front
# and grows its reservation as the frames it decodes show what they really hold (see Reservation.cover).
DECODED_RATIO = 8
# A word count's COLUMNS frames stay packed while staged (the reducer checks them natively and merges them into a
# count table without decoding them): a stream holds about its wire size, plus each frame's few object headers.
PACKED_RATIO = 2


def reservation(size: int, packed: bool, capacity: int) -> int:
    """What a stream declaring ``size`` wire bytes reserves up front (its frames grow it if they hold more)."""
    return min(size * (PACKED_RATIO if packed else DECODED_RATIO), capacity)


def footprint(items: dict[str, Any]) -> int:
    """Bytes a decoded DATA frame holds, as sys.getsizeof counts them (an over-estimate: small ints are shared)."""
    size = sys.getsizeof(items) + sum(map(sys.getsizeof, items))
    values = items.values()
    if set(map(type, values)) <= {int}:  # C-level: counts are the bulk of shuffle data
        return size + sum(map(sys.getsizeof, values))
    return size + sum(map(_deep, values))




def _deep(value: Any) -> int:
    if type(value) is list:
        return sys.getsizeof(value) + sum(map(_deep, value))
    if type(value) is dict:
        return footprint(value)
    return sys.getsizeof(value)


class Reservation:
    """One stream's share of the budget: reserved up front, grown (never waited for) as decoded frames need."""

    def __init__(self, budget: StagingBudget, size: int) -> None:
        self.budget = budget
        self.size = size

    def cover(self, held: int) -> None:
        """Make the reservation at least ``held`` bytes, or refuse the stream (nothing of it is merged)."""
        extra = held - self.size
        if extra <= 0:
            return
        budget = self.budget
        if held > budget.capacity:
            raise PayloadTooLarge(
                f"a stream decodes to more than {held} bytes, over the whole staging budget of {budget.capacity} "
                "bytes (raise MR_STAGE_BUDGET on the reducers or lower MR_SPLIT_SIZE)"
            )
        if budget.used + extra > budget.capacity:
            budget.refused += 1
            raise Unavailable(
                f"staging budget full ({budget.used} of {budget.capacity} bytes in use, MR_STAGE_BUDGET): a stream "
                "decoded to more than its reservation; retry later",
                retry_after=1.0,
            )
        budget.used += extra
        self.size = held


class StagingBudget:
    """Reserve a stream's estimated decoded size up front, so admitted streams usually finish (no deadlock)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self.refused = 0
        self.waited = 0  # reservations that found the budget full and waited for room
        self._changed = asyncio.Condition()

    def _fits(self, size: int) -> bool:
        # A stream larger than the whole budget is admitted alone rather than never.
        return self.used + size <= self.capacity or self.used == 0

    @asynccontextmanager
    async def reserve(self, size: int, timeout: float) -> AsyncIterator[Reservation]:
        async with self._changed:
            if not self._fits(size):
                self.waited += 1
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(lambda: self._fits(size))
            except TimeoutError:
                self.refused += 1
                raise Unavailable(
                    f"staging budget full ({self.used} of {self.capacity} bytes in use); retry later",
                    retry_after=1.0,
                ) from None
            self.used += size
        reservation = Reservation(self, size)
        try:
            yield reservation
        finally:
            async with self._changed:
                self.used -= reservation.size
                self._changed.notify_all()
