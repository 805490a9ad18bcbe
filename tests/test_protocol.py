"""An actor's connections (actors/net/protocol.py) on a real actor server on loopback: pipelining and the head deadline.

tests/test_hostile_api.py covers a slow head, a silent connection and an idle keep-alive connection; these cover a
head queued behind a request that takes longer than the deadline, and JSON protocol errors from the runner's own
listener.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from actors.net.actor import base_app, make_runner
from actors.net.protocol import ActorProtocol

from .conftest import FAST, actor_settings

HEAD_TIMEOUT = 0.5
SLOW = 3 * HEAD_TIMEOUT  # the first request outlasts the deadline of the head pipelined behind it


@dataclasses.dataclass
class Server:
    host: str
    port: int
    slow_entered: asyncio.Event


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    settings = actor_settings("mapper", 0, tmp_path, timeouts=dataclasses.replace(FAST, headers=HEAD_TIMEOUT))
    app = base_app(settings, client_max_size=1024)

    entered = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        entered.set()
        await asyncio.sleep(SLOW)  # the handler's own pace, not a wait for a condition
        return web.json_response({"slow": True})

    app.router.add_get("/slow", slow)
    runner = make_runner(app, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    await runner.listen(sock)
    try:
        host, port = sock.getsockname()
        yield Server(host, port, entered)
    finally:
        await runner.cleanup()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return status, await reader.readexactly(length)


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
async def test_a_whole_head_pipelined_behind_a_slow_request_is_served(server: Server) -> None:
    host, port = server.host, server.port
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(10):
            first, body = await read_response(reader)
            assert first == 200 and b"slow" in body
            second, body = await read_response(reader)
            assert second == 200 and b'"ok"' in body, body
    finally:
        writer.close()


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
async def test_a_partial_head_pipelined_behind_a_slow_request_gets_the_deadline_after_it(
        server: Server) -> None:
    host, port = server.host, server.port
    reader, writer = await asyncio.open_connection(host, port)
    loop = asyncio.get_running_loop()
    try:
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(10):
            await server.slow_entered.wait()
            writer.write(b"GET /healthz HTTP/1.1\r\nX-a: ")  # while /slow runs: then nothing more
            first, _ = await read_response(reader)
            served = loop.time()
            assert first == 200  # not cut short: the head behind it could not be read while it ran
            second, body = await read_response(reader)
            assert second == 408 and b"MR_TIMEOUT_HEADERS" in body, body
            assert loop.time() - served >= HEAD_TIMEOUT * 0.8  # timed from the end of the slow request
            assert await reader.read() == b""
    finally:
        writer.close()


async def test_actor_connections_are_served_by_the_actor_protocol(server: Server) -> None:
    """A malformed request gets the JSON error only ActorProtocol gives: the runner's listener builds it."""
    host, port = server.host, server.port
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        async with asyncio.timeout(10):
            status, body = await read_response(reader)
        assert status == 400 and b'"bad_http"' in body, body
    finally:
        writer.close()
    assert ActorProtocol.__mro__[1] is web.RequestHandler  # the public subclass point, nothing deeper
