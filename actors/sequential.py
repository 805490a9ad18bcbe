"""The sequential oracle: any SDK job run in one process, the answer every distributed run must equal.

It runs the job's plain contract (mapper over each line, or ``mapper_batch`` over each input's lines as one batch;
every value of a key to the reducer; no combiner of the job's own, no native fast path), so a distributed run checks
the engine, the combiner, the batching and a built-in's fast path at once. A declared fold (``combiner =
MapReduceJob.SUM``, say) is the one combining it does: the reducer gets each key's values folded into one, as every
run gives it, and that value is what is checked, as the engine checks it.

A job with steps runs them one after the other, each step's records (their keys through the canonical form and
back, their values through JSON, as they travel) feeding the next one's mapper; its hooks run once per input for a
mapper (one map task each) and once per step for a reducer. A job whose output is records (steps, a generator
reducer, no reducer) gives a list of ``(key, value)`` records, to be compared as a multiset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .core.partition import Key, canonical_key, decode_key, display_key
from .jobs import load_catalog
from .jobs.adapter import lines_of
from .jobs.steps import hook_pairs, mapped_pairs, reduced, step_count, step_of, typed_key
from .sdk import Fold, MapReduceJob, Step, check_key, plain_value

Record = tuple[Key, Any]


def run_job(job: MapReduceJob, inputs: Iterable[tuple[str, str]]) -> dict[Key, Any]:
    """The output of a job whose reducer returns one value per key, by key, over ``(input name, text)`` pairs,
    keys as the job made them."""
    step = step_of(job, 0)
    fold = type(job).declared_fold()
    groups = _mapped(job, step, fold, list(inputs), None)
    hook_pairs(step.reducer_init)
    reducer = step.reducer
    assert reducer is not None
    streams = job.stream_values  # such a job's reducer gets a one-pass iterator, as the engine gives it
    out = {key: plain_value(reducer(key, iter(values) if streams else values)) for key, values in groups.items()}
    hook_pairs(step.reducer_final)
    return out


def run_records(job: MapReduceJob, inputs: Iterable[tuple[str, str]]) -> list[Record]:
    """Every step of a job whose output is records, in turn: the last step's records."""
    texts = list(inputs)
    fold = None if type(job).has_steps() else type(job).declared_fold()
    records: list[Record] | None = None
    for index in range(step_count(job)):
        step = step_of(job, index)
        groups = _mapped(job, step, fold, texts, records)
        streams = job.stream_values
        made = list(hook_pairs(step.reducer_init))
        for key, values in groups.items():
            made.extend(reduced(step, key, iter(values) if streams else values))
        made.extend(hook_pairs(step.reducer_final))
        records = [(decode_key(check_key(key)), plain_value(value)) for key, value in made]
    assert records is not None
    return records


def _mapped(job: MapReduceJob, step: Step, fold: Fold | None, texts: list[tuple[str, str]],
            records: list[Record] | None) -> dict[Key, list[Any]]:
    """A step's map: every value of each key (folded into one by a declared fold), keys as the job made them."""
    groups: dict[Key, list[Any]] = {}

    def add(pairs: Iterable[Record]) -> None:
        for key, value in pairs:
            check_key(key)  # the same checks a mapper makes
            groups.setdefault(key, []).append(value if fold is not None else plain_value(value))

    if records is None:
        for name, text in texts:  # each input: one map task
            job.input_name = name
            add(hook_pairs(step.mapper_init))
            add(mapped_pairs(step, lines_of(text), False, job.name))
            add(hook_pairs(step.mapper_final))
    else:
        add(hook_pairs(step.mapper_init))
        mapper = step.mapper
        for key, value in records:
            add(mapper(key, value) if mapper is not None else [(key, value)])
        add(hook_pairs(step.mapper_final))
    if fold is not None:
        groups = {key: [plain_value(fold(key, values))] for key, values in groups.items()}
    return groups


def run_sequential_inputs(job_name: str, inputs: Iterable[tuple[str, bytes]],
                          params: Mapping[str, str] | None = None, modules: tuple[str, ...] = ()) -> dict[str, Any]:
    """The result as the master serves it (JSON keys, see actors.core.partition.display_key); invalid UTF-8 is
    replaced exactly as the mappers do."""
    job = load_catalog(modules).sdk(job_name, params)
    decoded = ((name, data.decode("utf-8", "replace")) for name, data in inputs)
    return {display_key(canonical_key(key)): value for key, value in run_job(job, decoded).items()}


def run_sequential_records(job_name: str, inputs: Iterable[tuple[str, bytes]],
                           params: Mapping[str, str] | None = None, modules: tuple[str, ...] = ()) -> list[list[Any]]:
    """The records of a job whose output is records (steps, a generator reducer, no reducer), as the master serves
    them: ``[key, value]`` with typed JSON keys (a tuple as an array)."""
    job = load_catalog(modules).sdk(job_name, params)
    decoded = ((name, data.decode("utf-8", "replace")) for name, data in inputs)
    return [[typed_key(key), value] for key, value in run_records(job, decoded)]


def run_sequential(job_name: str, data: bytes, source: str = "input", params: Mapping[str, str] | None = None,
                   modules: tuple[str, ...] = ()) -> dict[str, Any]:
    """One input's result, as the master serves it."""
    return run_sequential_inputs(job_name, [(source, data)], params, modules)
