"""A job's input over HTTP on loopback whose reads a test can hold mid-stream (a fake at the world's edge)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class HeldRead:
    """One ranged read of a ``HeldInput``, stopped mid-stream until ``release`` is set."""

    offset: int
    release: asyncio.Event = field(default_factory=asyncio.Event)


class HeldInput:
    """A job's input served over HTTP on loopback the way an object store serves it (HEAD, byte ranges), whose
    reads the test can hold mid-stream: a fake at the world's edge that fixes a fault's timing. While a read is
    held its reader (a mapper) is certainly inside its split and the job certainly unfinished. Cluster settings:
    MR_ALLOW_PRIVATE_URLS=true, and a lease longer than any hold (a held reader sends no progress)."""

    PREFIX = 4096  # bytes a held read delivers before it stops: the reader is mid-split, not yet started

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.url = ""
        self.hold_all = False
        self._targets: list[tuple[int, int]] = []
        self._held: list[HeldRead] = []
        self._changed = asyncio.Condition()

    def hold_next_read(self, first: int, last: int) -> None:
        """Hold the next read that starts at an offset in ``[first, last]``; later ones pass."""
        self._targets.append((first, last))

    async def held(self, count: int = 1, timeout: float = 30.0) -> list[HeldRead]:
        """Wait (bounded) until at least ``count`` reads are held; answer the reads held now."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self._held) >= count)
            return list(self._held)

    async def read_at(self, first: int, last: int, timeout: float = 30.0) -> HeldRead:
        """Wait (bounded) until a read that starts in ``[first, last]`` is held; answer it."""
        def found() -> HeldRead | None:
            return next((r for r in self._held if first <= r.offset <= last), None)

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: found() is not None)
            read = found()
            assert read is not None
            return read

    def release(self, read: HeldRead) -> None:
        self._held.remove(read)
        read.release.set()

    def release_all(self) -> None:
        self.hold_all = False
        for read in list(self._held):
            self.release(read)

    def _hold(self, offset: int, length: int) -> bool:
        if length <= self.PREFIX:
            return False  # a size probe or a split's last few bytes: nothing to stop in the middle of
        if self.hold_all:
            return True
        for target in self._targets:
            if target[0] <= offset <= target[1]:
                self._targets.remove(target)
                return True
        return False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        size = len(self.data)
        if request.method == "HEAD":
            return web.Response(headers={"Accept-Ranges": "bytes", "Content-Length": str(size)})
        start, end, ranged = 0, size, False
        spec = request.headers.get("Range", "")
        if spec.startswith("bytes=") and "," not in spec:
            first, _, last = spec[len("bytes="):].partition("-")
            start, end, ranged = int(first), min(int(last) + 1, size) if last else size, True
        if start >= size:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        response = web.StreamResponse(status=206 if ranged else 200, headers={"Accept-Ranges": "bytes"})
        if ranged:
            response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        response.content_length = end - start
        await response.prepare(request)
        body = memoryview(self.data)[start:end]
        try:
            if self._hold(start, end - start):
                read = HeldRead(start)
                await response.write(body[:self.PREFIX])
                body = body[self.PREFIX:]
                async with self._changed:
                    self._held.append(read)
                    self._changed.notify_all()
                await read.release.wait()
            await response.write(body)
            await response.write_eof()
        except ConnectionError:
            pass  # the reader went away: killed, or done with its split before the end of the input
        return response

