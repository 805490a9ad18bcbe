"""The staging budget: how many bytes a reducer stages at once; streams wait for room or are turned away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..core.errors import Unavailable


class StagingBudget:
    """Reserve a stream's whole declared size up front, so admitted streams always finish (no deadlock)."""

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
    async def reserve(self, size: int, timeout: float) -> AsyncIterator[None]:
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
        try:
            yield
        finally:
            async with self._changed:
                self.used -= size
                self._changed.notify_all()
