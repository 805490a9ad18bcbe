"""Spilled runs: sorted runs and their k-way merge equal an in-memory grouping; a reducer with a small memory budget
reduces a key of millions of values exactly, with its memory bounded, and removes its runs when the job goes."""

from __future__ import annotations

import json
import sys
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.core.errors import InsufficientStorage, WireError
from actors.core.messages import Data, StreamHeader
from actors.jobs import load_catalog
from actors.reducer.app import LEDGER
from actors.reducer.ledger import Ledger
from actors.reducer.stage import Stage
from actors.reducer.totals import SpillingTotals
from actors.sequential import run_job
from actors.tasks import runs as spill
from actors.tasks.runs import SpillRuns, grouped, merge_records, read_run, write_run

from .conftest import ClusterFactory, eventually

MAX_KEY = 1 << 20

JOBS = '''
from actors.sdk import MapReduceJob


class DistinctPerKey(MapReduceJob):
    """Per key: how many values, and how many distinct; no combiner, values streamed to the reducer."""

    name = "distinct_per_key"
    stream_values = True

    def mapper(self, line):
        key, *values = line.split()
        for value in values:
            yield key, int(value)

    def reducer(self, key, values):
        seen = set()
        count = 0
        for value in values:
            seen.add(value)
            count += 1
        return [count, len(seen)]


class MedianPerKey(MapReduceJob):
    """Per key: the median value and the first word; values as a list (the default contract)."""

    name = "median_per_key"

    def mapper(self, line):
        key, *values = line.split()
        for value in values:
            yield key, [int(value), key + value]

    def reducer(self, key, values):
        assert type(values) is list
        values.sort()
        return [values[len(values) // 2][0], values[0][1], len(values)]
'''


@pytest.fixture
def jobs_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"spilljobs_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "spillpkg"
    root.mkdir()
    (root / f"{name}.py").write_text(JOBS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
    yield name
    sys.modules.pop(name, None)
    load_catalog.cache_clear()


# ---------------------------------------------------------------------------------------------------------------
# runs and their merge

values_st = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=5),
                         lambda inner: st.lists(inner, max_size=3), max_leaves=5)
groups_st = st.dictionaries(st.text(max_size=4), st.lists(values_st, min_size=1, max_size=12), max_size=8)


def canon(groups: dict[str, list[Any]]) -> dict[str, list[str]]:
    """Groups with each key's values as a sorted multiset (the merge keeps no order across runs)."""
    return {key: sorted(json.dumps(v, sort_keys=True) for v in values) for key, values in groups.items()}


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runs=st.lists(groups_st, max_size=9), memory=groups_st)
def test_merged_runs_equal_an_in_memory_grouping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 runs: list[dict[str, list[Any]]],
                                                 memory: dict[str, list[Any]]) -> None:
    # Tiny records and fan-in: keys span records, and the intermediate passes run.
    monkeypatch.setattr(spill, "RECORD_VALUES", 2)
    monkeypatch.setattr(spill, "FAN_IN", 3)
    store = SpillRuns(str(tmp_path), "t-")
    expected: dict[str, list[Any]] = {}
    for run in [*runs, memory]:
        for key, values in run.items():
            expected.setdefault(key, []).extend(values)
    for run in runs:
        store.spill(run)
    got = [(key, list(values)) for key, values in store.groups(memory)]
    assert [key for key, _ in got] == sorted(expected)  # each key once, in canonical order
    assert canon(dict(got)) == canon(expected)
    assert len(store.paths) <= 3
    directory = store.directory
    store.remove()
    assert directory is None or not directory.exists()


def test_a_consumer_may_leave_values_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spill, "RECORD_VALUES", 3)
    path = tmp_path / "run"
    write_run(path, {"b": list(range(10)), "a": [1], "c": list(range(7))})
    seen = []
    for key, values in grouped(merge_records([read_run(path), iter([("b", [99])])])):
        seen.append((key, next(values)))  # one value of each key, the rest skipped
    assert seen == [("a", 1), ("b", 0), ("c", 0)]
    full = {key: list(values) for key, values in grouped(merge_records([read_run(path), iter([("b", [99])])]))}
    assert full == {"a": [1], "b": [*range(10), 99], "c": list(range(7))}


