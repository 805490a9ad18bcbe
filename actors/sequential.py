"""The sequential oracle: any SDK job run in one process, the answer every distributed run must equal.

It runs the job's plain contract (mapper over each line, or ``mapper_batch`` over each input's lines as one batch;
every value of a key to the reducer; no combiner of the job's own, no native fast path), so a distributed run checks
the engine, the combiner, the batching and a built-in's fast path at once. A declared fold (``combiner =
MapReduceJob.SUM``, say) is the one combining it does: the reducer gets each key's values folded into one, as every
run gives it, and that value is what is checked, as the engine checks it. A job with ``mapper_raw`` gets each input
whole, as a file; a job with side files runs in a directory holding copies of them, as a task does.

A job with steps runs them one after the other (a first step with ``mapper_raw`` gets each input whole), each step's
records (their keys through the canonical form and back, their values through JSON, as they travel) feeding the next
one's mapper; its hooks run once per input for a mapper (one map task each) and once per step for a reducer. A job
whose output is records (steps, a generator reducer, no reducer) gives a list of ``(key, value)`` records, to be
compared as a multiset.

Order is part of the answer: a ``sort_values`` job's reducer gets each key's values in natural value order; the
result lists its entries in the job's ``order``, ties in natural key order (:func:`sequential_entries`, what the
JSON result and NDJSON list), and a part file lists its entries in natural key order (:func:`sequential_lines`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .core.counters import SHOWN_BAD_RECORDS, BadRecord, CounterLimits, CounterMap, error_text, past_budget
from .core.keyorder import key_order, sorted_values
from .core.partition import Key, canonical_key, decode_key
from .jobs import Catalog, load_catalog
from .jobs.partials import batch_pairs
from .jobs.records import BOM, LINES, input_records, parse
from .jobs.result import key_encoding, shown
from .jobs.sidefiles import declared, materialize, pin_files
from .jobs.steps import VALUES, hook_pairs, mapped_pairs, output_shape, reduced, step_count, step_of, typed_key
from .mapper.whole import copy_name
from .sdk import Fold, JobCodeError, MapReduceJob, Step, check_key, count_into, plain_value

Record = tuple[Key, Any]
#: A step's map tasks: each an input's name and what makes its pairs (called once ``input_name`` is set).
Tasks = Iterable[tuple[str, Callable[[], Iterable[Record]]]]


def run_job(job: MapReduceJob, inputs: Iterable[tuple[str, str | bytes]], fmt: str = LINES) -> dict[Key, Any]:
    """The output of a job whose reducer returns one value per key, by key, over ``(input name, text or bytes)``
    pairs read as records of format ``fmt`` (actors.jobs.records: a BOM at an input's start and CRLF line ends
    stripped), keys as the job made them."""
    step = step_of(job, 0)
    return _reduce(job, step, _mapped(job, step, _first_tasks(job, step, inputs, fmt)))


def run_job_whole(job: MapReduceJob, files: Iterable[tuple[str, str]]) -> dict[Key, Any]:
    """The output of a job with ``mapper_raw`` by key, over ``(input name, path of the whole input)`` pairs."""
    step = step_of(job, 0)
    return _reduce(job, step, _mapped(job, step, _whole_tasks(step, files)))


def _whole_tasks(step: Step, files: Iterable[tuple[str, str]]) -> Tasks:
    mapper_raw = step.mapper_raw
    assert mapper_raw is not None
    return ((name, functools.partial(mapper_raw, path, name)) for name, path in files)


def _first_tasks(job: MapReduceJob, step: Step, inputs: Iterable[tuple[str, str | bytes]], fmt: str) -> Tasks:
    for name, text in inputs:
        yield name, functools.partial(_record_pairs, step, text, fmt, name, job.name)


def _record_pairs(step: Step, text: str | bytes, fmt: str, name: str, job_name: str) -> Iterable[Record]:
    return mapped_pairs(step, input_records(text, fmt, name), False, job_name)


def run_records(job: MapReduceJob, inputs: Iterable[tuple[str, str | bytes]], fmt: str = LINES) -> list[Record]:
    """Every step of a job whose output is records, in turn: the last step's records."""
    texts = list(inputs)
    fold = None if type(job).has_steps() else type(job).declared_fold()
    records: list[Record] | None = None
    for index in range(step_count(job)):
        step = step_of(job, index)
        if records is None and step.mapper_raw is not None:  # each input whole, as a file of its bytes
            with tempfile.TemporaryDirectory(prefix="oracle-") as scratch:
                files = _written(((name, _bytes(text)) for name, text in texts), scratch)
                groups = _mapped(job, step, _whole_tasks(step, files), fold)
        elif records is None:
            groups = _mapped(job, step, _first_tasks(job, step, texts, fmt), fold)
        else:
            groups = _mapped(job, step, [("", functools.partial(_step_pairs, step, records))], fold)
        groups = _sorted(job, groups)
        streams = job.stream_values
        made = list(hook_pairs(step.reducer_init))
        for key, values in groups.items():
            made.extend(reduced(step, key, iter(values) if streams else values))
        made.extend(hook_pairs(step.reducer_final))
        records = [(decode_key(check_key(key)), plain_value(value)) for key, value in made]
    assert records is not None
    return records


