"""The public job SDK: subclass :class:`MapReduceJob`, register its module, and every actor can run it.

A job is installed on every actor (an image or a package); its code never travels. See docs/jobs.md.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .core.counters import CounterLimits, Counters
from .core.errors import ECHO_LIMIT, BadRequest, shown, shown_all
from .core.partition import INT_MAX, INT_MIN, Key, canonical_key

MAX_VALUE_DEPTH = 64
#: How an OutputKey's canonical form starts: no other canonical key does (a tagged key's JSON never starts with NUL).
OUTPUT_TAG = "\x00\x00"

__all__ = ["Fold", "JobCodeError", "JobConfigError", "Key", "MapReduceJob", "OutputKey", "RecordError", "Step",
           "plain_value"]


class JobConfigError(BadRequest):
    """A job refused its parameters (raised by :meth:`MapReduceJob.configure`); the user gets a 400 with it."""

    code = "bad_params"


class JobCodeError(BadRequest):
    """A job's own code failed (raised, or produced a key or value outside the contract): the same input fails the
    same way on any actor, so the split is not retried and the job fails with this message."""

    code = "job_code"
    #: The user code's own traceback, for the actor's logs of the job (never in the answer: the message says what
    #: failed, the traceback where). Empty when the framework itself found the fault (a key outside the contract).
    traceback: str = ""


class RecordError(JobCodeError):
    """An input record that cannot be parsed in the job's format (a line of ``jsonl`` that is no JSON, a ``csv``
    line that is no CSV record): names the input and the record's byte offset in it. The same bytes fail the same
    way anywhere, so, as any fault of the job's own, it is not retried: without bad-record skipping (the job's
    ``max_bad_records``) it fails the job with this message."""

    def __init__(self, input_name: str, offset: int, message: str) -> None:
        super().__init__(f"input {shown(input_name)}, byte {offset}: {message}")
        self.input_name = input_name
        self.offset = offset


class Fold:
    """A declared combiner or reducer the framework runs itself, with no call of user code per value:
    ``combiner = MapReduceJob.SUM`` (or MIN, MAX). Called like the method it stands for, ``fold(key, values)``."""

    def __init__(self, name: str, function: Callable[[list[Any]], Any]) -> None:
        self.name = name
        self.function = function

    def __call__(self, key: Key, values: list[Any]) -> Any:
        return self.function(values)

    def __repr__(self) -> str:
        return f"MapReduceJob.{self.name.upper()}"


@dataclass(frozen=True)
class Step:
    """One map (and optional reduce) of a multi-step job (:meth:`MapReduceJob.steps`); every field is optional.

    The first step's ``mapper(line)`` (or ``mapper_batch(lines)``) reads the job's input; a later step's
    ``mapper(key, value)`` gets each ``(key, value)`` record the step before produced (None: the records pass on
    unchanged). ``combiner(key, values)`` and ``reducer(key, values)`` are as on the job; a reducer that is a
    generator function yields records, and a step with no reducer passes its mappers' records on. The hooks run
    once per task attempt: ``mapper_init()``/``mapper_final()`` around a split's mapping, ``reducer_init()``/
    ``reducer_final()`` around a partition's reduce; a ``*_final`` may yield records. The first step's
    ``mapper_raw(path, name)``, used instead of its mapper, maps each input file whole (one split per input; a later
    step may not have one)."""

    mapper: Callable[..., Any] | None = None
    mapper_batch: Callable[..., Any] | None = None
    mapper_raw: Callable[..., Any] | None = None
    combiner: Callable[..., Any] | None = None
    reducer: Callable[..., Any] | None = None
    mapper_init: Callable[[], Any] | None = None
    mapper_final: Callable[[], Any] | None = None
    reducer_init: Callable[[], Any] | None = None
    reducer_final: Callable[[], Any] | None = None


@dataclass(frozen=True)
class OutputKey:
    """A record key of a job's *output* that may be any JSON value (None, a float, a list, a dict, ...), not just a
    key the shuffle can route: a reducer (or ``reducer_final``) of the job's last step may yield
    ``(OutputKey(value), v)``, and the output shows ``[value, v]``. mrjob jobs' output keys are these. A key that is
    shuffled (a mapper's, an earlier step's reducer's) stays a str, an int or a tuple."""

    value: Any


class MapReduceJob:
    """A MapReduce job: ``mapper`` turns each input line into (key, value) pairs, ``reducer`` turns every value of
    one key into that key's output value; an optional ``combiner`` pre-aggregates values where they are produced.
    ``mapper_batch`` may map a list of lines at once instead, and ``combiner``/``reducer`` may be declared folds
    (``SUM``, ``MIN``, ``MAX``) that the framework runs natively.

    Keys are ``str``, ``int`` or tuples of them. Values are plain JSON data: None, bool, int (64-bit), finite float,
    str, lists or tuples (sent as lists) and dicts with str keys. Methods must be deterministic pure functions of
    their arguments and ``self.params``: an attempt may run twice, on any actor, and the values of a key reach the
    reducer in no particular order unless the job sets ``sort_values``.
    """

    #: The name users submit the job under (``"job": NAME``); unique among the registered jobs.
    name: ClassVar[str] = ""
    #: Parameters the job takes, name -> one-line doc; any other parameter is refused with a 400.
    parameters: ClassVar[Mapping[str, str]] = {}
    #: Optional explicit version; without it the fingerprint is a hash of the class's module source.
    version: ClassVar[str | None] = None
    #: True: ``reducer`` gets a one-pass iterator over the key's values, read from disk as it goes, so one key may
    #: hold more values than fit in memory. False (the default): a list, so one key's values must fit in memory.
    stream_values: ClassVar[bool] = False
    #: Side files: name -> a path relative to the data root, or ``"package:PATH"`` relative to the directory of the
    #: job's own module (a file shipped with it). Every task's working directory holds them, read-only, pinned to
    #: their contents at submit (docs/jobs.md, "Side files"): ``open(name)`` or ``open(self.file_path(name))``.
    files: ClassVar[Mapping[str, str]] = {}
    #: Parameters whose value is a side file: a path relative to the data root, pinned at submit and copied into every
    #: task's working directory as its base name, which is then the parameter's value as the job sees it (in
    #: ``self.params`` and ``configure``), so ``open(self.params[NAME])`` opens the copy (mrjob's ``add_file_arg``).
    file_params: ClassVar[Collection[str]] = ()
    #: True: ``reducer`` gets each key's values in their natural order (secondary sort; see docs/jobs.md, "Key order
    #: and secondary sort"), also with ``stream_values``, sorted on disk past MR_REDUCE_MEMORY. With a combiner, the
    #: values sorted are what the combiner made.
    sort_values: ClassVar[bool] = False
    #: How keys are spread over the job's partitions: ``"hash"`` (a stable hash of the key, the default) or
    #: ``"total_order"`` (key ranges cut from a sample of the input, so the part files, concatenated in order, are
    #: in the natural key order; see "Partitions and total order" in docs/jobs.md).
    partitioner: ClassVar[str] = "hash"

    #: Declared folds, for ``combiner = MapReduceJob.SUM`` and ``reducer = MapReduceJob.SUM``: ``sum(values)`` (from
    #: 0, like Python's), ``min(values)``, ``max(values)``. A job whose combiner or reducer is one has its partial
    #: values folded in place as they are made and merged natively, and no user code runs to combine them.
    SUM: ClassVar[Fold] = Fold("sum", sum)
    MIN: ClassVar[Fold] = Fold("min", min)
    MAX: ClassVar[Fold] = Fold("max", max)

    def __init__(self, params: Mapping[str, str] | None = None) -> None:
        self.params: dict[str, str] = dict(params or {})
        for name in type(self).file_params:  # a side file's path: the job sees the name of its copy in the task
            value = self.params.get(name)
            if type(value) is str:
                self.params[name] = param_file_name(value)
        #: The name of the input the current line comes from (set by the framework before mapping a chunk).
        self.input_name = ""
        #: Where this task's side files are (set by the framework in a task; empty elsewhere).
        self.files_dir = ""

    def increment_counter(self, group: str, name: str, amount: int = 1) -> None:
        """Add ``amount`` (an int, maybe negative, 64-bit) to the counter ``group``/``name``, from any of the job's
        functions. A job's counters are summed over the attempts that count (a split's first finished attempt, a
        partition's first report): a retried, killed or backup attempt never counts twice. See docs/jobs.md."""
        counters_of(self).increment(group, name, amount)

    def configure(self, params: Mapping[str, str]) -> None:
        """Check (and prepare from) the parameters; raise :class:`JobConfigError` or ValueError for a 400."""

    def mapper(self, line: str) -> Iterable[tuple[Key, Any]]:
        """Yield (key, value) pairs for one input record: a line without its line end (the job's format ``lines``),
        its JSON value (``jsonl``) or its list of fields (``csv``); see docs/jobs.md, "Record formats"."""
        raise NotImplementedError(f"job {self.name!r} has no mapper")

    def mapper_batch(self, lines: list[str]) -> Iterable[tuple[Key, Any]] | Mapping[Any, Any]:
        """Optional, used instead of ``mapper`` when defined: the (key, value) pairs of a batch of whole lines (each
        without its newline), as an iterable of pairs or a mapping ``{key: value}`` whose values are already combined
        for the batch. The framework picks the batches (a chunk's lines; the oracle: an input's), so the result must
        not depend on them: the pairs of a batch must be what ``mapper`` yields for its lines, or those combined by
        the job's combiner."""
        raise NotImplementedError  # not overridden: the job maps line by line

    def mapper_raw(self, path: str, name: str) -> Iterable[tuple[Key, Any]]:
        """Optional, used instead of ``mapper`` when defined: the (key, value) pairs of one whole input file, given as
        a local ``path`` (read-only; a gzip input's compressed bytes) and the input's ``name``. A job that defines it
        gets one split per input file (docs/jobs.md, "Whole-file input")."""
        raise NotImplementedError  # not overridden: the job maps lines

    def file_path(self, name: str) -> str:
        """The local path of the side file ``name`` (one of :attr:`files`) in this task."""
        names = set(type(self).files) | {self.params[param] for param in type(self).file_params if param in self.params}
        if name not in names:
            raise KeyError(f"job {self.name!r} declares no side file {name!r} (its files: "
                           f"{', '.join(sorted(names)) or 'none'})")
        if not self.files_dir:
            raise RuntimeError(f"side file {name!r} is only there in a task (a mapper, combiner, reducer or hook)")
        return os.path.join(self.files_dir, name)

    def combiner(self, key: Key, values: list[Any]) -> Any:
        """Optional: fold some values of ``key`` into one value of the same kind (associative, order-free)."""
        raise NotImplementedError  # not overridden: the job has no combiner

    def reducer(self, key: Key, values: list[Any]) -> Any:
        """The output value of ``key`` from all its values (every split's, each exactly once, in any order): a list,
        or a one-pass iterator when the job sets ``stream_values`` (annotate it ``values: Iterable[Any]``)."""
        raise NotImplementedError(f"job {self.name!r} has no reducer")

    def mapper_init(self) -> Any:
        """Optional: run once per map task (an attempt of a split) before its first line; may yield records."""
        raise NotImplementedError  # not overridden: no hook

    def mapper_final(self) -> Any:
        """Optional: run once per map task after its last line; may yield (key, value) records."""
        raise NotImplementedError  # not overridden: no hook

    def reducer_init(self) -> Any:
        """Optional: run once per partition's reduce before its first key."""
        raise NotImplementedError  # not overridden: no hook

    def reducer_final(self) -> Any:
        """Optional: run once per partition's reduce after its last key; may yield (key, value) records."""
        raise NotImplementedError  # not overridden: no hook

    def steps(self) -> list[Step]:
        """The job's steps: by default one, made of the job's own methods (those it overrides)."""
        cls = type(self)

        def own(name: str) -> Any:
            return getattr(self, name) if getattr(cls, name) is not getattr(MapReduceJob, name) else None

        combiner: Any = cls.declared_fold() if isinstance(cls.combiner, Fold) else own("combiner")
        reducer: Any = cls.reducer if isinstance(cls.reducer, Fold) else own("reducer")
        return [Step(mapper=own("mapper"), mapper_batch=own("mapper_batch"), mapper_raw=own("mapper_raw"),
                     combiner=combiner, reducer=reducer,
                     mapper_init=own("mapper_init"), mapper_final=own("mapper_final"),
                     reducer_init=own("reducer_init"), reducer_final=own("reducer_final"))]

    def order(self, key: Any, value: Any) -> Any:
        """Sort key for ``?top=N``, the JSON result's entries and the CLI (smallest first, ties in natural key
        order), given an entry of the result (``key`` as the job made it: a str, an int or a tuple); by default
        the natural key order (actors.core.keyorder)."""
        return 0

    def engine(self) -> Any:
        """A built-in's native engine (actors.jobs.base.Job) equal to this contract but faster; None for most jobs."""
        return None

    @classmethod
    def has_combiner(cls) -> bool:
        return cls.combiner is not MapReduceJob.combiner or cls.declared_fold() is not None

    @classmethod
    def has_mapper_batch(cls) -> bool:
        return cls.mapper_batch is not MapReduceJob.mapper_batch

    @classmethod
    def has_mapper_raw(cls) -> bool:
        return cls.mapper_raw is not MapReduceJob.mapper_raw

    @classmethod
    def declared_fold(cls) -> Fold | None:
        """The declared fold partial values are combined with: the combiner's, else (no combiner given) the
        reducer's, which is then its own combiner; None: the job's combiner is its own code, or it has none."""
        combiner: object = cls.combiner
        if isinstance(combiner, Fold):
            return combiner
        reducer: object = cls.reducer
        if combiner is MapReduceJob.combiner and isinstance(reducer, Fold):
            return reducer
        return None

    @classmethod
    def has_steps(cls) -> bool:
        """Whether the job defines its own :meth:`steps` (a class-level fact: no code of the job runs)."""
        return cls.steps is not MapReduceJob.steps

    @classmethod
    def has_reducer(cls) -> bool:
        """False for a map-only job (one step, no reducer): its mappers' records are its output."""
        return cls.reducer is not MapReduceJob.reducer

    @classmethod
    def yields_records(cls) -> bool:
        """Whether the job's output is a list of records rather than ``{key: value}``: a generator reducer (or
        ``reducer_final``), a map-only job, or steps: a class-level answer, so for a job with steps always True;
        where the job's code may run, actors.jobs.steps.output_shape decides by its last step (whose reducer may
        return one value per key)."""
        return (cls.has_steps() or not cls.has_reducer() or inspect.isgeneratorfunction(cls.reducer)
                or cls.reducer_final is not MapReduceJob.reducer_final)

    @classmethod
    def declared_reducer(cls) -> Fold | None:
        """The reducer's declared fold, if it is one."""
        reducer: object = cls.reducer
        return reducer if isinstance(reducer, Fold) else None


def param_file_name(path: str) -> str:
    """The name a side file given as a parameter (:attr:`MapReduceJob.file_params`) has in a task: its base name."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def counters_of(job: MapReduceJob) -> Counters:
    """The counters ``job``'s code counts into now (the task attempt's: see :func:`count_into`)."""
    counters: Counters | None = job.__dict__.get("_mr_counters")
    if counters is None:
        counters = count_into(job, CounterLimits())
    return counters


def count_into(job: MapReduceJob, limits: CounterLimits) -> Counters:
    """Fresh counters for ``job``'s code from now on (a task attempt starts)."""
    counters = job.__dict__["_mr_counters"] = Counters(limits)
    return counters


