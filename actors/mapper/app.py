"""The mapper actor: maps an assigned split and streams each partition's partial values to its reducer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

import aiohttp
from aiohttp import web

from ..core import wire
from ..core.config import Settings
from ..core.errors import (
    Conflict,
    DiscoveryError,
    KeyTooLarge,
    MapReduceError,
    PeerError,
    Unavailable,
    describe,
    first_error,
)
from ..core.logs import EventLog
from ..core.messages import (
    Assignment,
    Progress,
    SplitDone,
    SplitFailed,
    StreamAck,
    StreamHeader,
    from_wire,
    to_wire,
)
from ..core.splits import Chunker, OwnedLines, read_from
from ..discovery import Discovery, Peer
from ..inputs.ref import PATH, SERVED
from ..inputs.sources import HttpSource, PathSource, Source
from ..jobs import Job, get_job
from ..net.actor import DISCOVERY, IDENTITY, SETTINGS, base_app, discovery_context, read_cbor_body
from ..net.client import PeerClient, read_cbor, retrying, session_context
from .spool import Spool

SESSION = web.AppKey("session", aiohttp.ClientSession)
SEND_ATTEMPTS = 6

log = EventLog(__name__)


def build_mapper(settings: Settings) -> web.Application:
    app = base_app(settings, client_max_size=settings.message_cap)
    app.cleanup_ctx.append(session_context(SESSION))
    app.cleanup_ctx.append(discovery_context)
    app.router.add_post("/internal/v1/assign", assign)
    return app


async def assign(request: web.Request) -> web.StreamResponse:
    """Run one assignment; the answer is a frame stream: PROGRESS heartbeats, then SPLITDONE or SPLITFAILED."""
    settings = request.app[SETTINGS]
    assignment = from_wire(await read_cbor_body(request, settings.message_cap), Assignment)
    job = get_job(assignment.job_name)
    if request.app[IDENTITY].draining:
        raise Unavailable("mapper is shutting down")
    response = web.StreamResponse(headers={"Content-Type": "application/cbor-seq"})
    await response.prepare(request)
    run = MapRun(assignment, job, settings, request.app[SESSION], request.app[DISCOVERY],
                 request.app[IDENTITY].incarnation)
    fields = {"job": assignment.job, "epoch": assignment.epoch, "split": assignment.split,
              "attempt": assignment.attempt}
    log.info("split_started", **fields, start=assignment.start, end=assignment.end)
    try:
        outcome: SplitDone | SplitFailed
        try:
            # aclosing: if the master goes away mid-write, the run's own cleanup (spool, send task) runs here,
            # not later in an unowned finalizer task.
            async with contextlib.aclosing(run.run()) as progress_stream:
                async for progress in progress_stream:
                    await response.write(wire.frame(to_wire(progress), settings.message_cap))
            outcome = run.outcome()
            log.info("split_done", **fields, bytes=outcome.bytes_read, keys=outcome.keys)
        except MapReduceError as error:
            retriable = not isinstance(error, (Conflict, KeyTooLarge))
            outcome = SplitFailed(assignment.job, assignment.epoch, assignment.split, assignment.attempt,
                                  cause=error.message, retriable=retriable)
            log.warning("split_failed", **fields, cause=error.message)
        await response.write(wire.frame(to_wire(outcome), settings.message_cap))
        await response.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        # The master went away or gave up on this attempt: stop, nothing to hand back.
        log.warning("split_abandoned", **fields, cause="master closed the assignment")
    return response


class MapRun:
    """One attempt at one split: read the owned lines, map and spool them, stream every partition out."""

    def __init__(
        self,
        assignment: Assignment,
        job: Job,
        settings: Settings,
        session: aiohttp.ClientSession,
        discovery: Discovery,
        incarnation: str,
    ) -> None:
        self.a = assignment
        self.job = job
        self.settings = settings
        self.client = PeerClient(session, settings)
        self.discovery = discovery
        self.incarnation = incarnation
        self.bytes_read = 0
        self.keys = 0
        self.acks: dict[int, StreamAck] = {}

    def _progress(self) -> Progress:
        return Progress(self.a.job, self.a.epoch, self.a.split, self.a.attempt, self.bytes_read)

    def _source(self) -> Source:
        a, s = self.a, self.settings
        if a.input_kind == PATH:
            return PathSource(s.data_root, a.input_location)
        headers = self.client.headers if a.input_kind == SERVED else {}
        return HttpSource(self.client.session, a.input_location, headers, s.timeouts.connect, s.timeouts.stream_idle)

    async def run(self) -> AsyncGenerator[Progress, None]:
        s = self.settings
        spool = Spool(self.job, self.a.partitions, s.key_budget, s.frame_cap, s.spool_dir or None,
                      frame_keys=s.frame_keys, max_key=s.max_key)
        try:
            async with contextlib.aclosing(self._map(spool)) as mapping:
                async for progress in mapping:
                    yield progress
            send = asyncio.ensure_future(self._send_all(spool))
            try:
                heartbeat = self.settings.timeouts.lease / 3
                while not send.done():
                    await asyncio.wait({send}, timeout=heartbeat)
                    if not send.done():
                        yield self._progress()
                send.result()
            finally:
                send.cancel()
                await asyncio.gather(send, return_exceptions=True)
        finally:
            spool.close()

    async def _map(self, spool: Spool) -> AsyncGenerator[Progress, None]:
        owned = OwnedLines(self.a.start, self.a.end)
        chunker = Chunker(self.settings.chunk_size, self.settings.max_key)
        name = self.a.input_name
        blocks = self._source().blocks(read_from(self.a.start))
        try:
            async for block in blocks:
                data = owned.feed(block)
                self.bytes_read += len(data)
                for piece in chunker.feed(data):
                    spool.map(piece.decode("utf-8", "replace"), name)
                # Every block, not every piece: reading a long word yields no piece for a while, and a silent
                # mapper loses its lease.
                yield self._progress()
                if owned.done:
                    break
        finally:
            await blocks.aclose()
        for piece in chunker.finish():
            spool.map(piece.decode("utf-8", "replace"), name)
        spool.flush()
        self.keys = spool.total_keys
        yield self._progress()

    async def _send_all(self, spool: Spool) -> None:
        partitions = self.a.only_partitions or list(range(self.a.partitions))
        reducers = await self._reducers()
        try:
            async with asyncio.TaskGroup() as group:
                for partition in partitions:
                    group.create_task(self._send(spool, partition, reducers[partition]))
        except BaseExceptionGroup as errors:
            raise first_error(errors) from None

    async def _reducers(self) -> dict[int, Peer]:
        needed = self.a.only_partitions or list(range(self.a.partitions))
        t = self.settings.timeouts
        try:
            peers = await self.discovery.wait_for("reducer", max(needed) + 1, t.peers)
        except DiscoveryError as error:
            raise Unavailable(f"cannot find the reducers for partitions {needed}: {error.message}") from None
        by_ordinal = {p.ordinal: p for p in peers}
        missing = [p for p in needed if p not in by_ordinal]
        if missing:
            raise Unavailable(f"no reducer with ordinal {missing} is visible")
        return by_ordinal

    async def _send(self, spool: Spool, partition: int, reducer: Peer) -> None:
        a = self.a
        header = StreamHeader(job=a.job, epoch=a.epoch, split=a.split, attempt=a.attempt, partition=partition,
                              partitions=a.partitions, job_name=a.job_name, size=spool.sizes[partition])
        cap = self.settings.frame_cap
        url = f"{reducer.url}/internal/v1/shuffle"

        async def body() -> AsyncIterator[bytes]:
            yield wire.frame(to_wire(header), cap)
            for block in spool.blocks(partition):
                yield block
            yield wire.frame(to_wire(spool.commit(partition)), cap)

        async def post() -> StreamAck:
            t = self.settings.timeouts
            try:
                async with self.client.session.post(
                    url, data=body(), headers={**self.client.headers, "Content-Type": "application/cbor-seq"},
                    timeout=self.client.timeout(read=t.stream_idle + t.stage_wait),
                ) as response:
                    answer = await read_cbor(response, self.settings.message_cap, url)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise PeerError(f"{url}: {describe(exc)}") from None
            return from_wire(answer, StreamAck)

        t = self.settings.timeouts
        ack = await retrying(post, (PeerError, Unavailable), SEND_ATTEMPTS, t.retry_deadline)
        self.acks[partition] = ack
        log.debug("partition_sent", job=a.job, split=a.split, attempt=a.attempt, partition=partition,
                  status=ack.status)

    def outcome(self) -> SplitDone:
        a = self.a
        incarnations = [self.acks[p].incarnation if p in self.acks else "" for p in range(a.partitions)]
        duplicates = sum(1 for ack in self.acks.values() if ack.status == "duplicate")
        return SplitDone(a.job, a.epoch, a.split, a.attempt, mapper=self.incarnation, bytes_read=self.bytes_read,
                         keys=self.keys, incarnations=incarnations, duplicates=duplicates)

