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
from typing import Any

from ..core.errors import BadRequest
from ..core.partition import Key, decode_key
from ..sdk import OUTPUT_TAG, MapReduceJob, OutputKey, Step

Pairs = Iterable[tuple[Key, Any]]


def step_of(job: MapReduceJob, index: int) -> Step:
    """Step ``index`` of ``job`` (runs the job's ``steps()``: call it only where user code may run)."""
    steps = job.steps()
    if not isinstance(steps, list) or not steps or not all(isinstance(step, Step) for step in steps):
        raise BadRequest(f"job {job.name!r}: steps() must return a non-empty list of actors.sdk.Step")
    if index >= len(steps):
        raise BadRequest(f"job {job.name!r} has {len(steps)} steps, not a step {index + 1}")
    return steps[index]


def step_count(job: MapReduceJob) -> int:
    """How many steps ``job`` has (runs its ``steps()`` when it defines one)."""
    if not type(job).has_steps():
        return 1
    step_of(job, 0)  # checks the shape
    return len(job.steps())


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
