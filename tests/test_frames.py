"""Stream reading (actors/net/frames.py): whole bodies under a cap, and CBOR frames off a real aiohttp stream."""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest
from aiohttp import StreamReader

from actors.core import wire
from actors.core.errors import PayloadTooLarge, WireError
from actors.net.frames import BODY_BLOCK, FrameReader, read_body

CAP = 1024


def stream(*chunks: bytes, eof: bool = True) -> StreamReader:
    """An aiohttp stream holding ``chunks`` as they would arrive off the socket (then its end, with ``eof``)."""
    reader = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    for chunk in chunks:
        reader.feed_data(chunk)
    if eof:
        reader.feed_eof()
    return reader


async def test_a_body_arrives_whole_from_many_chunks() -> None:
    body = bytes(range(256)) * 3
    assert await read_body(stream(*(body[i : i + 7] for i in range(0, len(body), 7))), CAP, None) == body
    assert await read_body(stream(b"x" * CAP), CAP, CAP) == b"x" * CAP  # exactly the cap is fine
    big = b"y" * (3 * BODY_BLOCK)
    assert await read_body(stream(big), len(big), None) == big  # longer than one read


async def test_a_body_over_the_cap_is_refused() -> None:
    declared = stream(eof=False)  # never fed: a declared length over the cap is refused before any read
    with pytest.raises(PayloadTooLarge, match="2000 bytes exceeds the cap of 1024"):
        await read_body(declared, CAP, 2000)
    with pytest.raises(PayloadTooLarge, match="exceeds the cap of 1024"):
        await read_body(stream(b"z" * 600, b"z" * 600), CAP, None)  # undeclared (chunked): cut when it passes


async def test_frames_split_anywhere_are_read_whole_then_a_clean_end() -> None:
    items = [{"a": 1}, "text", list(range(50))]
    data = b"".join(wire.frame(item, CAP) for item in items)
    reader = FrameReader(stream(*(data[i : i + 3] for i in range(0, len(data), 3))), CAP, idle=5.0)
    assert [await reader.next() for _ in items] == items
    assert reader.last_size == len(wire.frame(items[-1], CAP))
    assert await reader.next() is None  # the stream ended between frames
    await FrameReader(stream(), CAP, idle=5.0).expect_end()


@pytest.mark.parametrize("cut", [1, wire.PREFIX, wire.PREFIX + 2])
async def test_a_stream_that_ends_inside_a_frame_is_an_error(cut: int) -> None:
    data = wire.frame({"key": "value"}, CAP)
    with pytest.raises(WireError, match="stream ended inside a frame"):
        await FrameReader(stream(data[:cut]), CAP, idle=5.0).next()


async def test_a_frame_over_the_limit_is_refused_before_its_body_is_read() -> None:
    data = wire.frame("x" * 100, CAP)
    reader = FrameReader(stream(data[: wire.PREFIX], eof=False), CAP, idle=5.0)  # the body never comes
    with pytest.raises(WireError, match=f"a frame of {len(data)} bytes where at most 50 bytes may come"):
        await reader.next_raw(limit=50)


async def test_a_frame_over_the_cap_is_refused() -> None:
    with pytest.raises(PayloadTooLarge, match="frame of 2003 bytes exceeds the cap of 1024 bytes"):
        await FrameReader(stream(wire.frame("x" * 2000, 4096)), CAP, idle=5.0).next()


async def test_a_silent_peer_is_cut_off_after_the_idle_time() -> None:
    reader = FrameReader(stream(b"\x00", eof=False), CAP, idle=0.05)
    with pytest.raises(WireError, match=r"stream stalled: no bytes for 0\.05 s"):
        await reader.next()


async def test_bytes_after_the_last_frame_are_an_error() -> None:
    with pytest.raises(WireError, match="bytes after the COMMIT frame"):
        await FrameReader(stream(b"extra"), CAP, idle=5.0).expect_end()
