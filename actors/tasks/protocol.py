"""The task protocol: the messages between an actor and its worker process, as length-prefixed CBOR frames.

Each message is a frozen dataclass, sent as a CBOR map of its fields plus ``t`` (its kind); bytes travel as CBOR
byte strings (chunks of input, encoded shuffle frames, an encoded result), never as pickles.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..core import wire
from ..core.errors import WireError

_LENGTH = struct.Struct(">I")
PREFIX = _LENGTH.size
_MIN_SPLIT = 64 * 1024  # bytes of a chunk from which it is framed in pieces (a smaller one is copied: cheap)


@dataclass(frozen=True)
class JobSpec:
    """Which job a worker runs: its class (imported by module and qualified name) and its parameters."""

    name: str
    module: str
    qualname: str
    params: dict[str, str]
    step: int = 0  # which of the job's steps (actors.sdk.Step) to run


@dataclass(frozen=True)
class TaskPlace:
    """Where a task runs: ``workdir`` (made by the actor, removed by it after the attempt; "" for none) holds the
    job's side files, copied from ``data_root`` or the job's package and checked against ``files`` (name ->
    ``SIZE:DIGEST``, actors.jobs.sidefiles), and is the task's working directory while it runs."""

    workdir: str = ""
    data_root: str = ""
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MapStart:
    """Actor → worker: map one split's chunks into encoded shuffle frames."""

    job: JobSpec
    source: str  # the input's name, given to the mapper
    partitions: int
    key_budget: int
    frame_cap: int
    frame_keys: int
    max_key: int
    batch: int  # lines mapped between two progress ticks (MR_TASK_BATCH)
    max_counters: int  # MR_MAX_COUNTERS
    max_counter_name: int  # MR_MAX_COUNTER_NAME
    max_bad_records: int  # the job's max_bad_records: records that fail alone are skipped up to this many
    place: TaskPlace = field(default_factory=TaskPlace)
    format: str = "lines"  # the input's record format (actors.jobs.records)
    # A map-only job's task: its records in the order mapped (no combiner), sent back as part-file lines for
    # partition 0 (``partitions`` is then 1) instead of shuffle frames.
    direct: bool = False
    cuts: list[str] = field(default_factory=list)  # a total-order job's cut points (core/ranges.py)


@dataclass(frozen=True)
class MapRaw:
    """Actor → worker: map the whole input file at ``path`` with the job's ``mapper_raw`` (instead of chunks)."""

    path: str


@dataclass(frozen=True)
class MapChunk:
    """Actor → worker: one chunk of whole lines (raw UTF-8), starting at byte ``offset`` of the input."""

    data: bytes
    offset: int  # where the chunk starts in its input: a bad record is named by its own offset


@dataclass(frozen=True)
class MapEnd:
    """Actor → worker: the split is read; flush and report the partitions' counts."""


@dataclass(frozen=True)
class ReduceRuns:
    """Actor → worker: run the job's reducer over sorted runs on the shared disk (actors.tasks.runs's format)."""

    job: JobSpec
    paths: list[str]
    batch: int  # keys reduced between two progress ticks
    max_counters: int  # MR_MAX_COUNTERS
    max_counter_name: int  # MR_MAX_COUNTER_NAME
    place: TaskPlace = field(default_factory=TaskPlace)


@dataclass(frozen=True)
class Configure:
    """Actor → worker: make the job with these parameters (its ``__init__`` and ``configure``), as a submit checks."""

    job: JobSpec


@dataclass(frozen=True)
class EncodeResult:
    """Actor → worker: the job's JSON of a finished result (its ``order`` sorts it), from the result as CBOR."""

    job: JobSpec
    result: bytes


@dataclass(frozen=True)
class Describe:
    """Actor → worker: how many steps the job has, its output's shape and whether it maps whole files (its
    ``steps()`` is user code)."""

    job: JobSpec


@dataclass(frozen=True)
class Described:
    """Worker → actor: the job's number of steps, its output's shape (actors.jobs.steps: values, records or
    map-only, decided by its last step), and whether its first step maps each input file whole (``mapper_raw``)."""

    steps: int
    shape: str
    whole: bool


@dataclass(frozen=True)
class Done:
    """Worker → actor: a request with nothing to return went well."""


@dataclass(frozen=True)
class Encoded:
    """Worker → actor: the job's encoded result (compact ASCII JSON)."""

    payload: bytes


@dataclass(frozen=True)
class Tick:
    """Worker → actor: still working (``done`` records so far in this request)."""

    done: int


@dataclass(frozen=True)
class Frames:
    """Worker → actor: encoded shuffle frames for one partition, to append to its spool as they are."""

    partition: int
    blob: bytes
    frames: int


@dataclass(frozen=True)
class ChunkDone:
    """Worker → actor: the chunk is mapped (its frames, if a flush made any, were sent before)."""


