"""Input sources read over HTTP: URL inputs go through the address policy's own session, ranges are honoured."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from actors.core.errors import InputError
from actors.inputs.pin import Pin
from actors.inputs.sources import UrlSource
from actors.inputs.urls import UrlPolicy

from .support import serve_app

DATA = b"".join(b"line %d of the input\n" % i for i in range(5000))


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback server with a ranged file and a redirect to it; it records every path asked for."""
    seen: list[str] = []

    async def data(request: web.Request) -> web.Response:
        seen.append(request.path)
        start, stop, _ = request.http_range.indices(len(DATA))
        return web.Response(body=DATA[start:stop], status=206,
                            headers={"Content-Range": f"bytes {start}-{stop - 1}/{len(DATA)}"})

    async def moved(request: web.Request) -> web.Response:
        seen.append(request.path)
        raise web.HTTPFound("/data.txt")

    app = web.Application()
    app.router.add_get("/data.txt", data)
    app.router.add_get("/moved.txt", moved)
    async with serve_app(app) as url:
        yield url, seen


async def _read(source: UrlSource, offset: int) -> bytes:
    return b"".join([block async for block in source.blocks(offset)])


async def test_url_source_reads_from_an_offset_when_private_urls_are_allowed(server: tuple[str, list[str]]) -> None:
    base, seen = server
    source = UrlSource(f"{base}/moved.txt", UrlPolicy(allow_private=True), connect=2.0, idle=5.0,
                       pin=Pin(len(DATA)))
    assert await _read(source, 1234) == DATA[1234:]
    assert seen == ["/moved.txt", "/data.txt"]  # an allowed redirect is followed


async def test_url_source_refuses_a_forbidden_address_as_a_bad_input(server: tuple[str, list[str]]) -> None:
    base, seen = server
    source = UrlSource(f"{base}/data.txt", UrlPolicy(allow_private=False), connect=2.0, idle=5.0,
                       pin=Pin(len(DATA)))
    with pytest.raises(InputError, match=r"127\.0\.0\.1 is not a public address: .* \(set MR_ALLOW_PRIVATE_URLS"):
        await _read(source, 0)
    assert seen == []
