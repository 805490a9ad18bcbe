"""Calls into task processes: what a mapper and a reducer ask of their workers, in the actor's terms."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ..core import wire
from ..core.counters import CounterLimits, CounterMap, valid_counters
from ..core.errors import TaskFailed, WireError
from ..jobs import Job
from ..jobs.adapter import SdkJob
from ..jobs.steps import SHAPES
from ..sdk import MapReduceJob
from .pool import TaskPool
from .process import TaskProcess
from .protocol import (
    ChunkDone,
    Configure,
    Describe,
    Described,
    Done,
    Encoded,
    EncodeResult,
    Failed,
    Frames,
    JobSpec,
    MapChunk,
    MapDone,
    MapEnd,
    MapRaw,
    MapStart,
    Reduced,
    ReduceRuns,
    TaskPlace,
    Tick,
)

T = TypeVar("T")


def user_spec(job: Job, params: Mapping[str, str]) -> JobSpec | None:
    """How a worker finds the job, if its code is user code (an SDK job: a built-in native engine is not)."""
    if not isinstance(job, SdkJob):
        return None
    cls = type(job.job)
    return JobSpec(job.name, cls.__module__, cls.__qualname__, dict(params), job.step)


def class_spec(cls: type[MapReduceJob], params: Mapping[str, str]) -> JobSpec:
    """How a worker finds a job class (nothing of the job's code runs here)."""
    return JobSpec(cls.name, cls.__module__, cls.__qualname__, dict(params))


def label(what: str, spec: JobSpec) -> str:
    return f"{what} of job {spec.name!r}"


class MapTask:
    """One split mapped in a task process: chunks go in, encoded frames come back to ``sink``.

    Pipelined: a chunk is sent while the worker still maps the one before, so reading, sending and spooling overlap
    with the job's mapping; at most :data:`WINDOW` chunks are unanswered at once (memory stays bounded). The worker
    answers requests in order, so its frames arrive exactly as a request at a time would bring them. One reader
    task (owned here: :meth:`close` ends it) takes every answer as it comes; the worker never waits on a full pipe.
    Use as ``async with``."""

    WINDOW = 2

    def __init__(self, process: TaskProcess, start: MapStart, silence: float,
                 sink: Callable[[int, bytes, int], None], progress: Callable[[int], None]) -> None:
        self.process = process
        self.start = start
        self.label = label("mapper", start.job)
        self.silence = silence  # MR_TIMEOUT_LEASE: a worker silent this long (while it owes an answer) is killed
        self.sink = sink
        self.progress = progress
        self.chunks = 0  # chunks sent and not answered yet
        self.ended = False  # MapEnd sent
        self._room = asyncio.Event()  # set while fewer than WINDOW chunks are unanswered
        self._owed = asyncio.Event()  # set while the worker owes an answer (only then is its silence a stall)
        self._room.set()
        self._reader: asyncio.Task[MapDone] | None = None

    async def __aenter__(self) -> MapTask:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _frames(self, frames: Frames) -> None:
        self.sink(frames.partition, frames.blob, frames.frames)

    async def open(self) -> None:
        answer = await self.process.call(self.start, self.label, self.silence, frames=self._frames,
                                         tick=self.progress)
        if not isinstance(answer, ChunkDone):
            raise WireError(f"{self.label}: a task process answered a map request with {type(answer).__name__}")
        self._reader = asyncio.ensure_future(self._read())

    async def feed(self, data: bytes, offset: int) -> None:
        """Map a chunk of whole lines that starts at byte ``offset`` of the input."""
        await self._request(MapChunk(data, offset))

    async def _request(self, message: MapChunk | MapRaw) -> None:
        """Send a request the worker answers with ChunkDone once fewer than WINDOW are unanswered; returns when the
        worker's pipe has taken it (its answer comes later). The worker's failure so far raises here."""
        await self._guard(self._room.wait())
        self._count(+1)  # before the write: the answer may come before the write returns
        await self._guard(self.process.send(message, self.label, self.silence))

    async def feed_raw(self, path: str) -> None:
        """The whole input file at ``path``, for the job's ``mapper_raw`` (instead of chunks)."""
        await self._request(MapRaw(path))

    async def finish(self) -> MapDone:
        """End the split: every chunk's answer, then the counts per partition."""
        self.ended = True
        self._owed.set()
        await self._guard(self.process.send(MapEnd(), self.label, self.silence))
        assert self._reader is not None
        done = await self._reader
        self.process.spent = False  # every request is answered: the worker is free for another
        return done

    async def close(self) -> None:
        """End the reader if it still runs (the split was abandoned: the worker is left spent, its owner kills it)."""
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    def _count(self, change: int) -> None:
        self.chunks += change
        if self.chunks < self.WINDOW:
            self._room.set()
        else:
            self._room.clear()
        if self.chunks or self.ended:
            self._owed.set()
        else:
            self._owed.clear()

    async def _guard(self, work: Awaitable[T]) -> T:
        """``work``, unless the reader ends first (the worker failed, died or stalled): then its error."""
        assert self._reader is not None
        future = asyncio.ensure_future(work)
        try:
            await asyncio.wait({future, self._reader}, return_when=asyncio.FIRST_COMPLETED)
            if self._reader.done():
                failure = self._reader.exception()
                if failure is not None:  # the worker's own cause, not the broken pipe it left a write with
                    raise failure
                if not future.done():
                    raise WireError(f"{self.label}: a task process ended the split before it was sent whole")
            return future.result()
        finally:
            if not future.done():
                future.cancel()
                await asyncio.gather(future, return_exceptions=True)

    async def _read(self) -> MapDone:
        """Every answer of the split, in order: frames to the sink, ticks to progress, a ChunkDone per chunk, then
        MapDone after MapEnd. A worker that owes nothing may be silent (the actor is still reading the input)."""
        while True:
            await self._owed.wait()
            reply = await self.process.receive(self.label, self.silence)
            if isinstance(reply, Tick):
                self.progress(reply.done)
            elif isinstance(reply, Frames):
                self._frames(reply)
            elif isinstance(reply, Failed):  # the answer to the oldest request: a chunk, else the end
                owed = self.chunks - 1 + int(self.ended) if self.chunks else 0
                raise await self.process.failure(reply, owed=owed)
            elif isinstance(reply, ChunkDone) and self.chunks:
                self._count(-1)
            elif isinstance(reply, MapDone) and self.ended and not self.chunks:
                return reply
            else:
                raise WireError(f"{self.label}: a task process answered with {type(reply).__name__} out of turn "
                                f"({self.chunks} chunks unanswered, end {'sent' if self.ended else 'not sent'})")


async def reduce_runs(process: TaskProcess, spec: JobSpec, paths: list[Path], batch: int, silence: float,
                      limits: CounterLimits, place: TaskPlace | None = None) -> tuple[bytes, CounterMap]:
    """The job's reducer over sorted runs, in a task process (in ``place``: its side files): its result, encoded as
    one CBOR map, and the reduce's counters."""
    request = ReduceRuns(spec, [str(path) for path in paths], batch, limits.counters, limits.name, place or TaskPlace())
    answer = await process.call(request, label("reducer", spec), silence)
    if not isinstance(answer, Reduced):
        raise TaskFailed(f"{label('reducer', spec)}: a task process answered with {type(answer).__name__}")
    if not valid_counters(answer.counters):
        raise WireError(f"{label('reducer', spec)}: a task process sent malformed counters")
    return answer.result, answer.counters


def decode_result(result: bytes, cap: int) -> dict[str, Any] | list[list[Any]]:
    """A worker's encoded result (strict CBOR): a map of keys to values, or a list of [canonical key, value]."""
    totals = wire.decode(result, cap)
    if type(totals) is list:
        if not all(type(r) is list and len(r) == 2 and type(r[0]) is str for r in totals):
            raise WireError("a task process's records are not [key, value] pairs")
        return totals
    if type(totals) is not dict:
        raise WireError("a task process's result is not a map")
    return totals


async def describe_steps(pool: TaskPool, spec: JobSpec, silence: float) -> tuple[int, str, bool]:
    """How many steps the job has (its ``steps()``), its output's shape (actors.jobs.steps.SHAPES) and whether its
    first step maps whole input files (``Step.mapper_raw``), in a task process."""
    async with pool.worker() as process:
        answer = await process.call(Describe(spec), label("steps", spec), silence)
    if not isinstance(answer, Described) or answer.steps < 1 or answer.shape not in SHAPES:
        raise TaskFailed(f"{label('steps', spec)}: a task process answered with {type(answer).__name__}")
    return answer.steps, answer.shape, answer.whole


async def configure(pool: TaskPool, spec: JobSpec, silence: float) -> None:
    """The job's ``__init__`` and ``configure`` with the parameters, in a task process (JobConfigError: a 400)."""
    async with pool.worker() as process:
        answer = await process.call(Configure(spec), label("configure", spec), silence)
    if not isinstance(answer, Done):
        raise TaskFailed(f"{label('configure', spec)}: a task process answered with {type(answer).__name__}")


async def encode_result(pool: TaskPool, spec: JobSpec, result: Mapping[str, object], silence: float) -> bytes:
    """The job's JSON of a finished result, sorted by its ``order``, in a task process."""
    body = wire.encode(dict(result))
    async with pool.worker() as process:
        answer = await process.call(EncodeResult(spec, body), label("order", spec), silence)
    if not isinstance(answer, Encoded):
        raise TaskFailed(f"{label('order', spec)}: a task process answered with {type(answer).__name__}")
    return answer.payload
