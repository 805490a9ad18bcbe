"""Receiving request bodies: block by block within their deadlines and pace, at most MR_MAX_UPLOADS large at once."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from ..core.config import Settings
from ..core.errors import RequestTimeout, TooManyRequests

UPLOAD_BLOCK = 1024 * 1024


class Readable(Protocol):
    """A request body, or one part of a multipart body: ``read(n)`` answers at most n bytes, b"" at its end."""

    async def read(self, n: int = -1, /) -> bytes: ...


@dataclass
class BodyPace:
    """How fast a request body arrives: after ``grace`` seconds it must average ``rate`` bytes/s (MR_MIN_BODY_RATE).

    Without it a sender of one byte every 20 s never trips the idle timeout and holds its slot (and, for an upload,
    its share of MR_UPLOAD_BUDGET) for the whole MR_TIMEOUT_BODY.
    """

    started: float  # loop time
    rate: int
    grace: float
    received: int = 0

    def due(self) -> float:
        """The loop time by which more bytes must have arrived."""
        return self.started + self.grace + self.received / self.rate if self.rate > 0 else math.inf


def body_pace(settings: Settings) -> BodyPace:
    """A pace starting now; the grace is MR_TIMEOUT_BODY_IDLE, so a body may start as slowly as it may pause."""
    timeouts = settings.timeouts
    return BodyPace(asyncio.get_running_loop().time(), settings.min_body_rate, timeouts.body_idle)


async def read_block(stream: Readable, size: int, idle: float, deadline: float,
                     pace: BodyPace | None = None) -> bytes:
    """The next block of a request body (b"" at its end); a stalled, trickling or too slow sender gets 408.

    ``deadline`` is in loop time; the limits are MR_TIMEOUT_BODY_IDLE, MR_TIMEOUT_BODY and (with ``pace``)
    MR_MIN_BODY_RATE.
    """
    now = asyncio.get_running_loop().time()
    left = deadline - now
    wait, cause = (left, "whole") if left <= idle else (idle, "idle")
    if pace is not None and pace.due() - now < wait:
        wait, cause = pace.due() - now, "rate"
    try:
        async with asyncio.timeout(max(0.0, wait)):
            block = await stream.read(size)
    except TimeoutError:
        if cause == "whole":
            raise RequestTimeout("the request body did not arrive whole in time (MR_TIMEOUT_BODY)") from None
        if cause == "rate":
            assert pace is not None
            raise RequestTimeout(f"the request body arrives slower than {pace.rate} bytes/s on average: "
                                 f"{pace.received} bytes in {now - pace.started:.0f} s (MR_MIN_BODY_RATE)") from None
        raise RequestTimeout(f"the request body stalled: no bytes for {idle:g} s (MR_TIMEOUT_BODY_IDLE)") from None
    if pace is not None:
        pace.received += len(block)
    return block


class UploadSlots:
    """How many uploads (and JSON bodies over 64 KiB) this master receives at once (MR_MAX_UPLOADS)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        if self.active >= self.limit:
            raise TooManyRequests(f"{self.active} uploads and large JSON bodies are already being received, the "
                                  "limit (MR_MAX_UPLOADS); retry later", retry_after=5.0)
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1

