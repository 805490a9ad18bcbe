"""A later step's mapper input: record lines cut anywhere between chunks are mapped whole, each once."""

from __future__ import annotations

import io
import itertools
from typing import Any

import pytest

from actors.core.partition import canonical_key
from actors.jobs.steps import parse_record, record_line
from actors.tasks.protocol import JobSpec, MapChunk, MapEnd, MapStart
from actors.tasks.worker import Worker

RECORDS: list[tuple[Any, Any]] = [("apple", 3), ("pear pie", 2), ((4, "x y"), 1), ("日本語", 7), ("z", 10 ** 6)]


def mapped(data: bytes, cuts: list[int]) -> list[Any]:
    """Step 2 of tests.stepjobs' most_used_word over ``data`` fed in pieces cut at ``cuts``: its map's values."""
    worker = Worker(io.BytesIO(), io.BytesIO(), 1 << 20, 1 << 26)
    spec = JobSpec("most_used_word", "tests.stepjobs", "MostUsedWord", {}, step=1)
    worker.handle(MapStart(spec, "step-1/part-00000.jsonl", 1, 1_000_000, 1 << 20, 10_000, 1 << 20, 100, 120, 256, 0))
    assert worker.mapping is not None
    outbox = worker.mapping[0]
    bounds = [0, *cuts, len(data)]
    for start, end in itertools.pairwise(bounds):
        worker.handle(MapChunk(data[start:end], start))
    values = list(outbox._acc.get(canonical_key("most"), []))  # before MapEnd flushes them: the carry is in
    worker.handle(MapEnd())
    return values


def test_record_lines_round_trip_with_typed_keys() -> None:
    for key, value in RECORDS:
        line = record_line(canonical_key(key), value)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert parse_record(line.decode()) == (key, value)


@pytest.mark.parametrize("every", [1, 3, 7, 1000])
def test_records_cut_inside_lines_are_mapped_whole_once(every: int) -> None:
    data = b"".join(record_line(canonical_key(key), value) for key, value in RECORDS)
    whole = sorted(map(repr, ([count, key] for key, count in RECORDS)))
    cuts = list(range(every, len(data), every))
    values = mapped(data, cuts)
    assert sorted(map(repr, (v if isinstance(v[1], str) else [v[0], tuple(v[1])] for v in values))) == whole


def test_the_last_record_without_its_newline_is_mapped_at_the_end() -> None:
    data = b"".join(record_line(canonical_key(key), value) for key, value in RECORDS).rstrip(b"\n")
    worker_values = mapped(data, [5])
    assert len(worker_values) == len(RECORDS) - 1  # the last one is still carried: MapEnd maps it