def _step_pairs(step: Step, records: list[Record]) -> Iterator[Record]:
    """A later step's map of the previous step's records (no mapper: the records themselves)."""
    mapper = step.mapper
    for key, value in records:
        yield from (mapper(key, value) if mapper is not None else [(key, value)])


def _mapped(job: MapReduceJob, step: Step, tasks: Tasks, fold: Fold | bool | None = True) -> dict[Key, list[Any]]:
    """A step's map: every value of each key (folded into one by a declared fold: the job's own unless ``fold`` is
    given), keys as the job made them; each map task's hooks run around its pairs."""
    if fold is True:
        fold = type(job).declared_fold()
    assert fold is None or isinstance(fold, Fold)
    groups: dict[Key, list[Any]] = {}

    def add(pairs: Iterable[Record]) -> None:
        for key, value in pairs:
            check_key(key)  # the same checks a mapper makes
            groups.setdefault(key, []).append(value if fold is not None else plain_value(value))

    for name, pairs in tasks:  # each input: one map task
        job.input_name = name
        add(hook_pairs(step.mapper_init))
        add(pairs())
        add(hook_pairs(step.mapper_final))
    if fold is not None:
        groups = {key: [plain_value(fold(key, values))] for key, values in groups.items()}
    return groups


def _sorted(job: MapReduceJob, groups: dict[Key, list[Any]]) -> dict[Key, list[Any]]:
    if job.sort_values:
        return {key: sorted_values(values) for key, values in groups.items()}
    return groups


def _reduce(job: MapReduceJob, step: Step, groups: dict[Key, list[Any]]) -> dict[Key, Any]:
    """Each key's value from the step's reducer (values folded by a declared fold first, sorted for a
    ``sort_values`` job), its reducer hooks around it."""
    fold = type(job).declared_fold()
    if fold is not None:
        groups = {key: [plain_value(fold(key, values))] for key, values in groups.items()}
    groups = _sorted(job, groups)
    hook_pairs(step.reducer_init)
    reducer = step.reducer
    assert reducer is not None
    streams = job.stream_values  # such a job's reducer gets a one-pass iterator, as the engine gives it
    out = {key: plain_value(reducer(key, iter(values) if streams else values)) for key, values in groups.items()}
    hook_pairs(step.reducer_final)
    return out


@dataclass
class Counted:
    """A run with its counters and bad records: what a distributed run's status must show."""

    result: dict[Key, Any]
    counters: CounterMap
    bad_count: int
    bad_first: list[dict[str, Any]]  # the first SHOWN_BAD_RECORDS, as the status lists them


