"""One map attempt's shared part: its state, the owned input it reads, and the heartbeat its long waits send."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable
from typing import TypeVar

from ..core.config import Settings
from ..core.messages import Assignment, Progress
from ..core.splits import ByteOrderMark, Chunker, OwnedLines, read_from
from ..inputs.gzipped import gunzip
from ..inputs.outdir import PartInfo
from ..inputs.pin import Pin
from ..inputs.ref import GZIP, PATH, S3, URL, WORK
from ..inputs.s3source import S3Source
from ..inputs.sources import HttpSource, InlineSource, PathSource, Source, UrlSource
from ..inputs.urls import UrlPolicy
from ..jobs import Job
from ..jobs.adapter import SdkJob
from ..net.client import PeerClient
from ..net.metrics import MapperMetrics
from ..tasks.pool import TaskPool
from ..tasks.protocol import MapDone
from .sample import LineBudget

T = TypeVar("T")

UNBOUNDED = 1 << 62  # the end of a split that owns every line of its (decompressed) input


class MapAttempt:
    """The state of one attempt at one split (set by MapRun), reading its owned input, and its heartbeat."""

    a: Assignment
    job: Job
    settings: Settings
    client: PeerClient
    metrics: MapperMetrics
    tasks: TaskPool | None
    bytes_read: int
    keys: int
    lines: int
    done: MapDone | None
    part: PartInfo | None

    def _progress(self) -> Progress:
        return Progress(self.a.job, self.a.epoch, self.a.split, self.a.attempt, self.bytes_read)

    def _source(self) -> Source:
        a, s = self.a, self.settings
        if a.inline:
            return InlineSource(a.inline)
        if a.input_kind == PATH:
            return PathSource(s.data_root, a.input_location)
        if a.input_kind == WORK:  # the previous step's records, on the volume every mapper and reducer shares
            return PathSource(s.work_root, a.input_location)
        if a.input_kind == URL:
            policy = UrlPolicy(s.allow_private_urls)
            pin = Pin(a.pin_size, a.pin_etag, a.pin_modified, gzip=a.compression == GZIP)
            return UrlSource(a.input_location, policy, s.timeouts.connect, s.timeouts.stream_idle, pin)
        if a.input_kind == S3:  # the operator's endpoint: trusted configuration, not under the URL address policy
            return S3Source(s, a.input_location, Pin(a.pin_size, a.pin_etag))
        return HttpSource(self.client.session, a.input_location, self.client.headers, s.timeouts.connect,
                          s.timeouts.stream_idle)

    def _owned_blocks(self) -> tuple[OwnedLines, AsyncGenerator[bytes, None]]:
        """The split's line owner and the blocks to feed it: a compressed input's whole split, decompressed."""
        a = self.a
        if a.compression == GZIP:
            return OwnedLines(0, UNBOUNDED), gunzip(self._source().blocks(0), a.input_name)
        return OwnedLines(a.start, a.end), self._source().blocks(read_from(a.start))

    async def _owned_pieces(self) -> AsyncGenerator[list[tuple[int, bytes]], None]:
        """The split's owned bytes cut into chunks, each with its offset in the input: the chunks each block read
        completes (maybe none), then the last ones; the bytes are counted as they are read. A user job's chunks are
        whole lines (its records); a native engine's end at whitespace. A BOM at the input's byte 0 is dropped."""
        s = self.settings
        chunker = Chunker(s.chunk_size, s.max_key, max_line=s.max_record if isinstance(self.job, SdkJob) else 0)
        owned, blocks = self._owned_blocks()
        mark = ByteOrderMark() if owned.first == 0 else None
        at = 0  # the next chunk's offset, once the first owned byte is known
        budget = LineBudget(self.a.sample) if self.a.sample else None  # a sample reads its first records only

        def placed(pieces: list[bytes]) -> list[tuple[int, bytes]]:
            nonlocal at
            out = []
            for piece in pieces if budget is None else budget.take(pieces):
                out.append((at, piece))
                at += len(piece)
            return out

        try:
            async for block in blocks:
                data = owned.feed(block)
                self.bytes_read += len(data)
                self.metrics.bytes_read.inc(len(data))
                if mark is not None:
                    data = mark.feed(data)
                    at = at or mark.skipped
                elif data and not at:
                    at = owned.first
                yield placed(chunker.feed(data))
                if owned.done or (budget is not None and budget.done):
                    break
        finally:
            await blocks.aclose()
        if mark is not None:
            chunker.feed(mark.finish())
        yield placed(chunker.finish())


    async def _meanwhile(self, work: Awaitable[T]) -> AsyncGenerator[Progress, None]:
        """Await ``work`` (a task process's answer), heartbeating every third of a lease while it runs."""
        future = asyncio.ensure_future(work)
        try:
            while not future.done():
                await asyncio.wait({future}, timeout=self.settings.timeouts.lease / 3)
                if not future.done():
                    yield self._progress()
            future.result()
        finally:
            if not future.done():
                future.cancel()
                await asyncio.gather(future, return_exceptions=True)

