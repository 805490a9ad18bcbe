"""Messages: one frozen dataclass per thing actors say to each other, and their strict wire form."""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NewType, TypeVar, overload

from .counters import CounterMap, RecordList, valid_counters, valid_records
from .errors import WireError
from .keys import AttemptKey as AttemptKey  # re-exported: the messages below carry one as ``key``

# The wire version. Decoding is strict (a missing or unknown field is refused with a message naming it), so a field
# added or removed already fails loudly between mismatched actors; VERSION moves when a field keeps its name but
# changes its meaning, which no field check could catch. (Finalize.output, Report.payload and Assignment.pin_size/
# pin_etag/pin_modified, a URL input's version, came under version 1: an actor without them refuses these messages
# by their missing or unknown fields.)
VERSION = 1

# Records as they travel to the master: ``[key, value]`` pairs (checked as pairs; keys and values are plain data). A
# type of its own: list[list[Any]] is RecordList's (bad records), checked otherwise.
RecordPairs = NewType("RecordPairs", list)  # type: ignore[type-arg]


def valid_pairs(value: Any) -> bool:
    return type(value) is list and all(type(item) is list and len(item) == 2 for item in value)


@dataclass(frozen=True)
class Assignment:
    """Master → mapper: map one split of one input; never shuffle data, and input bytes only for a small text."""

    job: str
    epoch: int
    split: int
    attempt: int
    job_name: str
    input_kind: str  # "served" (bytes the master holds), "path" (under the data root) or "url" (inputs/ref.py)
    input_location: str
    input_name: str
    start: int
    end: int
    partitions: int  # N, the job's partitions, fixed by the master when it planned the job
    only_partitions: list[int]  # empty: every partition; else redo just these
    # The job's parameters as the user gave them; each actor configures its own instance of the job from them.
    params: dict[str, str] = field(default_factory=dict)
    # "" or "gzip": a compressed input is one whole-file split [0, size), decompressed as it is read.
    compression: str = ""
    # A small text input the master holds, whole (at most MR_INLINE_INPUT bytes): the mapper reads its split from
    # these bytes instead of asking the master for them. Empty: read the input by reference.
    inline: bytes = b""
    # A URL input's version as the master probed it: every read is pinned to it and checked against it (its size,
    # and its strong ETag or else Last-Modified; both empty when the server gave neither). Unused for other kinds.
    pin_size: int = 0
    pin_etag: str = ""
    pin_modified: str = ""
    # The job's side files as the master pinned them at submit, name -> "SIZE:DIGEST" (actors.jobs.sidefiles):
    # every task copies them into its working directory and checks each copy against its pin.
    files: dict[str, str] = field(default_factory=dict)
    # The input's record format (actors.jobs.records: "lines", "jsonl" or "csv"): how a user job's mapper reads it.
    format: str = "lines"
    # The job's max_bad_records: lines whose parsing or mapper fails are skipped, up to this many (0: none).
    max_bad_records: int = 0
    # Which of the job's steps this split is of: a later step's input is the previous step's intermediate files
    # (input_kind "work", under MR_WORK_DIR), its lines records. Split indices restart at 0 every step.
    step: int = 0
    # A map-only job's last step (no reducer): the mapper writes its split's records, in the order mapped, as its own
    # attempt file in ``output``'s staging directory (or attempt object under an s3:// prefix), or, with no
    # ``output``, reports them to the master in SplitRecords frames; nothing goes to the reducers.
    direct: bool = False
    output: str = ""
    # R, the reducers: partition p goes to reducer ordinal p % R (actors.core.partition.owner); 0: R is N.
    reducers: int = 0
    # A total-order job's N-1 cut points (canonical keys, ascending in the natural order): partition p holds the
    # keys from cut p-1 (included) to cut p (excluded). Empty: partitions by the stable hash.
    cuts: list[str] = field(default_factory=list)
    # Not 0: a sample, not a map. Map at most this many of the split's first records and answer their keys in
    # SplitDone.samples; nothing is sent to any reducer.
    sample: int = 0
    # The split is a whole input file for the job's first step's ``mapper_raw`` (the master learnt at submit, from a
    # task process, that the step has one): the mapper copies (or finds) the file and maps it whole.
    whole: bool = False

    @property
    def key(self) -> AttemptKey:
        return AttemptKey(self.job, self.epoch, self.split, self.attempt)


@dataclass(frozen=True)
class Progress:
    """Mapper → master, on the assignment's response stream: still alive, this far."""

    job: str
    epoch: int
    split: int
    attempt: int
    bytes_read: int

    @property
    def key(self) -> AttemptKey:
        return AttemptKey(self.job, self.epoch, self.split, self.attempt)


