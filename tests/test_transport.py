"""The real transport against a small real server on loopback: what each peer answer becomes, hostile ones too."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

import aiohttp
import pytest
from aiohttp import web

from actors.core import wire
from actors.core.config import Settings
from actors.core.errors import PeerError, Unavailable, WireError
from actors.core.messages import (
    Assignment,
    Commit,
    Data,
    Finalize,
    Missing,
    Progress,
    Release,
    SplitDone,
    StreamAck,
    StreamHeader,
    from_wire,
    to_wire,
)
from actors.discovery import Peer
from actors.net.client import PeerClient, PeerUnreachable
from actors.net.transport import SMALL_STREAM, HttpTransport

from .conftest import FAST
from .support import serve_app

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ASSIGNMENT = Assignment(job="j", epoch=1, split=0, attempt=1, job_name="wordcount", input_kind="path",
                        input_location="a.txt", input_name="a.txt", start=0, end=10, partitions=1, only_partitions=[])
HEADER = StreamHeader(job="j", epoch=1, split=0, attempt=1, partition=0, partitions=1, job_name="wordcount", size=0)


@dataclass
class Server:
    peer: Peer
    transport: HttpTransport
    seen: list[tuple[str, bytes, str]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers = contextlib.AsyncExitStack()
    sessions: list[aiohttp.ClientSession] = []

    async def start(handler: Handler) -> Server:
        seen: list[tuple[str, bytes, str]] = []

        async def record(request: web.Request) -> web.StreamResponse:
            seen.append((request.path, await request.read(), request.headers.get("Authorization", "")))
            return await handler(request)

        app = web.Application()
        app.router.add_post("/{tail:.*}", record)
        url = await servers.enter_async_context(serve_app(app))
        session = aiohttp.ClientSession()
        sessions.append(session)
        settings = Settings(token="secret", timeouts=FAST)
        peer = Peer(ordinal=0, role="reducer", name="reducer-0", url=url)
        return Server(peer, HttpTransport(PeerClient(session, settings)), seen)

    yield start
    for session in sessions:
        await session.close()
    await servers.aclose()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cbor(message: StreamAck | Missing) -> web.Response:
    return web.Response(body=wire.encode(to_wire(message)), content_type="application/cbor")


async def test_a_refused_connection_is_unreachable_for_every_call() -> None:
    async with aiohttp.ClientSession() as session:
        transport = HttpTransport(PeerClient(session, Settings(timeouts=FAST)))
        peer = Peer(ordinal=0, role="reducer", name="reducer-0", url=f"http://127.0.0.1:{closed_port()}")
        with pytest.raises(PeerUnreachable):
            await transport.send_partition(peer, HEADER, [], Commit(0, 0, 0))
        with pytest.raises(PeerUnreachable):
            await transport.finalize(peer, Finalize("j", 1, 0, 1, "wordcount"))
        with pytest.raises(PeerUnreachable):
            await transport.release(peer, Release("j", 1))
        with pytest.raises(PeerUnreachable):
            await anext(transport.assign(peer, ASSIGNMENT))


async def test_a_partition_stream_carries_header_blocks_and_commit_with_the_token(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    ack = StreamAck("j", 1, 0, 0, "committed", "inc-1")
    server = await serve(lambda request: _answer(cbor(ack)))
    block = wire.frame(to_wire(Data({"a": 2})), 1024)
    assert await server.transport.send_partition(server.peer, HEADER, [block], Commit(1, 1, 2)) == ack
    path, body, auth = server.seen[0]
    assert path == "/internal/v1/shuffle" and auth == "Bearer secret"
    prefix = wire.PREFIX
    first = wire.frame_length(body[:prefix], 1024)
    assert from_wire(wire.decode(body[prefix : prefix + first], 1024), StreamHeader) == HEADER
    assert body[prefix + first : prefix + first + len(block)] == block
    assert from_wire(wire.decode(body[prefix * 2 + first + len(block) :], 1024), Commit) == Commit(1, 1, 2)


async def test_a_small_partition_goes_as_one_body_with_its_length_a_large_one_streamed(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    """A small partition is one write with a Content-Length (no chunked framing for either side to do); past
    SMALL_STREAM it is streamed block by block, never joined in memory."""
    lengths: list[tuple[str | None, str | None]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        lengths.append((request.headers.get("Content-Length"), request.headers.get("Transfer-Encoding")))
        return cbor(StreamAck("j", 1, 0, 0, "committed", "inc-1"))

    server = await serve(handler)
    small = wire.frame(to_wire(Data({"a": 2})), 1024)
    await server.transport.send_partition(server.peer, replace(HEADER, size=len(small)), [small], Commit(1, 1, 2))
    big = [wire.frame(to_wire(Data({f"k{i}-{j}": 1 for j in range(2000)})), 1 << 20) for i in range(4)]
    size = sum(map(len, big))
    assert size > SMALL_STREAM
    await server.transport.send_partition(server.peer, replace(HEADER, size=size), big, Commit(4, 8000, 8000))
    (small_length, small_chunked), (big_length, big_chunked) = lengths
    assert small_chunked is None and small_length == str(len(server.seen[0][1]))
    assert big_chunked == "chunked" and big_length is None
    assert b"".join(big) in server.seen[1][1]


async def _answer(response: web.StreamResponse) -> web.StreamResponse:
    return response


@pytest.mark.parametrize(("status", "error"), [(500, PeerError), (503, Unavailable), (400, WireError)])
async def test_error_answers_become_named_errors_that_are_not_unreachable(
    serve: Callable[..., Awaitable[Server]], status: int, error: type[Exception]
) -> None:
    server = await serve(lambda request: _answer(web.json_response({"error": "x", "message": "no budget"},
                                                                    status=status)))
    with pytest.raises(error, match="no budget") as caught:
        await server.transport.finalize(server.peer, Finalize("j", 1, 0, 1, "wordcount"))
    assert not isinstance(caught.value, PeerUnreachable)


async def test_a_wrong_message_type_is_refused(serve: Callable[..., Awaitable[Server]]) -> None:
    server = await serve(lambda request: _answer(cbor(StreamAck("j", 1, 0, 0, "committed", "i"))))
    with pytest.raises(WireError, match="expected a report or missing"):
        await server.transport.finalize(server.peer, Finalize("j", 1, 0, 1, "wordcount"))


async def stream(request: web.Request, frames: list[bytes]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/cbor-seq"})
    await response.prepare(request)
    for frame in frames:
        await response.write(frame)
    await response.write_eof()
    return response


async def test_an_assignment_yields_heartbeats_then_the_report(serve: Callable[..., Awaitable[Server]]) -> None:
    done = SplitDone("j", 1, 0, 1, 10, 2, 0)
    frames = [wire.frame(to_wire(Progress("j", 1, 0, 1, 5)), 1024), wire.frame(to_wire(done), 1024)]
    server = await serve(lambda request: stream(request, frames))
    messages = [m async for m in server.transport.assign(server.peer, ASSIGNMENT)]
    assert messages[-1] == done and isinstance(messages[0], Progress)
    assert from_wire(wire.decode(server.seen[0][1], 4096), Assignment) == ASSIGNMENT


async def test_an_assignment_stream_ends_at_its_end_even_without_a_report(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    # Judging a missing report is the coordinator's job (tests/test_coordinator_unit.py); the transport just ends.
    server = await serve(lambda request: stream(request, [wire.frame(to_wire(Progress("j", 1, 0, 1, 5)), 1024)]))
    assert [m async for m in server.transport.assign(server.peer, ASSIGNMENT)] == [Progress("j", 1, 0, 1, 5)]


async def test_a_cut_or_foreign_frame_on_an_assignment_stream_is_a_peer_error(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    cut = wire.frame(to_wire(Progress("j", 1, 0, 1, 5)), 1024)[:-2]
    server = await serve(lambda request: stream(request, [cut]))
    with pytest.raises(PeerError, match="stream ended inside a frame"):
        async for _ in server.transport.assign(server.peer, ASSIGNMENT):
            pass
    foreign = await serve(lambda request: stream(request, [wire.frame(to_wire(Release("j", 1)), 1024)]))
    with pytest.raises(WireError, match="expected a progress or splitrecords or splitdone or splitfailed"):
        async for _ in foreign.transport.assign(foreign.peer, ASSIGNMENT):
            pass
