"""The sequential oracle: any SDK job run in one process, the answer every distributed run must equal.

It runs the job's plain contract (mapper over each line, or ``mapper_batch`` over each input's lines as one batch;
every value of a key to the reducer; no combiner of the job's own, no native fast path), so a distributed run checks
the engine, the combiner, the batching and a built-in's fast path at once. A declared fold (``combiner =
MapReduceJob.SUM``, say) is the one combining it does: the reducer gets each key's values folded into one, as every
run gives it, and that value is what is checked, as the engine checks it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .core.keyorder import key_order
from .core.partition import Key, canonical_key, display_key
from .jobs import load_catalog
from .jobs.adapter import lines_of
from .jobs.partials import batch_pairs
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
    streams = job.stream_values  # such a job's reducer gets a one-pass iterator, as the engine gives it
    return {key: plain_value(job.reducer(key, iter(values) if streams else values))  # type: ignore[arg-type]
            for key, values in groups.items()}


def run_sequential_inputs(job_name: str, inputs: Iterable[tuple[str, bytes]],
                          params: Mapping[str, str] | None = None, modules: tuple[str, ...] = ()) -> dict[str, Any]:
    """The result as the master serves it (JSON keys, see actors.core.partition.display_key); invalid UTF-8 is
    replaced exactly as the mappers do."""
    job = load_catalog(modules).sdk(job_name, params)
    decoded = ((name, data.decode("utf-8", "replace")) for name, data in inputs)
    return {display_key(canonical_key(key)): value for key, value in run_job(job, decoded).items()}


def run_sequential(job_name: str, data: bytes, source: str = "input", params: Mapping[str, str] | None = None,
                   modules: tuple[str, ...] = ()) -> dict[str, Any]:
    """One input's result, as the master serves it."""
    return run_sequential_inputs(job_name, [(source, data)], params, modules)


def run_total_order(job_name: str, data: bytes, source: str = "input", params: Mapping[str, str] | None = None,
                    modules: tuple[str, ...] = ()) -> list[tuple[Key, Any]]:
    """One input's output entries in the natural key order (actors.core.keyorder), keys as the job made them: what
    a total-order job's parts, concatenated in order, hold."""
    job = load_catalog(modules).sdk(job_name, params)
    output = run_job(job, [(source, data.decode("utf-8", "replace"))])
    return sorted(output.items(), key=lambda entry: key_order(entry[0]))