@dataclass(frozen=True)
class SplitDone:
    """Mapper → master: every partition of the split is acknowledged by its reducer."""

    job: str
    epoch: int
    split: int
    attempt: int
    bytes_read: int
    keys: int
    duplicates: int  # partitions that answered "duplicate"
    # The attempt's counters and bad records (their count, the first few): the master adds them to the job's only
    # if it counts this attempt (actors.core.counters).
    counters: CounterMap = field(default_factory=dict)
    bad_count: int = 0
    bad_first: RecordList = field(default_factory=list)
    # A direct (map-only) attempt with an output: the attempt file it wrote (records, bytes, SHA-256); the master
    # publishes the counted attempt's as ``part-<split>.jsonl``. Zero records and "" otherwise.
    part_records: int = 0
    part_bytes: int = 0
    part_sha256: str = ""
    samples: list[str] = field(default_factory=list)  # a sample assignment's keys (canonical), else empty

    @property
    def key(self) -> AttemptKey:
        return AttemptKey(self.job, self.epoch, self.split, self.attempt)


@dataclass(frozen=True)
class SplitRecords:
    """Mapper → master, on a direct (map-only) assignment with no output, before its SplitDone: some of the split's
    records in the order mapped, each ``[key, value]`` with the key typed JSON; the master keeps the counted
    attempt's, within MR_RESULT_MAX, as a reducer's Records report is kept."""

    job: str
    epoch: int
    split: int
    attempt: int
    records: RecordPairs

    @property
    def key(self) -> AttemptKey:
        return AttemptKey(self.job, self.epoch, self.split, self.attempt)


@dataclass(frozen=True)
class SplitFailed:
    """Mapper → master: this attempt could not finish; ``cause`` says why."""

    job: str
    epoch: int
    split: int
    attempt: int
    cause: str
    retriable: bool

    @property
    def key(self) -> AttemptKey:
        return AttemptKey(self.job, self.epoch, self.split, self.attempt)


@dataclass(frozen=True)
class StreamHeader:
    """First frame of a shuffle stream: whose partial counts follow, and how many bytes of them."""

    job: str
    epoch: int
    split: int
    attempt: int
    partition: int
    partitions: int
    job_name: str
    size: int  # bytes of DATA frames that follow (the reducer reserves staging budget for them)
    params: dict[str, str] = field(default_factory=dict)
    step: int = 0  # the job's step: a reducer merges it into that step's state only (an older step's is stale)
    reducers: int = 0  # R: the partition belongs to reducer partition % R; 0: R is ``partitions``

    @property
    def key(self) -> AttemptKey:
        return AttemptKey(self.job, self.epoch, self.split, self.attempt)


@dataclass(frozen=True)
class Data:
    """A shuffle DATA frame: partial values by key, for one partition."""

    items: dict[str, Any]


@dataclass(frozen=True)
class Columns:
    """A shuffle DATA frame of an integer-valued job, packed: decoding it builds no CBOR map.

    Layout (all CBOR byte strings), for n >= 1 distinct keys:

    - ``keys``: the keys' UTF-8 bytes back to back;
    - ``ends``: n little-endian uint32, where key i ends in ``keys`` (it starts where key i-1 ends, key 0 at 0):
      non-decreasing, the last equal to ``len(keys)``;
    - ``counts``: n little-endian uint64, the value of key i, each at least 1.

    Every key must be valid UTF-8 on its own and distinct; a packing engine's ``unpack`` refuses anything else (400)
    (word count's codec: actors.jobs.wordcount.columns). Also a Report's payload: one run in the job's top order.
    A KEYPART run still ends with a plain DATA frame of one item.
    """

    keys: bytes
    ends: bytes
    counts: bytes

    def __len__(self) -> int:
        """The number of keys the frame claims (validated when it is unpacked)."""
        return len(self.ends) // 4


@dataclass(frozen=True)
class KeyPart:
    """A shuffle frame carrying a piece of one key too long for a frame; the next DATA frame holds exactly one
    item, whose key is the key's last piece. Keys are cut between characters; the whole is at most MR_MAX_KEY."""

    text: str


@dataclass(frozen=True)
class Commit:
    """Last frame of a shuffle stream; the reducer merges only if these totals match what it staged."""

    frames: int
    keys: int
    checksum: int


@dataclass(frozen=True)
class StreamAck:
    """Reducer → mapper: the stream is merged ("committed") or was already ("duplicate")."""

    job: str
    epoch: int
    split: int
    partition: int
    status: str
    incarnation: str