def configure_job(job: MapReduceJob, params: Mapping[str, object]) -> None:
    """Check ``params`` against the job's declared parameters, then call its ``configure`` hook; errors are 400s."""
    for name, value in params.items():
        if type(name) is not str or type(value) is not str:
            raise JobConfigError(f"job {job.name!r}: parameters are strings; {shown(name)} is {shown(value)}")
        try:  # they travel in every assignment: one with no UTF-8 form would fail every attempt, not the submit
            _check_text(name, "parameter name")
            _check_text(value, f"parameter {shown(name)}")
        except BadRequest as error:
            raise JobConfigError(f"job {job.name!r}: {error.message}") from None
    unknown = sorted(set(params) - set(job.parameters))
    if unknown:
        known = ", ".join(sorted(job.parameters)) or "none"
        raise JobConfigError(f"job {job.name!r} has no parameter {shown_all(unknown, quote=False)}; it takes: {known}")
    try:
        job.configure(job.params)
    except (BadRequest, ValueError) as error:
        message = error.message if isinstance(error, BadRequest) else str(error)
        # The hook may echo a parameter's value: a 4 MB one is not sent back (nor logged) whole.
        raise JobConfigError(f"job {job.name!r}: {message[:4 * ECHO_LIMIT]}") from None
    except Exception as error:  # a bug in the hook (a KeyError on a missing parameter): the request's 400 all the same
        raise JobConfigError(f"job {job.name!r}: configure raised {type(error).__name__}: "
                             f"{str(error)[:4 * ECHO_LIMIT]}") from None


