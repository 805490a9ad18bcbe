"""Stream reading: HTTP bodies off aiohttp streams, whole under a cap or as length-prefixed CBOR frames."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import StreamReader

from ..core import wire
from ..core.errors import PayloadTooLarge, WireError

BODY_BLOCK = 256 * 1024


class StreamCut(WireError):
    """The sender stopped before its stream's end: the body ended early, or went silent past the idle time."""


async def read_body(stream: StreamReader, cap: int, declared: int | None) -> bytes:
    """The whole body, refused past ``cap`` bytes (before reading, when the sender declared its length)."""
    if declared is not None and declared > cap:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the cap of {cap} bytes")
    parts: list[bytes] = []
    size = 0
    # StreamReader.read(n) answers with what is buffered, not n bytes: read until the end.
    while block := await stream.read(BODY_BLOCK):
        size += len(block)
        if size > cap:
            raise PayloadTooLarge(f"body exceeds the cap of {cap} bytes")
        parts.append(block)
    return b"".join(parts)


class FrameReader:
    """Reads whole frames from an aiohttp stream; a peer silent for ``idle`` seconds is an error."""

    def __init__(self, stream: StreamReader, cap: int, idle: float) -> None:
        self.stream = stream
        self.cap = cap
        self.idle = idle
        self.last_size = 0

    async def next(self) -> Any | None:
        """The next decoded frame, or None at a clean end of stream (between frames)."""
        body = await self.next_raw()
        return None if body is None else wire.decode(body, self.cap)

    async def next_raw(self, limit: int | None = None) -> bytes | None:
        """The next frame's undecoded body, or None at a clean end; a frame longer (with its prefix) than
        ``limit`` bytes is refused before its body is read."""
        prefix = await self._read(wire.PREFIX, allow_eof=True)
        if prefix is None:
            return None
        length = wire.frame_length(prefix, self.cap)
        if limit is not None and wire.PREFIX + length > limit:
            raise WireError(f"a frame of {wire.PREFIX + length} bytes where at most {limit} bytes may come (the "
                            "stream's header declares less, or this frame must be small)")
        body = await self._read(length, allow_eof=False)
        assert body is not None
        self.last_size = wire.PREFIX + length
        return body

    async def _read(self, count: int, allow_eof: bool) -> bytes | None:
        # What is buffered already is taken without arming a timer (a small stream arrives whole in one read).
        head = self.stream.read_nowait(count)
        if len(head) == count:
            return head
        try:
            async with asyncio.timeout(self.idle):
                return head + await self.stream.readexactly(count - len(head))
        except asyncio.IncompleteReadError as exc:
            got = len(head) + len(exc.partial)
            if allow_eof and not got:
                return None
            raise StreamCut(f"stream ended inside a frame ({got} of {count} bytes)") from None
        except TimeoutError:
            raise StreamCut(f"stream stalled: no bytes for {self.idle:g} s") from None

    async def expect_end(self) -> None:
        """Nothing may follow the last frame."""
        if await self._read(1, allow_eof=True) is not None:
            raise WireError("bytes after the COMMIT frame")