@pytest.mark.parametrize("damage", [lambda b: b[:-1], lambda b: b[:2], lambda b: b + b"\x00\x00\x00\x01\xc1",
                                    lambda b: b"\x00\x00\x00\x02\x81\x01"])
def test_a_damaged_run_is_refused(tmp_path: Path, damage: Any) -> None:
    path = tmp_path / "run"
    write_run(path, {"k": [1, 2, 3]})
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(WireError):
        list(read_run(path))


# ---------------------------------------------------------------------------------------------------------------
# the reducer's general path


def header(split: int, job_name: str) -> StreamHeader:
    return StreamHeader(job="j", epoch=1, split=split, attempt=1, partition=0, partitions=1, job_name=job_name,
                        size=1)


def split_groups(split: int, lines: int, per_line: int) -> dict[str, list[int]]:
    """A split's values by key, as a mapper of the test's jobs sends them: one hot key's values (500 distinct),
    and a few other keys."""
    base = split * lines * per_line
    groups: dict[str, list[int]] = {"hot": [(base + i) % 500 for i in range(lines * per_line)]}
    for i in range(lines):
        groups.setdefault(f"k{i % 7}", []).extend([split, i])
    return groups


def split_text(split: int, lines: int, per_line: int) -> str:
    """The input lines the mapper turns into :func:`split_groups`."""
    hot = split_groups(split, lines, per_line)["hot"]
    out = []
    for i in range(lines):
        out.append("hot " + " ".join(map(str, hot[i * per_line:(i + 1) * per_line])))
        out.append(f"k{i % 7} {split} {i}")
    return "\n".join(out) + "\n"


def commit_split(ledger: Ledger, split: int, job_name: str, text: str | None = None,
                 items: dict[str, Any] | None = None) -> int:
    state = ledger.admit(header(split, job_name))
    stage = Stage(state.job_def, MAX_KEY)
    if items is None:
        assert text is not None, "give the split's text or its items"
        items = state.job_def.map(text, "input")
    stage.add(Data(items))
    held = stage.held
    state.record(split, stage)
    state.settle()
    return held


def test_split_groups_are_what_the_mapper_makes(jobs_module: str) -> None:
    job = load_catalog((jobs_module,)).get("distinct_per_key", {})
    assert job.map(split_text(3, 20, 7), "input") == split_groups(3, 20, 7)


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.mark.slow
def test_a_key_of_millions_of_values_is_reduced_exactly_in_bounded_memory(spool: Path, jobs_module: str) -> None:
    splits, lines, per_line = 20, 1000, 100  # 2 M values of one key
    catalog = load_catalog((jobs_module,))
    expected = run_job(catalog.sdk("distinct_per_key"), ((f"s{s}", split_text(s, lines, per_line))
                                                         for s in range(splits)))
    assert expected["hot"] == [splits * lines * per_line, 500]
    ledger = Ledger(partition=0, clock=lambda: 0.0, catalog=catalog, memory=1 << 20, spool=str(spool))
    tracemalloc.start()
    try:
        # The values as the mapper makes them (checked above), without spending minutes mapping text traced.
        total = sum(commit_split(ledger, s, "distinct_per_key", items=split_groups(s, lines, per_line))
                    for s in range(splits))
        state = ledger.jobs["j"][0]
        assert state.spilled()
        result = state.finish_spilled().result()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result == {str(key): value for key, value in expected.items()}
    assert state.spills >= splits // 2 and len(list(spool.glob("reduce-0-*/run-*"))) >= splits // 2
    # Generous: the values alone take ``total`` bytes in memory; the peak holds about a budget, one split's
    # stage and the merge's records. Without spilling it would exceed ``total``.
    assert total > 60 << 20
    assert peak < total // 4, (peak, total)
    print(f"peak {peak >> 20} MiB for {total >> 20} MiB of values")
    assert ledger.release("j", 1)
    ledger.barrier().result()
    assert not list(spool.iterdir())
    ledger.close()


def test_a_stream_committing_into_a_released_state_leaves_no_run(spool: Path, jobs_module: str) -> None:
    ledger = Ledger(partition=0, clock=lambda: 0.0, catalog=load_catalog((jobs_module,)), memory=100,
                    spool=str(spool))
    commit_split(ledger, 0, "median_per_key", "x 1 2 3\n")
    state = ledger.jobs["j"][0]
    stage = Stage(state.job_def, MAX_KEY)
    stage.add(Data(state.job_def.map("y 5 6 7\n", "input")))
    assert ledger.release("j", 1)  # released while that stream was still receiving
    state.record(1, stage)
    state.settle()
    ledger.barrier().result()
    assert state.spills == 1 and not list(spool.iterdir())
    ledger.close()


