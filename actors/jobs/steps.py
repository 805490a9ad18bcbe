"""Steps and records: a step's functions, the pairs its mapper makes, its hooks' records, and record lines.

A job's step is resolved from ``steps()`` only where user code may run (a task process, the oracle). A record line
is how records travel between steps, in the files a step's reducers write under MR_WORK_DIR: one compact JSON
array ``[canonical key, value]`` a line (``\\n`` inside a string is escaped, so a record never spans lines), read
back by the next step's mappers as line-aligned splits.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain
from typing import Any, Final

from ..core.errors import BadRequest
from ..core.partition import Key, decode_key
from ..sdk import OUTPUT_TAG, MapReduceJob, OutputKey, Step

Pairs = Iterable[tuple[Key, Any]]

# A job's output shape, decided by its last step: one value per key (``{key: value}``), a list of records, or the
# mappers' records written one part per split with no reduce at all (a map-only job).
VALUES: Final = "values"
RECORDS: Final = "records"
MAP_ONLY: Final = "map"
SHAPES = (VALUES, RECORDS, MAP_ONLY)


def step_of(job: MapReduceJob, index: int) -> Step:
    """Step ``index`` of ``job`` (runs the job's ``steps()``: call it only where user code may run)."""
    steps = job.steps()
    if not isinstance(steps, list) or not steps or not all(isinstance(step, Step) for step in steps):
        raise BadRequest(f"job {job.name!r}: steps() must return a non-empty list of actors.sdk.Step")
    if index >= len(steps):
        raise BadRequest(f"job {job.name!r} has {len(steps)} steps, not a step {index + 1}")
    for number, step in enumerate(steps[1:], 2):
        if step.mapper_raw is not None:
            raise BadRequest(f"job {job.name!r}: step {number} has a mapper_raw: only the first step reads whole "
                             "input files (a later one maps the records of the step before)")
    return steps[index]


def step_count(job: MapReduceJob) -> int:
    """How many steps ``job`` has (runs its ``steps()`` when it defines one)."""
    if not type(job).has_steps():
        return 1
    step_of(job, 0)  # checks the shape
    return len(job.steps())


def whole_input(job: MapReduceJob) -> bool:
    """Whether ``job``'s first step maps each input file whole (its ``mapper_raw``; runs the job's ``steps()``)."""
    return step_of(job, 0).mapper_raw is not None


def step_shape(step: Step, last: bool) -> str:
    """What ``step`` outputs: a step before the last always records (its reducers write the next step's files); the
    last one the mappers' records when it has no reducer and no reducer hook (map-only), records when its reducer
    is a generator or it has a ``reducer_final``, else one value per key (a Fold is a function returning one)."""
    if not last:
        return RECORDS
    if step.reducer is None and step.reducer_init is None and step.reducer_final is None:
        return MAP_ONLY
    if step.reducer is None or inspect.isgeneratorfunction(step.reducer) or step.reducer_final is not None:
        return RECORDS
    return VALUES


def class_shape(cls: type[MapReduceJob]) -> str:
    """The output shape of a job without ``steps()`` of its own, from its class alone (no code of the job runs)."""
    if cls.has_steps():
        raise ValueError(f"job {cls.name!r} defines steps(): its shape is known only where its code runs")
    if not cls.has_reducer() and cls.reducer_init is MapReduceJob.reducer_init \
            and cls.reducer_final is MapReduceJob.reducer_final:
        return MAP_ONLY
    return RECORDS if cls.yields_records() else VALUES


def output_shape(job: MapReduceJob) -> str:
    """The job's output shape, its last step's (runs its ``steps()`` when it defines one)."""
    cls = type(job)
    if not cls.has_steps():
        return class_shape(cls)
    return step_shape(step_of(job, step_count(job) - 1), last=True)


def mapped_pairs(step: Step, lines: list[str], records: bool, name: str) -> Pairs:
    """The pairs of a batch of lines: input lines for the first step (``mapper_batch`` or ``mapper`` per line), or
    record lines for a later one (``mapper(key, value)`` per record; no mapper: the records themselves)."""
    if records:
        parsed = (parse_record(line) for line in lines)
        mapper = step.mapper
        if mapper is None:
            return parsed
        return chain.from_iterable(mapper(key, value) for key, value in parsed)
    if step.mapper_batch is not None:
        out: Any = step.mapper_batch(lines)
        pairs: Pairs = out.items() if isinstance(out, Mapping) else out
        return pairs
    if step.mapper is None:
        raise BadRequest(f"job {name!r}: its first step has no mapper")
    return chain.from_iterable(map(step.mapper, lines))


def hook_pairs(hook: Callable[[], Any] | None) -> list[tuple[Key, Any]]:
    """Run a hook once; the records it yields (a hook that returns nothing yields none)."""
    if hook is None:
        return []
    out = hook()
    if out is None:
        return []
    return [_pair(item) for item in out]


def reduced(step: Step, key: Key, values: Any) -> Iterator[tuple[Key, Any]]:
    """The records one key's reduce makes: a generator reducer's records, a reducer's one value under ``key``, or
    (no reducer) every value under ``key``."""
    reducer = step.reducer
    if reducer is None:
        return ((key, value) for value in values)
    if inspect.isgeneratorfunction(reducer):
        return (_pair(item) for item in reducer(key, values))
    return iter([(key, reducer(key, values))])


def _pair(item: Any) -> tuple[Key, Any]:
    if type(item) not in (tuple, list) or len(item) != 2:
        raise BadRequest(f"a record must be a (key, value) pair, not {_short(item)}")
    return item[0], item[1]


def record_line(wire_key: str, value: Any) -> bytes:
    """One record as a line of a step's intermediate file."""
    return json.dumps([wire_key, value], separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def parse_record(line: str) -> tuple[Key, Any]:
    """A record line back as (key as the job made it, value); BadRequest for a line no step wrote."""
    try:
        item = json.loads(line)
    except ValueError:
        raise BadRequest(f"an intermediate record is not JSON: {_short(line)}") from None
    if type(item) is not list or len(item) != 2 or type(item[0]) is not str:
        raise BadRequest(f"an intermediate record is not [key, value]: {_short(line)}")
    if item[0].startswith(OUTPUT_TAG):
        raise BadRequest("an OutputKey is a key of the job's output: only its last step may yield one")
    return decode_key(item[0]), item[1]


def output_line(wire_key: str, value: Any) -> bytes:
    """One record as a line of a part file (a canonical key shown as the output shows it, see :func:`output_key`)."""
    return json.dumps([output_key(wire_key), value], separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def typed_key(key: Key | OutputKey) -> Any:
    """A key as the output shows it: a str, an int, or a tuple as an array (nested); an OutputKey's value as it is."""
    if type(key) is OutputKey:
        return key.value
    if type(key) is tuple:
        return [typed_key(part) for part in key]
    return key


def output_key(wire_key: str) -> Any:
    """A final record's canonical key as the output shows it (typed; an OutputKey's JSON value)."""
    if wire_key.startswith(OUTPUT_TAG):
        return json.loads(wire_key[len(OUTPUT_TAG):])
    return typed_key(decode_key(wire_key))


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
