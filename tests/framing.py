"""A synchronous frame parser for tests: reads the frames a spool or a stream wrote, as a reducer would.

Production reads frames off aiohttp streams (actors/net/frames.py FrameReader, tested in test_frames.py); tests
that hold the bytes in memory parse them here with the same prefix and decode rules (actors/core/wire.py).
"""

from __future__ import annotations

from typing import Any

from actors.core import wire
from actors.core.errors import WireError


class FrameDecoder:
    """Incremental frame parser: feed bytes as they arrive, take whole decoded items out."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        self._buffer += data
        items: list[Any] = []
        while len(self._buffer) >= wire.PREFIX:
            length = wire.frame_length(bytes(self._buffer[: wire.PREFIX]), self.cap)
            if len(self._buffer) < wire.PREFIX + length:
                break
            body = bytes(self._buffer[wire.PREFIX : wire.PREFIX + length])
            del self._buffer[: wire.PREFIX + length]
            items.append(wire.decode(body, self.cap))
        return items

    def close(self) -> None:
        """The stream ended: leftover bytes mean a frame was cut."""
        if self._buffer:
            raise WireError(f"stream ended inside a frame ({len(self._buffer)} bytes left over)")