def run_counted(job: MapReduceJob, inputs: Iterable[tuple[str, bytes]], max_bad_records: int = 0,
                fmt: str = LINES) -> Counted:
    """:func:`run_job` counting: the job's counters (its mapper's and reducer's; the oracle runs no combiner of the
    job's own, whose counts depend on how often it runs) and its bad records, each input's lines mapped as one batch
    and, if that raises, line by line (as actors.jobs.skipping does). A record that fails is skipped and listed
    (input, byte offset, error) up to ``max_bad_records``; past it (or with none allowed) the job's exception
    propagates, or JobCodeError naming the first records."""
    counters = count_into(job, CounterLimits())
    fold = type(job).declared_fold()
    groups: dict[Key, list[Any]] = {}
    bad: list[BadRecord] = []
    for index, (name, data) in enumerate(inputs):
        job.input_name = name
        mark = counters.mark()
        try:
            pairs = _checked(job, input_records(data, fmt, name), fold is None)
        except Exception:
            counters.check()
            counters.reset(mark)
            pairs = []
            offset = len(BOM) if data.startswith(BOM) else 0
            lines = data[offset:].split(b"\n")
            if lines and lines[-1] == b"":
                lines.pop()
            for line in lines:
                mark = counters.mark()
                try:
                    pairs.extend(_checked(job, parse(line + b"\n", fmt, name, offset), fold is None))
                except Exception as error:
                    counters.check()
                    counters.reset(mark)
                    if not max_bad_records:
                        raise
                    bad.append(BadRecord(index, name, offset, error_text(error)))
                    if len(bad) > max_bad_records:
                        raise JobCodeError(past_budget(max_bad_records, len(bad), bad)) from None
                offset += len(line) + 1
        for key, value in pairs:
            groups.setdefault(key, []).append(value)
    result = _reduce(job, step_of(job, 0), groups)
    counters.check()
    return Counted(result, counters.to_wire(), len(bad), [b.to_json() for b in bad[:SHOWN_BAD_RECORDS]])


def _checked(job: MapReduceJob, lines: list[Any], plain: bool) -> list[tuple[Key, Any]]:
    """The pairs of ``lines``, each key (and each value, unless folded) checked as a mapper checks them."""
    pairs = list(batch_pairs(job, lines))
    for key, value in pairs:
        check_key(key)
        if plain:
            plain_value(value)
    return [(key, plain_value(value) if plain else value) for key, value in pairs]


def run_sequential_inputs(job_name: str, inputs: Iterable[tuple[str, bytes]],
                          params: Mapping[str, str] | None = None, modules: tuple[str, ...] = (),
                          data_root: str = "", fmt: str = LINES) -> dict[str, Any]:
    """The result as the master serves it: the JSON object, keys named by its key encoding (actors.jobs.result),
    entries in the job's order; invalid UTF-8 is replaced exactly as the mappers do; ``fmt``: the inputs' record
    format (a bad record raises RecordError). The job runs in a directory holding its side files (found under
    ``data_root`` or its module's directory), made before the job is; a job with ``mapper_raw`` gets each input as
    a file of its bytes."""
    job, result = _run(job_name, inputs, params, modules, data_root, fmt)
    canonical = [(canonical_key(key), value) for key, value in _in_order(job, result)]
    return shown(canonical, key_encoding(dict(canonical)))


def sequential_entries(job_name: str, inputs: Iterable[tuple[str, bytes]], params: Mapping[str, str] | None = None,
                       modules: tuple[str, ...] = (), data_root: str = "", fmt: str = LINES) -> list[list[Any]]:
    """Every entry as ``[key, value]`` with the key as JSON carries it (a tuple as a list), in the job's order,
    ties in natural key order: what ``?format=ndjson`` streams and ``?top=N`` begins with."""
    job, result = _run(job_name, inputs, params, modules, data_root, fmt)
    return [[_json(key), value] for key, value in _in_order(job, result)]


def sequential_lines(job_name: str, inputs: Iterable[tuple[str, bytes]], params: Mapping[str, str] | None = None,
                     modules: tuple[str, ...] = (), data_root: str = "", fmt: str = LINES) -> list[list[Any]]:
    """Every entry as ``[key, value]`` (typed key) in natural key order: a part file holds its partition's entries
    in this order (so each part is a subsequence of it)."""
    _, result = _run(job_name, inputs, params, modules, data_root, fmt)
    return [[_json(key), result[key]] for key in sorted(result, key=key_order)]


