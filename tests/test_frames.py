"""Frame reading off a real aiohttp stream (actors/net/frames.py): however the bytes arrive, whole frames or errors."""

from __future__ import annotations

import asyncio
import itertools
import struct
from typing import Any
from unittest import mock

import aiohttp
import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core import wire
from actors.core.errors import PayloadTooLarge, WireError
from actors.net.frames import BODY_BLOCK, FrameReader, read_body

from .test_wire import CAP, VALUES, depth, same


def stream_of(pieces: list[bytes], end: bool = True) -> aiohttp.StreamReader:
    """An aiohttp stream fed ``pieces`` one by one, as a socket would deliver them."""
    protocol = mock.Mock(_reading_paused=False)
    stream = aiohttp.StreamReader(protocol, 2**16, loop=asyncio.get_running_loop())
    for piece in pieces:
        if piece:
            stream.feed_data(piece)
    if end:
        stream.feed_eof()
    return stream


async def read_all(reader: FrameReader) -> list[Any]:
    # next_raw, not next: a frame may hold CBOR null, which next() could not tell from the end of the stream.
    items = []
    while (body := await reader.next_raw()) is not None:
        items.append(wire.decode(body, reader.cap))
    return items


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@given(value=VALUES)
@settings(max_examples=100, deadline=None)
def test_frame_round_trip(value: Any) -> None:
    if depth(value) > wire.MAX_DEPTH:
        return
    framed = wire.frame(value, CAP)
    assert struct.unpack(">I", framed[:4])[0] == len(framed) - 4

    async def read() -> list[Any]:
        return await read_all(FrameReader(stream_of([framed]), CAP, idle=5.0))

    (item,) = asyncio.run(read())
    assert same(item, value)


@given(items=st.lists(VALUES, min_size=0, max_size=8), cuts=st.lists(st.integers(0, 10_000), max_size=12))
@settings(max_examples=100, deadline=None)
def test_frames_split_across_arbitrary_reads(items: list[Any], cuts: list[int]) -> None:
    items = [i for i in items if depth(i) <= wire.MAX_DEPTH]
    data = b"".join(wire.frame(item, CAP) for item in items)

    async def read() -> list[Any]:
        return await read_all(FrameReader(stream_of(cut(data, cuts)), CAP, idle=5.0))

    out = asyncio.run(read())
    assert len(out) == len(items)
    assert all(same(x, y) for x, y in zip(out, items, strict=True))


async def test_byte_by_byte() -> None:
    items = [{"a": 1}, [1, 2, 3], "x", {"b": {"c": [True, None, 1.5]}}]
    data = b"".join(wire.frame(i, CAP) for i in items)
    reader = FrameReader(stream_of([data[i : i + 1] for i in range(len(data))]), CAP, idle=5.0)
    assert await read_all(reader) == items


async def test_zero_length_frame_refused() -> None:
    with pytest.raises(WireError, match="empty frame"):
        await FrameReader(stream_of([b"\x00\x00\x00\x00"]), CAP, idle=5.0).next()


async def test_oversized_frame_refused_from_its_prefix_alone() -> None:
    # Only the prefix has arrived and the stream stays open: the reader must refuse without waiting for the body.
    reader = FrameReader(stream_of([struct.pack(">I", 101)], end=False), 100, idle=5.0)
    with pytest.raises(PayloadTooLarge):
        await reader.next()


async def test_a_frame_past_the_callers_limit_is_refused_before_its_body() -> None:
    framed = wire.frame({"k": "v" * 50}, CAP)
    reader = FrameReader(stream_of([framed[: wire.PREFIX]], end=False), CAP, idle=5.0)
    with pytest.raises(WireError, match="at most 20 bytes"):
        await reader.next_raw(limit=20)


async def test_bad_item_inside_a_frame_refused() -> None:
    tagged = cbor2.dumps(cbor2.CBORTag(1, 0))
    with pytest.raises(WireError):
        await FrameReader(stream_of([struct.pack(">I", len(tagged)) + tagged]), CAP, idle=5.0).next()


@pytest.mark.parametrize("cut_at", [1, 3, 4, 5, -1])
async def test_stream_ending_mid_frame(cut_at: int) -> None:
    data = wire.frame({"a": 1}, CAP) + wire.frame({"b": 2}, CAP)
    first = len(wire.frame({"a": 1}, CAP))
    reader = FrameReader(stream_of([data[: first + cut_at] if cut_at > 0 else data[:cut_at]]), CAP, idle=5.0)
    assert await reader.next() == {"a": 1}
    with pytest.raises(WireError, match="stream ended inside a frame"):
        await reader.next()


async def test_clean_end_and_nothing_after_the_last_frame() -> None:
    assert await FrameReader(stream_of([]), CAP, idle=5.0).next() is None
    reader = FrameReader(stream_of([wire.frame(1, CAP)]), CAP, idle=5.0)
    assert await reader.next() == 1
    await reader.expect_end()
    reader = FrameReader(stream_of([wire.frame(1, CAP) + b"x"]), CAP, idle=5.0)
    assert await reader.next() == 1
    with pytest.raises(WireError, match="bytes after the COMMIT"):
        await reader.expect_end()


async def test_a_silent_peer_is_an_error_after_idle() -> None:
    reader = FrameReader(stream_of([wire.frame(1, CAP)[:3]], end=False), CAP, idle=0.05)
    with pytest.raises(WireError, match="stalled"):
        await reader.next()


async def test_a_body_arrives_whole_from_many_chunks() -> None:
    body = bytes(range(256)) * 3
    assert await read_body(stream_of([body[i : i + 7] for i in range(0, len(body), 7)]), CAP, None) == body
    assert await read_body(stream_of([b"x" * 1024]), 1024, 1024) == b"x" * 1024  # exactly the cap is fine
    big = b"y" * (3 * BODY_BLOCK)
    assert await read_body(stream_of([big]), len(big), None) == big  # longer than one read


async def test_a_body_over_the_cap_is_refused() -> None:
    never_fed = stream_of([], end=False)  # a declared length over the cap is refused before any read
    with pytest.raises(PayloadTooLarge, match="2000 bytes exceeds the cap of 1024"):
        await read_body(never_fed, 1024, 2000)
    with pytest.raises(PayloadTooLarge, match="exceeds the cap of 1024"):
        await read_body(stream_of([b"z" * 600, b"z" * 600]), 1024, None)  # undeclared (chunked): cut as it passes