@dataclass(frozen=True)
class Finalize:
    """Master → reducer: every split is done; report your partition's totals, or write them as a part file."""

    job: str
    epoch: int
    partition: int
    splits: int
    job_name: str
    # The job's output directory under the data root; empty: report the totals themselves.
    output: str = ""
    # The job's side files as pinned at submit (as Assignment.files): the reduce task's working directory holds them.
    files: dict[str, str] = field(default_factory=dict)
    step: int = 0  # the step whose streams are to be reported (every split of it is done)
    # Not the last step: write the partition's records as ``part-NNNNN.jsonl`` in this directory under
    # MR_WORK_DIR (the master made it) and report that file; empty: the last step, reported as ``output`` says.
    work: str = ""
    partitions: int = 0  # N, the job's partitions (0: unknown, as before per-job partitions)
    reducers: int = 0  # R: the partition belongs to reducer partition % R; 0: R is N


@dataclass(frozen=True)
class MapResult:
    """A Report's payload: the partition's finished result as a map."""

    totals: dict[str, Any]


@dataclass(frozen=True)
class Records:
    """A Report's payload for a job whose output is records: the partition's ``[key, value]`` records, each key
    as a typed JSON value (a str, an int, a tuple as an array)."""

    records: list[Any]


@dataclass(frozen=True)
class PartFile:
    """A Report's payload with an output: the part's file name in the output directory, size, entries, SHA-256."""

    name: str
    size: int
    keys: int
    sha256: str


# One of four, tagged by its type name on the wire: a map; a packing engine's run in top order (Columns, so the
# master merges the partitions' runs instead of sorting, see actors.jobs.engine.Packing.report); a part file; or records
# (a job whose output is records, see actors.jobs.steps).
ReportPayload = MapResult | Columns | PartFile | Records


@dataclass(frozen=True)
class Report:
    """Reducer → master: the final result of one partition, or (with an output) a reference to its part file."""

    job: str
    epoch: int
    partition: int
    incarnation: str
    splits: int
    payload: ReportPayload
    counters: CounterMap = field(default_factory=dict)  # the reduce's counters (counted with the first report)
    step: int = 0

    @property
    def keys(self) -> int:
        """How many entries the payload holds (for logs)."""
        payload = self.payload
        if isinstance(payload, PartFile):
            return payload.keys
        if isinstance(payload, MapResult):
            return len(payload.totals)
        if isinstance(payload, Records):
            return len(payload.records)
        return len(payload)


@dataclass(frozen=True)
class Missing:
    """Reducer → master, instead of a Report: these splits are not committed here (state lost or never sent)."""

    job: str
    epoch: int
    partition: int
    incarnation: str
    splits: list[int]
    step: int = 0


@dataclass(frozen=True)
class Release:
    """Master → reducer: forget this job (finished, failed or cancelled)."""

    job: str
    epoch: int


Message = (
    Assignment | Progress | SplitDone | SplitRecords | SplitFailed | StreamHeader | Data | Columns | KeyPart | Commit
    | StreamAck | Finalize | Report | Missing | Release
)
M = TypeVar("M", bound=Message)
N = TypeVar("N", bound=Message)
P = TypeVar("P", bound=Message)
Q = TypeVar("Q", bound=Message)
R = TypeVar("R", bound=Message)
_CLASSES = (Assignment, Progress, SplitDone, SplitRecords, SplitFailed, StreamHeader, Data, Columns, KeyPart, Commit,
            StreamAck, Finalize, Report, Missing, Release)
_PAYLOADS = (MapResult, Columns, PartFile, Records)  # carried inside a message, as {"type": name, fields...}
_TYPES: dict[str, type[Any]] = {cls.__name__.lower(): cls for cls in _CLASSES + _PAYLOADS}
_NAMES: dict[type[Any], str] = {cls: name for name, cls in _TYPES.items()}
_FIELDS: dict[type[Any], tuple[str, ...]] = {cls: tuple(f.name for f in dataclasses.fields(cls))
                                             for cls in _CLASSES + _PAYLOADS}


def to_wire(message: Message) -> dict[str, Any]:
    """The plain dict that goes on the wire: version, type name, fields (a payload field as its own tagged map)."""
    kind = type(message)
    return {"v": VERSION, "type": _NAMES[kind], **{name: _plain(getattr(message, name)) for name in _FIELDS[kind]}}


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind in _PAYLOADS:
        return {"type": _NAMES[kind], **{name: getattr(value, name) for name in _FIELDS[kind]}}
    return value


