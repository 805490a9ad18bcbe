"""One map attempt's state as its parts share it: the assignment, what was read and mapped, its heartbeats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable
from typing import TypeVar

from ..core.config import Settings
from ..core.messages import Assignment, Progress
from ..inputs.outdir import PartInfo
from ..net.metrics import MapperMetrics

T = TypeVar("T")


class MapAttempt:
    """The state of one attempt at one split (set by MapRun) and the heartbeat its long waits share."""

    a: Assignment
    settings: Settings
    metrics: MapperMetrics
    bytes_read: int
    keys: int
    part: PartInfo | None

    def _progress(self) -> Progress:
        return Progress(self.a.job, self.a.epoch, self.a.split, self.a.attempt, self.bytes_read)

    async def _meanwhile(self, work: Awaitable[T]) -> AsyncGenerator[Progress, None]:
        """Await ``work`` (a task process's answer), heartbeating every third of a lease while it runs."""
        future = asyncio.ensure_future(work)
        try:
            while not future.done():
                await asyncio.wait({future}, timeout=self.settings.timeouts.lease / 3)
                if not future.done():
                    yield self._progress()
            future.result()
        finally:
            if not future.done():
                future.cancel()
                await asyncio.gather(future, return_exceptions=True)

