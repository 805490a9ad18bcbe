"""The sequential oracle: any SDK job run in one process, the answer every distributed run must equal.

It runs the job's plain contract (mapper over each line, or ``mapper_batch`` over each input's lines as one batch;
every value of a key to the reducer; no combiner of the job's own, no native fast path), so a distributed run checks
the engine, the combiner, the batching and a built-in's fast path at once. A declared fold (``combiner =
MapReduceJob.SUM``, say) is the one combining it does: the reducer gets each key's values folded into one, as every
run gives it, and that value is what is checked, as the engine checks it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .core.counters import SHOWN_BAD_RECORDS, BadRecord, CounterLimits, CounterMap, error_text, past_budget
from .core.partition import Key, canonical_key, display_key
from .jobs import load_catalog
from .jobs.adapter import lines_of
from .jobs.partials import batch_pairs
from .sdk import JobCodeError, MapReduceJob, check_key, count_into, plain_value


def run_job(job: MapReduceJob, inputs: Iterable[tuple[str, str]]) -> dict[Key, Any]:
    """The job's output by key, over ``(input name, text)`` pairs, keys as the job made them."""
    fold = type(job).declared_fold()
    groups: dict[Key, list[Any]] = {}
    for name, text in inputs:
        job.input_name = name
        for key, value in batch_pairs(job, lines_of(text)):
            check_key(key)  # the same checks a mapper makes
            groups.setdefault(key, []).append(value if fold is not None else plain_value(value))
    return _reduce(job, groups)


def _reduce(job: MapReduceJob, groups: dict[Key, list[Any]]) -> dict[Key, Any]:
    fold = type(job).declared_fold()
    if fold is not None:
        groups = {key: [plain_value(fold(key, values))] for key, values in groups.items()}
    streams = job.stream_values  # such a job's reducer gets a one-pass iterator, as the engine gives it
    return {key: plain_value(job.reducer(key, iter(values) if streams else values))  # type: ignore[arg-type]
            for key, values in groups.items()}


@dataclass
class Counted:
    """A run with its counters and bad records: what a distributed run's status must show."""

    result: dict[Key, Any]
    counters: CounterMap
    bad_count: int
    bad_first: list[dict[str, Any]]  # the first SHOWN_BAD_RECORDS, as the status lists them


def run_counted(job: MapReduceJob, inputs: Iterable[tuple[str, bytes]], max_bad_records: int = 0) -> Counted:
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
            pairs = _checked(job, lines_of(data.decode("utf-8", "replace")), fold is None)
        except Exception:
            counters.check()
            counters.reset(mark)
            pairs = []
            lines = data.split(b"\n")
            if lines and lines[-1] == b"":
                lines.pop()
            offset = 0
            for line in lines:
                mark = counters.mark()
                try:
                    pairs.extend(_checked(job, [line.decode("utf-8", "replace")], fold is None))
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
    result = _reduce(job, groups)
    counters.check()
    return Counted(result, counters.to_wire(), len(bad), [b.to_json() for b in bad[:SHOWN_BAD_RECORDS]])


def _checked(job: MapReduceJob, lines: list[str], plain: bool) -> list[tuple[Key, Any]]:
    """The pairs of ``lines``, each key (and each value, unless folded) checked as a mapper checks them."""
    pairs = list(batch_pairs(job, lines))
    for key, value in pairs:
        check_key(key)
        if plain:
            plain_value(value)
    return [(key, plain_value(value) if plain else value) for key, value in pairs]


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