@overload
def from_wire(raw: Any, first: type[M], /) -> M: ...
@overload
def from_wire(raw: Any, first: type[M], second: type[N], /) -> M | N: ...
@overload
def from_wire(raw: Any, first: type[M], second: type[N], third: type[P], /) -> M | N | P: ...
@overload
def from_wire(raw: Any, first: type[M], second: type[N], third: type[P], fourth: type[Q], /) -> M | N | P | Q: ...
@overload
def from_wire(raw: Any, first: type[M], second: type[N], third: type[P], fourth: type[Q], fifth: type[R],
              /) -> M | N | P | Q | R: ...


def from_wire(raw: Any, *expected: type[Any]) -> Any:
    """Rebuild a message of one of the ``expected`` classes, checking version, fields and their types."""
    if type(raw) is not dict:
        raise WireError(f"message must be a CBOR map, not {type(raw).__name__}")
    if type(raw.get("v")) is not int or raw["v"] != VERSION:
        raise WireError(f"unsupported message version {raw.get('v')!r} (this actor speaks {VERSION})")
    name = raw.get("type")
    cls = _TYPES.get(name) if isinstance(name, str) else None
    if cls is None or cls not in expected:
        wanted = " or ".join(c.__name__.lower() for c in expected)
        raise WireError(f"expected a {wanted} message, got {name!r}")
    assert isinstance(name, str)
    return _build(raw, name, cls, 2)


def _build(raw: dict[Any, Any], name: str, cls: type[Any], tags: int) -> Any:
    """The ``name`` message or payload from ``raw``, whose ``tags`` keys (v, type) are checked already."""
    checks = _checks(name)
    if len(raw) != len(checks) + tags or any(field_name not in raw for field_name, _, _ in checks):
        hints, given = _hints(name), set(raw) - {"v", "type"}
        missing, unknown = sorted(set(hints) - given), sorted(given - set(hints))
        raise WireError(f"{name} message: missing fields {missing}, unknown fields {unknown}")
    values = {}
    for field_name, check, nested in checks:
        value = raw[field_name]
        if not check(value):
            raise WireError(f"{name} message: field {field_name!r} has a bad value {_short(value)}")
        values[field_name] = _payload(value, name, field_name) if nested else value
    return cls(**values)


def _is_payload(kind: Any) -> bool:
    return set(typing.get_args(kind)) <= set(_PAYLOADS) and bool(typing.get_args(kind))


def _payload(raw: dict[Any, Any], name: str, field_name: str) -> Any:
    """A tagged payload field: one of the dataclasses its type names, checked as strictly as a message."""
    allowed = typing.get_args(_hints(name)[field_name])
    kind = raw.get("type")
    cls = _TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None or cls not in allowed:
        wanted = " or ".join(c.__name__.lower() for c in allowed)
        raise WireError(f"{name} message: field {field_name!r} must be a {wanted}, not {_short(kind)}")
    assert isinstance(kind, str)
    try:
        return _build(raw, kind, cls, 1)
    except WireError as error:
        raise WireError(f"{name} message: field {field_name!r}: {error.message}") from None


@functools.cache
def _hints(name: str) -> dict[str, Any]:
    return typing.get_type_hints(_TYPES[name])


@functools.cache
def _checks(name: str) -> tuple[tuple[str, Callable[[Any], bool], bool], ...]:
    """Each field of message ``name`` with its check and whether it holds a tagged payload, made once (every frame
    and message is checked)."""
    return tuple((field_name, _check_of(kind), _is_payload(kind)) for field_name, kind in _hints(name).items())


def _check_of(kind: Any) -> Callable[[Any], bool]:
    if _is_payload(kind):
        return lambda value: type(value) is dict  # then decoded by _payload, field by field
    if kind == CounterMap:
        return valid_counters
    if kind == RecordList:
        return valid_records
    if kind is RecordPairs:
        return valid_pairs
    origin = typing.get_origin(kind) or kind
    if origin is int:
        return lambda value: type(value) is int and value >= 0  # counters, ids, offsets: never negative, never bool
    if origin is dict and typing.get_args(kind) == (str, str):
        return lambda value: type(value) is dict and all(type(k) is str and type(v) is str for k, v in value.items())
    if origin is list:
        (item,) = typing.get_args(kind)
        if item is Any:
            return lambda value: type(value) is list
        return lambda value: type(value) is list and all(type(v) is item and (item is not int or v >= 0)
                                                         for v in value)
    return lambda value: type(value) is origin



def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

