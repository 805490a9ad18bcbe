"""The transport: every call one actor makes to a peer, behind a Protocol so the roles' logic can run on a fake."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Protocol

import aiohttp

from ..core import wire
from ..core.errors import PeerError, WireError
from ..core.messages import (
    Assignment,
    Commit,
    Finalize,
    Missing,
    Progress,
    Release,
    Report,
    SplitDone,
    SplitFailed,
    SplitRecords,
    StreamAck,
    StreamHeader,
    from_wire,
    to_wire,
)
from ..discovery import Peer
from .client import CBOR, PeerClient, PeerUnreachable, peer_error, peer_failure, read_cbor
from .frames import FrameReader

MapperMessage = Progress | SplitRecords | SplitDone | SplitFailed
SMALL_STREAM = 64 * 1024  # bytes of DATA frames at most, for a partition stream sent as one body
__all__ = ["HttpTransport", "MapperMessage", "PeerUnreachable", "Transport"]


class Transport(Protocol):
    """Peer calls by meaning; failures are named errors: PeerUnreachable, PeerError, Unavailable, WireError..."""

    def assign(self, mapper: Peer, assignment: Assignment) -> AsyncGenerator[MapperMessage, None]:
        """Send an assignment; yield the mapper's messages (PROGRESS heartbeats, then SPLITDONE or SPLITFAILED)
        until its stream ends.

        The caller enforces the lease between messages and closes the generator when it stops listening (the
        mapper then sees its master leave)."""
        ...

    async def send_partition(
        self, reducer: Peer, header: StreamHeader, blocks: Iterable[bytes], commit: Commit
    ) -> StreamAck:
        """Stream one partition of one split: the header, ``blocks`` of encoded DATA frames, then the COMMIT."""
        ...

    async def finalize(self, reducer: Peer, message: Finalize) -> Report | Missing:
        """Ask a reducer for its partition's report (or the splits it lacks)."""
        ...

    async def release(self, peer: Peer, message: Release) -> None:
        """Tell a peer to forget a job."""
        ...


class HttpTransport:
    """The real transport: CBOR over the actor's one aiohttp session, with the cluster token."""

    def __init__(self, client: PeerClient) -> None:
        self.client = client
        self.settings = client.settings

    async def assign(self, mapper: Peer, assignment: Assignment) -> AsyncGenerator[MapperMessage, None]:
        t = self.settings.timeouts
        url = f"{mapper.url}/internal/v1/assign"
        # No read timeout here: the caller holds the lease between messages (the same rule for every transport).
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=t.connect)
        try:
            async with self.client.session.post(
                url, data=wire.encode(to_wire(assignment)), headers=self._headers(CBOR), timeout=timeout
            ) as response:
                if response.status >= 400:
                    raise await peer_failure(response, url)
                async for message in self._messages(response, mapper):
                    yield message
        except (aiohttp.ClientError, OSError) as exc:
            raise peer_error(url, exc) from None

    async def _messages(self, response: aiohttp.ClientResponse, mapper: Peer) -> AsyncIterator[MapperMessage]:
        # The idle limit is a backstop only: the caller's lease is shorter.
        reader = FrameReader(response.content, self.settings.message_cap, idle=2 * self.settings.timeouts.lease)
        while True:
            try:
                raw = await reader.next()
            except WireError as error:
                raise PeerError(f"{mapper.name}: {error.message}") from None
            if raw is None:
                return  # whether a report came is the caller's to judge
            yield from_wire(raw, Progress, SplitRecords, SplitDone, SplitFailed)

    async def send_partition(
        self, reducer: Peer, header: StreamHeader, blocks: Iterable[bytes], commit: Commit
    ) -> StreamAck:
        t, cap = self.settings.timeouts, self.settings.frame_cap
        url = f"{reducer.url}/internal/v1/shuffle"

        async def body() -> AsyncIterator[bytes]:
            yield wire.frame(to_wire(header), cap)
            for block in blocks:
                yield block
            yield wire.frame(to_wire(commit), cap)

        # A small partition goes as one body with its length: one write, no chunked encoding on either side.
        small = header.size <= SMALL_STREAM
        data = b"".join([wire.frame(to_wire(header), cap), *blocks, wire.frame(to_wire(commit), cap)]) if small \
            else body()
        try:
            async with self.client.session.post(
                url, data=data, headers=self._headers("application/cbor-seq"),
                timeout=self.client.timeout(read=t.stream_idle + t.stage_wait),
            ) as response:
                answer = await read_cbor(response, self.settings.message_cap, url)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise peer_error(url, exc) from None
        return from_wire(answer, StreamAck)

    async def finalize(self, reducer: Peer, message: Finalize) -> Report | Missing:
        raw = await self.client.call(f"{reducer.url}/internal/v1/finalize", message, self.settings.result_cap,
                                     self.settings.timeouts.finalize)
        return from_wire(raw, Report, Missing)

    async def release(self, peer: Peer, message: Release) -> None:
        await self.client.call(f"{peer.url}/internal/v1/release", message, self.settings.message_cap,
                               self.settings.timeouts.request)

    def _headers(self, content_type: str) -> dict[str, str]:
        return {**self.client.headers, "Content-Type": content_type}