def _run(job_name: str, inputs: Iterable[tuple[str, bytes]], params: Mapping[str, str] | None,
         modules: tuple[str, ...], data_root: str = "", fmt: str = LINES) -> tuple[MapReduceJob, dict[Key, Any]]:
    catalog = load_catalog(modules)
    with tempfile.TemporaryDirectory(prefix="oracle-") as scratch, _side_files(catalog, job_name, data_root,
                                                                               scratch, params) as files_dir:
        job = catalog.sdk(job_name, params)
        job.files_dir = files_dir
        if step_of(job, 0).mapper_raw is not None:
            result = run_job_whole(job, _written(inputs, os.path.join(scratch, "inputs")))
        else:
            result = run_job(job, inputs, fmt)
    return job, result


def _in_order(job: MapReduceJob, result: dict[Key, Any]) -> list[tuple[Key, Any]]:
    return sorted(result.items(), key=lambda item: (job.order(item[0], item[1]), key_order(item[0])))


def _json(key: Key) -> Any:
    return json.loads(json.dumps(key))  # a tuple as the array JSON carries


@contextlib.contextmanager
def _side_files(catalog: Catalog, job_name: str, data_root: str, scratch: str,
                params: Mapping[str, str] | None = None) -> Iterator[str]:
    """In a directory holding the job's side files (its ``files``, and its file parameters' files given
    ``params``), pinned and copied as a task does (none: where we are)."""
    cls = catalog.classes.get(job_name)
    if cls is None or not declared(cls, params):
        yield ""
        return
    directory = os.path.join(scratch, "files")
    os.mkdir(directory)
    materialize(cls, pin_files(cls, data_root, 1 << 62, params), data_root, directory, params)
    with contextlib.chdir(directory):
        yield directory


def _bytes(text: str | bytes) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else text


def _written(inputs: Iterable[tuple[str, bytes]], directory: str) -> Iterator[tuple[str, str]]:
    """Each input as a file of its own bytes, in a directory of its own (named as a mapper names its copy)."""
    for number, (name, data) in enumerate(inputs):
        folder = os.path.join(directory, str(number))
        os.makedirs(folder)
        path = os.path.join(folder, copy_name(name))
        with open(path, "wb") as file:
            file.write(data)
        yield name, path


def run_sequential_records(job_name: str, inputs: Iterable[tuple[str, bytes]],
                           params: Mapping[str, str] | None = None, modules: tuple[str, ...] = (),
                           fmt: str = LINES) -> list[list[Any]]:
    """The records of a job whose output is records (steps, a generator reducer, no reducer), as the master serves
    them: ``[key, value]`` with typed JSON keys (a tuple as an array)."""
    job = load_catalog(modules).sdk(job_name, params)
    return [[typed_key(key), value] for key, value in run_records(job, inputs, fmt)]


def run_sequential(job_name: str, data: bytes, source: str = "input", params: Mapping[str, str] | None = None,
                   modules: tuple[str, ...] = (), data_root: str = "", fmt: str = LINES) -> dict[str, Any]:
    """One input's result, as the master serves it."""
    return run_sequential_inputs(job_name, [(source, data)], params, modules, data_root, fmt)


def run_sequential_output(job_name: str, inputs: Iterable[tuple[str, bytes]], params: Mapping[str, str] | None = None,
                          modules: tuple[str, ...] = (), fmt: str = LINES) -> dict[str, Any] | list[list[Any]]:
    """The output of any job with steps (or records) as the master serves it, its shape decided by its last step
    (actors.jobs.steps.output_shape): ``{key: value}`` named by its key encoding, in the job's order, when that
    step's reducer returns one value per key, else the records (:func:`run_sequential_records`). A map-only job's
    records are its mappers' pairs, one part per split in a run: compare them as a multiset."""
    job = load_catalog(modules).sdk(job_name, params)
    records = run_records(job, inputs, fmt)
    if output_shape(job) != VALUES:
        return [[typed_key(key), value] for key, value in records]
    canonical = [(canonical_key(key), value) for key, value in _in_order(job, dict(records))]
    return shown(canonical, key_encoding(dict(canonical)))
