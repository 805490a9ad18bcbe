"""Compressed inputs: telling a gzip input by its name or magic bytes, and decompressing one as a bounded stream."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import AsyncGenerator

from ..core.errors import InputError

MAGIC = b"\x1f\x8b"
OUT_BLOCK = 1024 * 1024  # most decompressed bytes produced per step: a small input may expand 1000-fold


def is_gzip(name: str, head: bytes) -> bool:
    """Whether an input named ``name`` whose first bytes are ``head`` is gzip-compressed."""
    return name.lower().endswith(".gz") or head.startswith(MAGIC)


async def gunzip(blocks: AsyncGenerator[bytes, None], name: str) -> AsyncGenerator[bytes, None]:
    """The decompressed bytes of a gzip stream (members concatenated, as gzip writes them), at most
    OUT_BLOCK at a time: memory stays bounded whatever the ratio. A corrupt or truncated stream is an InputError."""
    inflater = zlib.decompressobj(wbits=31)
    started = False
    try:
        async with contextlib.aclosing(blocks):
            async for block in blocks:
                data = block
                while True:
                    if inflater.eof and data:  # another member follows the one just ended
                        inflater = zlib.decompressobj(wbits=31)
                    started = True
                    out = inflater.decompress(data, OUT_BLOCK)
                    if out:
                        yield out
                    data = inflater.unconsumed_tail or (inflater.unused_data if inflater.eof else b"")
                    if not data and len(out) < OUT_BLOCK:
                        break  # the block is used up and zlib holds no more output for it (a full piece may)
            if started and not inflater.eof:
                raise InputError(f"gzip input {name!r} is truncated: its stream ends before its last member does")
    except zlib.error as error:
        raise InputError(f"gzip input {name!r} is corrupt: {error}") from None
