"""Reading an ``s3://`` input: ranged GETs, a bounded number in flight ahead of the mapper, each pinned to the
ETag the master listed, so an object that changes mid-job fails the job instead of mixing two versions."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from ..core.config import Settings
from ..core.errors import InputError
from .pin import Pin
from .s3 import open_store, parse_s3, s3_error
from .sources import BLOCK

if TYPE_CHECKING:
    from obstore.store import S3Store


class S3Source:
    """An object read from an offset to its end in parts of MR_S3_READ_PART bytes, MR_S3_READ_AHEAD of them in
    flight: the next parts download while the mapper maps this one (and the mapper stops early at its split's end,
    which cancels the parts still in flight). Memory: at most read-ahead parts."""

    def __init__(self, settings: Settings, location: str, pin: Pin) -> None:
        self.settings = settings
        self.uri = parse_s3(location)
        self.pin = pin

    async def blocks(self, offset: int) -> AsyncGenerator[bytes, None]:
        store = open_store(self.settings, self.uri.bucket)
        size, part = self.pin.size, self.settings.s3_read_part
        starts = iter(range(offset, size, part))
        pending: collections.deque[asyncio.Task[bytes]] = collections.deque()
        try:
            while True:
                while len(pending) < self.settings.s3_read_ahead and (start := next(starts, None)) is not None:
                    pending.append(asyncio.ensure_future(self._range(store, start, min(start + part, size))))
                if not pending:
                    return
                data = await pending.popleft()
                for at in range(0, len(data), BLOCK):
                    yield data[at:at + BLOCK]
        finally:
            for task in pending:  # the mapper stopped early, or a part failed: nothing is left running
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _range(self, store: S3Store, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the pinned version: the store refuses (412) another ETag, and the answer's
        version and range are checked again, for a store that ignores the condition."""
        import obstore

        uri, etag = self.uri, self.pin.etag
        try:
            result = await obstore.get_async(store, uri.key, options={"range": (start, end), "if_match": etag})
            data = bytes(await result.bytes_async())
        except Exception as error:
            raise s3_error(error, uri) from None
        got = result.meta.get("e_tag") or ""
        if got and got != etag:
            raise InputError(f"{uri} changed since the job was planned: ETag {etag} then, {got} now")
        if tuple(result.range) != (start, end) or len(data) != end - start:
            raise InputError(f"{uri} answered a read of bytes {start}-{end - 1} with {len(data)} bytes of range "
                             f"{tuple(result.range)}: the object changed since the job was planned "
                             f"({self.pin.size} bytes then)")
        return data