@dataclass(frozen=True)
class MapDone:
    """Worker → actor: every frame is sent; per partition its frame count, keys, checksum and bytes; the attempt's
    counters (actors.core.counters.CounterMap) and bad records (their count, the first few)."""

    frames: list[int]
    keys: list[int]
    checksums: list[int]
    sizes: list[int]
    counters: dict[str, dict[str, int]]
    bad_count: int
    bad_first: list[list[Any]]


@dataclass(frozen=True)
class Reduced:
    """Worker → actor: the partition's result, one CBOR map (or, for records, a CBOR array of [key, value]), and the
    reduce's counters."""

    result: bytes
    counters: dict[str, dict[str, int]]


@dataclass(frozen=True)
class Failed:
    """Worker → actor: the request failed. ``code``: the error's code (actors.core.errors) when the failure is
    deterministic (the job's own code, a key or value past a limit), "" when it is not (retry it elsewhere);
    ``fatal``: the worker exits after this (its state cannot be trusted); ``traceback``: the user code's own, for the
    actor's logs of the job (empty when the framework found the fault)."""

    cause: str
    code: str
    fatal: bool
    traceback: str


Message = (MapStart | MapChunk | MapRaw | MapEnd | ReduceRuns | Configure | EncodeResult | Describe | Tick | Frames
           | ChunkDone | MapDone | Reduced | Done | Encoded | Described | Failed)
_KINDS: dict[str, type[Any]] = {cls.__name__: cls for cls in
                                (MapStart, MapChunk, MapRaw, MapEnd, ReduceRuns, Configure, EncodeResult, Describe,
                                 Tick, Frames, ChunkDone, MapDone, Reduced, Done, Encoded, Described, Failed)}


def encode(message: Message) -> bytes:
    """One frame: a 4-byte big-endian length, then the message as a CBOR map."""
    fields = {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}
    if isinstance(message, (MapStart, ReduceRuns, Configure, EncodeResult, Describe)):
        fields["job"] = dataclasses.asdict(message.job)
    if isinstance(message, (MapStart, ReduceRuns)):
        fields["place"] = dataclasses.asdict(message.place)
    body = wire.encode({"t": type(message).__name__, **fields})
    return _LENGTH.pack(len(body)) + body


def encode_parts(message: Message) -> list[bytes]:
    """:func:`encode`'s frame in pieces whose concatenation it is: a chunk's data is one piece, as it is (a 4 MiB
    chunk is not copied twice to frame it; a pipe's writer copies it at most once more)."""
    if not isinstance(message, MapChunk) or len(message.data) < _MIN_SPLIT:
        return [encode(message)]
    # The map with the data last and empty, so its head is the last byte (0x40): that head, grown to the data's
    # length (a map's order is free: :func:`decode` reads the same message).
    others = {f.name: getattr(message, f.name) for f in dataclasses.fields(message) if f.name != "data"}
    empty = wire.encode({"t": type(message).__name__, **others, "data": b""})
    if empty[-1:] != b"\x40":  # the codec ordered the map itself: frame it whole
        return [encode(message)]
    size = len(message.data)
    head = bytes([0x5A]) + size.to_bytes(4, "big") if size < 1 << 32 else bytes([0x5B]) + size.to_bytes(8, "big")
    return [_LENGTH.pack(len(empty) - 1 + len(head) + size) + empty[:-1] + head, message.data]


def decode(body: bytes, cap: int) -> Message:
    """The message of one frame's body; WireError if it is not one."""
    raw = wire.decode(body, cap)
    if type(raw) is not dict:
        raise WireError("a task message must be a CBOR map")
    cls = _KINDS.get(raw.pop("t", None))
    if cls is None:
        raise WireError("a task message of no known kind")
    names = {f.name for f in dataclasses.fields(cls)}
    if set(raw) != names:
        raise WireError(f"a {cls.__name__} message with fields {sorted(raw)}")
    if "job" in raw:
        job = raw["job"]
        if type(job) is not dict or set(job) != {f.name for f in dataclasses.fields(JobSpec)}:
            raise WireError("a task message with a malformed job")
        raw["job"] = JobSpec(**job)
    if "place" in raw:
        place = raw["place"]
        if (type(place) is not dict or set(place) != {f.name for f in dataclasses.fields(TaskPlace)}
                or type(place["workdir"]) is not str or type(place["data_root"]) is not str
                or type(place["files"]) is not dict
                or not all(type(k) is str and type(v) is str for k, v in place["files"].items())):
            raise WireError("a task message with a malformed place")
        raw["place"] = TaskPlace(**place)
    message: Message = cls(**raw)
    return message


def length(prefix: bytes, cap: int) -> int:
    """The body length a frame prefix announces, checked against ``cap``."""
    return wire.frame_length(prefix, cap)


def read_blocking(stream: BinaryIO, cap: int) -> Message | None:
    """The next message from a blocking stream (the worker's side), or None at its end."""
    prefix = stream.read(PREFIX)
    if not prefix:
        return None
    body = stream.read(length(prefix, cap))
    return decode(body, cap)
