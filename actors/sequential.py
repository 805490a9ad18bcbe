"""The sequential oracle: any SDK job run in one process, the answer every distributed run must equal.

It runs the job's plain contract (mapper over each line, or ``mapper_batch`` over each input's lines as one batch;
every value of a key to the reducer; no combiner of the job's own, no native fast path), so a distributed run checks
the engine, the combiner, the batching and a built-in's fast path at once. A declared fold (``combiner =
MapReduceJob.SUM``, say) is the one combining it does: the reducer gets each key's values folded into one, as every
run gives it, and that value is what is checked, as the engine checks it.

Order is part of the answer: a ``sort_values`` job's reducer gets each key's values in natural value order; the
result lists its entries in the job's ``order``, ties in natural key order (:func:`sequential_entries`, what the
JSON result and NDJSON list), and a part file lists its entries in natural key order (:func:`sequential_lines`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .core.keyorder import key_order, sorted_values
from .core.partition import Key, canonical_key
from .jobs import load_catalog
from .jobs.adapter import lines_of
from .jobs.partials import batch_pairs
from .jobs.result import key_encoding, shown
from .sdk import MapReduceJob, check_key, plain_value


def run_job(job: MapReduceJob, inputs: Iterable[tuple[str, str]]) -> dict[Key, Any]:
    """The job's output by key, over ``(input name, text)`` pairs, keys as the job made them."""
    fold = type(job).declared_fold()
    groups: dict[Key, list[Any]] = {}
    for name, text in inputs:
        job.input_name = name
        for key, value in batch_pairs(job, lines_of(text)):
            check_key(key)  # the same checks a mapper makes
            groups.setdefault(key, []).append(value if fold is not None else plain_value(value))
    if fold is not None:
        groups = {key: [plain_value(fold(key, values))] for key, values in groups.items()}
    if job.sort_values:
        groups = {key: sorted_values(values) for key, values in groups.items()}
    streams = job.stream_values  # such a job's reducer gets a one-pass iterator, as the engine gives it
    return {key: plain_value(job.reducer(key, iter(values) if streams else values))  # type: ignore[arg-type]
            for key, values in groups.items()}


def run_sequential_inputs(job_name: str, inputs: Iterable[tuple[str, bytes]],
                          params: Mapping[str, str] | None = None, modules: tuple[str, ...] = ()) -> dict[str, Any]:
    """The result as the master serves it: the JSON object, keys named by its key encoding (actors.jobs.result),
    entries in the job's order; invalid UTF-8 is replaced exactly as the mappers do."""
    job, result = _run(job_name, inputs, params, modules)
    canonical = [(canonical_key(key), value) for key, value in _in_order(job, result)]
    return shown(canonical, key_encoding(dict(canonical)))


def sequential_entries(job_name: str, inputs: Iterable[tuple[str, bytes]], params: Mapping[str, str] | None = None,
                       modules: tuple[str, ...] = ()) -> list[list[Any]]:
    """Every entry as ``[key, value]`` with the key as JSON carries it (a tuple as a list), in the job's order,
    ties in natural key order: what ``?format=ndjson`` streams and ``?top=N`` begins with."""
    job, result = _run(job_name, inputs, params, modules)
    return [[_json(key), value] for key, value in _in_order(job, result)]


def sequential_lines(job_name: str, inputs: Iterable[tuple[str, bytes]], params: Mapping[str, str] | None = None,
                     modules: tuple[str, ...] = ()) -> list[list[Any]]:
    """Every entry as ``[key, value]`` (typed key) in natural key order: a part file holds its partition's entries
    in this order (so each part is a subsequence of it)."""
    _, result = _run(job_name, inputs, params, modules)
    return [[_json(key), result[key]] for key in sorted(result, key=key_order)]


def _run(job_name: str, inputs: Iterable[tuple[str, bytes]], params: Mapping[str, str] | None,
         modules: tuple[str, ...]) -> tuple[MapReduceJob, dict[Key, Any]]:
    job = load_catalog(modules).sdk(job_name, params)
    decoded = ((name, data.decode("utf-8", "replace")) for name, data in inputs)
    return job, run_job(job, decoded)


def _in_order(job: MapReduceJob, result: dict[Key, Any]) -> list[tuple[Key, Any]]:
    return sorted(result.items(), key=lambda item: (job.order(item[0], item[1]), key_order(item[0])))


def _json(key: Key) -> Any:
    return json.loads(json.dumps(key))  # a tuple as the array JSON carries


def run_sequential(job_name: str, data: bytes, source: str = "input", params: Mapping[str, str] | None = None,
                   modules: tuple[str, ...] = ()) -> dict[str, Any]:
    """One input's result, as the master serves it."""
    return run_sequential_inputs(job_name, [(source, data)], params, modules)