def test_list_values_and_in_memory_jobs(spool: Path, jobs_module: str) -> None:
    catalog = load_catalog((jobs_module,))
    texts = [split_text(s, 50, 9) for s in range(6)]
    expected = run_job(catalog.sdk("median_per_key"), (("in", t) for t in texts))
    ledger = Ledger(partition=0, clock=lambda: 0.0, catalog=catalog, memory=20_000, spool=str(spool))
    for s, text in enumerate(texts):
        commit_split(ledger, s, "median_per_key", text)
    assert commit_split(ledger, 0, "median_per_key", texts[0]) > 0  # a duplicate: counted once
    state = ledger.jobs["j"][0]
    assert state.spilled() and state.duplicates == 1
    assert state.finish_spilled().result() == expected
    # A newer epoch replaces the old state and its runs; a job with a combiner (wordcount) never spills.
    ledger.admit(StreamHeader(job="j", epoch=2, split=0, attempt=1, partition=0, partitions=1,
                              job_name="wordcount", size=1))
    ledger.barrier().result()
    assert not list(spool.iterdir())
    assert not isinstance(ledger.jobs["j"][0].merged, SpillingTotals)
    ledger.close()


def test_a_damaged_run_fails_the_finalize_rather_than_a_wrong_result(spool: Path, jobs_module: str) -> None:
    catalog = load_catalog((jobs_module,))
    ledger = Ledger(partition=0, clock=lambda: 0.0, catalog=catalog, memory=100, spool=str(spool))
    commit_split(ledger, 0, "median_per_key", "x 1 2 3\n")
    commit_split(ledger, 1, "median_per_key", "x 4\n")
    state = ledger.jobs["j"][0]
    assert state.spilled()
    ledger.barrier().result()  # the runs are written
    paths = list(spool.glob("reduce-0-*/run-*"))
    assert len(paths) == 2
    for path in spool.glob("reduce-0-*/run-*"):
        path.write_bytes(path.read_bytes()[:-1])  # a damaged disk: refused, never a wrong result
    with pytest.raises(WireError, match="spilled run"):
        state.finish_spilled().result()
    assert ledger.expire(-1) == ["j"]
    ledger.barrier().result()
    assert not list(spool.iterdir())
    ledger.close()


def test_an_unwritable_spool_fails_the_finalize_naming_the_setting(spool: Path, jobs_module: str) -> None:
    not_a_dir = spool / "file"
    not_a_dir.write_text("")
    ledger = Ledger(partition=0, clock=lambda: 0.0, catalog=load_catalog((jobs_module,)), memory=100,
                    spool=str(not_a_dir))
    commit_split(ledger, 0, "median_per_key", "x 1 2 3\n")
    state = ledger.jobs["j"][0]
    assert state.spilled()
    with pytest.raises(InsufficientStorage, match="MR_SPOOL_DIR"):
        state.finish_spilled().result()
    ledger.close()


async def test_a_cluster_with_a_tiny_reduce_memory_equals_the_oracle_and_cleans_up(
        make_cluster: ClusterFactory, jobs_module: str, spool: Path) -> None:
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=(jobs_module,), reduce_memory=4096,
                                 spool_dir=str(spool))
    text = "".join(split_text(s, 40, 30) for s in range(5))
    catalog = load_catalog((jobs_module,))
    for name in ["distinct_per_key", "median_per_key"]:
        job = await cluster.submit({"job": name, "input": {"text": text}, "split_size": 2048})
        result = await cluster.result(job["id"])
        assert result == {str(k): v for k, v in run_job(catalog.sdk(name), [("input", text)]).items()}
    ledgers = [r.app[LEDGER] for r in cluster.reducers]
    # Released by the master once each job is done: every run spilled, then removed.
    await eventually(lambda: not any(ledger.jobs for ledger in ledgers))
    assert all(ledger.spills > 1 for ledger in ledgers)
    await eventually(lambda: not list(spool.glob("reduce-*")))