def plain_value(value: Any, depth: int = 0) -> Any:
    """``value`` as plain JSON data (tuples become lists); BadRequest naming what is not."""
    kind = type(value)
    if kind is str:
        _check_text(value, "a value")
        return value
    if kind is bool or value is None:
        return value
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise BadRequest(f"integer value {value} is out of the 64-bit range a value may have")
        return value
    if kind is float:
        if not math.isfinite(value):
            raise BadRequest(f"value {value!r} is not a finite number")
        return value
    if depth >= MAX_VALUE_DEPTH:
        raise BadRequest(f"a value is nested deeper than {MAX_VALUE_DEPTH} levels")
    if kind is list or kind is tuple:
        return [plain_value(item, depth + 1) for item in value]
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise BadRequest(f"a dict in a value has a non-string key {shown(key)}")
            _check_text(key, "a dict key in a value")
            out[key] = plain_value(item, depth + 1)
        return out
    raise BadRequest(f"a value must be plain JSON data (None, bool, int, float, str, list, dict), not a "
                     f"{kind.__name__}: {_short(value)}")


def plain_values(values: list[Any]) -> list[Any]:
    """Every value as plain JSON data: ``values`` itself when each already is one (checked at C speed for lists of
    one scalar type), else a new list from :func:`plain_value` (BadRequest naming the first that is not)."""
    kinds = set(map(type, values))
    if not values or (kinds == {int} and min(values) >= INT_MIN and max(values) <= INT_MAX):
        return values
    if kinds == {float} and all(map(math.isfinite, values)):
        return values
    if kinds == {str}:
        joined = "".join(values)
        if joined.isascii():
            return values
    if kinds <= {bool, type(None)}:
        return values
    return [plain_value(value) for value in values]


def check_key(key: Any) -> str:
    """The canonical encoding of a key a job produced (BadRequest naming a bad one); an :class:`OutputKey` is NUL NUL
    and its value's compact JSON, which only a final output takes (actors.jobs.steps.output_key)."""
    if type(key) is OutputKey:
        return OUTPUT_TAG + json.dumps(plain_value(key.value), separators=(",", ":"), ensure_ascii=False)
    wire_key = canonical_key(key)
    _check_text(wire_key, "a key", key)
    return wire_key


def _check_text(text: str, what: str, given: object = None) -> None:
    """Refuse a str with no UTF-8 form (a lone surrogate such as "\\ud800"): it could never be sent, so it must fail
    the job here, named, rather than every attempt at encoding time."""
    if text.isascii():  # O(1) for most strings: no surrogate possible
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{what} {shown(text if given is None else given)} has a lone surrogate, which has no "
                         "UTF-8 form") from None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
