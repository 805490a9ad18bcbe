"""Calls into task processes: what a mapper and a reducer ask of their workers, in the actor's terms."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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
)


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
    """One split mapped in a task process: chunks go in, encoded frames come back to ``sink``."""

    def __init__(self, process: TaskProcess, start: MapStart, silence: float,
                 sink: Callable[[int, bytes, int], None], progress: Callable[[int], None]) -> None:
        self.process = process
        self.start = start
        self.label = label("mapper", start.job)
        self.silence = silence  # MR_TIMEOUT_LEASE: a worker silent this long is killed
        self.sink = sink
        self.progress = progress

    def _frames(self, frames: Frames) -> None:
        self.sink(frames.partition, frames.blob, frames.frames)

    async def _call(self, message: MapStart | MapChunk | MapRaw | MapEnd) -> object:
        return await self.process.call(message, self.label, self.silence, frames=self._frames, tick=self.progress)

    async def open(self) -> None:
        answer = await self._call(self.start)
        if not isinstance(answer, ChunkDone):
            raise WireError(f"{self.label}: a task process answered a map request with {type(answer).__name__}")

    async def feed(self, data: bytes, offset: int) -> None:
        """Map a chunk of whole lines that starts at byte ``offset`` of the input."""
        answer = await self._call(MapChunk(data, offset))
        if not isinstance(answer, ChunkDone):
            raise WireError(f"{self.label}: a task process answered a chunk with {type(answer).__name__}")

    async def feed_raw(self, path: str) -> None:
        """The whole input file at ``path``, for the job's ``mapper_raw`` (instead of chunks)."""
        answer = await self._call(MapRaw(path))
        if not isinstance(answer, ChunkDone):
            raise WireError(f"{self.label}: a task process answered a whole file with {type(answer).__name__}")

    async def finish(self) -> MapDone:
        answer = await self._call(MapEnd())
        if not isinstance(answer, MapDone):
            raise WireError(f"{self.label}: a task process answered the split's end with {type(answer).__name__}")
        return answer


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


async def describe_steps(pool: TaskPool, spec: JobSpec, silence: float) -> tuple[int, str]:
    """How many steps the job has (its ``steps()``) and its output's shape (actors.jobs.steps.SHAPES), in a task
    process."""
    async with pool.worker() as process:
        answer = await process.call(Describe(spec), label("steps", spec), silence)
    if not isinstance(answer, Described) or answer.steps < 1 or answer.shape not in SHAPES:
        raise TaskFailed(f"{label('steps', spec)}: a task process answered with {type(answer).__name__}")
    return answer.steps, answer.shape


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
