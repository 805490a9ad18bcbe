"""Key order, typed keys and secondary sort: one natural order of keys (ints numerically, strs by code point,
tuples element-wise, types ranked) in parts, NDJSON, ?top ties and the JSON result; keys typed in parts and NDJSON;
``sort_values`` jobs' reducers get each key's values in natural value order, through spilled runs too."""

from __future__ import annotations

import itertools
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.keyorder import (
    canonical_of_text,
    json_key,
    key_order,
    key_text,
    sorted_values,
    value_order,
)
from actors.core.partition import Key, canonical_key
from actors.inputs.outdir import entry_lines
from actors.jobs import load_catalog
from actors.jobs.result import JSON_KEYS, STR_KEYS, as_mapping, general_json, key_encoding, shown
from actors.master.results import Results
from actors.reducer.app import LEDGER
from actors.sequential import run_sequential_inputs, sequential_entries, sequential_lines
from actors.tasks.runs import RECORD_VALUES, SpillRuns, grouped, merge_records, read_run, write_run

from .conftest import ClusterFactory
from .test_output import read_parts

JOBS = '''
from actors.core.keyorder import value_order
from actors.sdk import MapReduceJob


def number_or_word(token):
    if token.lstrip("-").isdigit():
        return int(token)
    if token.startswith("f"):
        return float(token[1:])
    return token


class TypedSum(MapReduceJob):
    """int keys (negatives too), tuple keys and str keys, counted by a declared fold; most counted first."""

    name = "typed_sum"
    combiner = MapReduceJob.SUM
    reducer = MapReduceJob.SUM

    def mapper(self, line):
        for token in line.split():
            key = int(token) if token.lstrip("-").isdigit() else token
            yield key, 1
            yield ("n" if type(key) is int else "w", key), 1

    def order(self, key, value):
        return -value


class TypedGeneral(TypedSum):
    """The same keys, reduced by user code in a task process (no fold): values listed per key."""

    name = "typed_general"
    combiner = MapReduceJob.combiner
    reducer = MapReduceJob.reducer

    def reducer(self, key, values):
        return sum(values)


class SortedValues(MapReduceJob):
    """Per key: how many values, whether they came in natural value order, the first and last; streamed."""

    name = "sorted_values"
    stream_values = True
    sort_values = True

    def mapper(self, line):
        key, *values = line.split()
        for value in values:
            yield key, number_or_word(value)

    def reducer(self, key, values):
        count, ordered, first, last = 0, True, None, None
        for value in values:
            if count == 0:
                first = value
            elif value_order(value) < value_order(last):
                ordered = False
            last = value
            count += 1
        # The peak resident memory of the process the reducer runs in (KiB), for the test's bound (not compared):
        # VmHWM, as ru_maxrss keeps the high-water mark of the parent forked before the exec.
        with open("/proc/self/status") as status:
            peak = next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
        return [count, ordered, first, last, peak]


class SortedList(SortedValues):
    """The same, the values as a list (the default contract)."""

    name = "sorted_list"
    stream_values = False
'''


@pytest.fixture
def jobs_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"orderjobs_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "orderpkg"
    root.mkdir()
    (root / f"{name}.py").write_text(JOBS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
    yield name
    sys.modules.pop(name, None)
    load_catalog.cache_clear()


# --- the orders, without a cluster ------------------------------------------------------------------------------

values_st = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=2),
    max_leaves=6)


def test_values_are_ranked_then_ordered_within_their_kind() -> None:
    mixed: list[Any] = [{"a": 1}, [2], [1, "x"], "b", "B", 2.5, -3, 2, True, False, None, [1], 2.0]
    assert sorted(mixed, key=value_order) == [None, False, True, -3, 2, 2.0, 2.5, "B", "b", [1], [1, "x"], [2],
                                              {"a": 1}]
    assert sorted_values([-14, -15, 3]) == [-15, -14, 3]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(values_st, max_size=12))
def test_the_value_order_is_total_and_the_fast_path_agrees(values: list[Any]) -> None:
    ordered = sorted_values(values)
    assert [value_order(v) for v in ordered] == sorted(value_order(v) for v in values)
    for left, right in itertools.pairwise(ordered):
        assert value_order(left) <= value_order(right)


def test_parts_carry_typed_keys_in_natural_order() -> None:
    pairs: list[tuple[Key, Any]] = [(-14, "a"), (-15, "b"), ("z", 1), (("a", 3), 2), ("\x00x", 0), (10, 4),
                                    (("a", -1), 5)]
    result = {canonical_key(k): v for k, v in pairs}
    lines = [json.loads(line) for line in entry_lines(result)]
    assert lines == [[-15, "b"], [-14, "a"], [10, 4], ["\x00x", 0], ["z", 1], [["a", -1], 5], [["a", 3], 2]]
    assert [json_key(key) for key, _ in lines] == sorted((json_key(k) for k, _ in lines), key=key_order)


def test_the_json_object_names_keys_by_its_encoding() -> None:
    plain = {"b": 1, "\x00x": 2}  # a str starting with NUL is still a str key
    assert key_encoding({canonical_key(k): v for k, v in plain.items()}) == STR_KEYS
    assert shown([(canonical_key("\x00x"), 2)], STR_KEYS) == {"\x00x": 2}
    pairs: list[tuple[Key, Any]] = [("7", 1), (7, 2), (("a", 3), 3)]
    typed = {canonical_key(k): v for k, v in pairs}
    assert key_encoding(typed) == JSON_KEYS
    named = shown(list(typed.items()), JSON_KEYS)
    assert named == {'"7"': 1, "7": 2, '["a",3]': 3}  # "7" and 7 stay two keys
    assert {canonical_of_text(name) for name in named} == set(typed)
    assert all(key_text(canonical_of_text(name)) == name for name in named)


def test_held_results_give_typed_entries() -> None:
    pairs: list[tuple[Key, Any]] = [(-15, 1), ("a", 2), (("a", 3), 3)]
    typed = {canonical_key(k): v for k, v in pairs}
    held = Results(1 << 20, 1 << 20, lambda: 0.0).hold(
        "j", typed, lambda r: general_json(as_mapping(r), lambda m, n: sorted(m.items(), key=lambda e: e[1])[:n]))
    assert held.key_encoding == JSON_KEYS
    assert held.top(3) == [[-15, 1], ["a", 2], [["a", 3], 3]]


@settings(max_examples=60, deadline=None)
@given(runs=st.lists(st.dictionaries(st.sampled_from(["a", "b", "\x00[1]"]), st.lists(values_st, min_size=1,
                                                                                     max_size=30), max_size=3),
                     max_size=6))
def test_runs_sorted_by_key_and_value_merge_each_keys_values_in_order(runs: list[dict[str, list[Any]]]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        paths = []
        for number, groups in enumerate(runs):
            path = Path(directory) / f"run-{number}"
            write_run(path, groups, values=True)
            paths.append(path)
        merged = {key: list(values) for key, values in
                  grouped(merge_records([read_run(p) for p in paths], values=True))}
    expected: dict[str, list[Any]] = {}
    for groups in runs:
        for key, values in groups.items():
            expected.setdefault(key, []).extend(values)
    assert list(merged) == sorted(expected)
    for key, values in expected.items():
        assert [value_order(v) for v in merged[key]] == sorted(map(value_order, values))


def test_compaction_keeps_values_sorted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("actors.tasks.runs.FAN_IN", 3)
    runs = SpillRuns(str(tmp_path), "t-", sort_values=True)
    for start in range(10):  # ten runs of one key, interleaved values: compaction merges them three at a time
        runs.spill({"k": [start + 10 * i for i in range(RECORD_VALUES + 5)][::-1], "j": [str(start)]})
    memory = {"k": [-1, 10**9], "i": [0]}
    groups = {key: list(values) for key, values in runs.groups(memory)}
    assert len(runs.paths) <= 3
    assert groups["k"] == sorted([start + 10 * i for start in range(10) for i in range(RECORD_VALUES + 5)]
                                 + [-1, 10**9])
    assert groups["j"] == [str(s) for s in range(10)] and groups["i"] == [0]
    runs.remove()


# --- on a cluster, against the oracle ---------------------------------------------------------------------------

TEXT = "".join(f"{n} {n} word{n % 3} {'-15 -14 ' * (n % 2)}Zeta alpha f1.5 é\n" for n in range(-16, 12))


@pytest.mark.parametrize("job_name", ["typed_sum", "typed_general"])
async def test_typed_keys_round_trip_in_natural_order(make_cluster: ClusterFactory, jobs_module: str,
                                                      data_root: Path, job_name: str) -> None:
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=(jobs_module,))
    (data_root / "in.txt").write_text(TEXT)
    inputs = [("in.txt", TEXT.encode())]
    job = await cluster.submit({"job": job_name, "input": {"path": "in.txt"}, "split_size": 600})
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "30"}) as response:
        body = await response.json()
    expected = run_sequential_inputs(job_name, inputs, modules=(jobs_module,))
    assert body["key_encoding"] == "json"
    assert list(body["result"].items()) == list(expected.items())  # content and order
    entries = sequential_entries(job_name, inputs, modules=(jobs_module,))
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result",
                                   params={"format": "ndjson"}) as response:
        lines = [json.loads(line) for line in (await response.text()).splitlines()]
    assert lines == entries
    # Ties of the job's order (equal counts) in natural key order: -15 before -14, ints before strs and tuples.
    # (As display strings "-14" would sort before "-15"; by code point "Zeta" comes before "alpha".)
    assert [key for key, _ in lines[:12]] == ["Zeta", "alpha", "f1.5", "é", ["w", "Zeta"], ["w", "alpha"],
                                              ["w", "f1.5"], ["w", "é"], -15, -14, ["n", -15], ["n", -14]]
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"top": "9"}) as response:
        assert (await response.json())["top"] == entries[:9]
    out = await cluster.submit({"job": job_name, "input": {"path": "in.txt"}, "split_size": 600,
                                "output": {"path": "out"}})
    await _done(cluster, out["id"])
    parts = read_parts(data_root / "out", 2)
    merged = sorted((line for part in parts for line in part), key=lambda line: key_order(json_key(line[0])))
    assert merged == sequential_lines(job_name, inputs, modules=(jobs_module,))


async def _done(cluster: Any, job_id: str) -> None:
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job_id}/result", params={"wait": "30"}) as response:
        assert response.status == 200, await response.text()


def hot_text(values: int, per_line: int = 200) -> str:
    """One hot key with ``values`` values (negative and positive ints, out of order), and a key of mixed kinds."""
    lines, made = [], 0
    while made < values:
        count = min(per_line, values - made)
        lines.append("hot " + " ".join(str((made + i) * 7919 % 1000003 - 500000) for i in range(count)))
        made += count
    lines.extend(["mixed b 3 f2.5 -1 a 2 B f-0.5", "mixed 2 z"])
    return "\n".join(lines) + "\n"


async def sorted_values_run(make_cluster: ClusterFactory, jobs_module: str, data_root: Path, spool: Path,
                            values: int) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Run the secondary-sort jobs over ``values`` values of one key with a small MR_REDUCE_MEMORY; the streamed
    job's result, the oracle's, and how many runs the reducers spilled."""
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=(jobs_module,), reduce_memory=1 << 20,
                                 spool_dir=str(spool))
    text = hot_text(values)
    (data_root / "hot.txt").write_text(text)
    job = await cluster.submit({"job": "sorted_values", "input": {"path": "hot.txt"}, "split_size": 1 << 20})
    while True:  # long polls, each within the session's timeout
        async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "10"}) as response:
            body = await response.json()
        if response.status == 200:
            break
        assert response.status == 409 and (await cluster.status(job["id"]))["state"] in ("running", "finalizing"), body
    spills = sum(r.app[LEDGER].spills for r in cluster.reducers)
    expected = run_sequential_inputs("sorted_values", [("hot.txt", text.encode())], modules=(jobs_module,))
    return body["result"], expected, spills


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


async def test_sorted_values_stream_through_spilled_runs(make_cluster: ClusterFactory, jobs_module: str,
                                                         data_root: Path, spool: Path) -> None:
    result, expected, spills = await sorted_values_run(make_cluster, jobs_module, data_root, spool, 200_000)
    assert spills > 1  # the hot key's values left memory as runs
    assert {key: value[:4] for key, value in result.items()} == {key: value[:4] for key, value in expected.items()}
    assert result["hot"][:2] == [200_000, True] and result["hot"][2] < result["hot"][3]
    assert result["mixed"][:4] == [10, True, -1, "z"]


async def test_sorted_values_as_a_list_and_from_memory(make_cluster: ClusterFactory, jobs_module: str,
                                                       data_root: Path) -> None:
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=(jobs_module,))
    text = hot_text(3000, per_line=50)
    job = await cluster.submit({"job": "sorted_list", "input": {"text": text}, "split_size": 4096})
    result = await cluster.result(job["id"])
    expected = run_sequential_inputs("sorted_list", [("input", text.encode())], modules=(jobs_module,))
    assert {key: value[:4] for key, value in result.items()} == {key: value[:4] for key, value in expected.items()}
    assert result["hot"][:2] == [3000, True]


@pytest.mark.slow
async def test_five_million_values_of_one_key_arrive_sorted_in_bounded_memory(
        make_cluster: ClusterFactory, jobs_module: str, data_root: Path, spool: Path) -> None:
    values = 5_000_000
    result, expected, spills = await sorted_values_run(make_cluster, jobs_module, data_root, spool, values)
    assert {key: value[:4] for key, value in result.items()} == {key: value[:4] for key, value in expected.items()}
    assert result["hot"][:2] == [values, True]
    # A list of 5 M ints alone takes about 180 MiB in a process; the reducer's task process stays far below it.
    peak_mib = result["hot"][4] / 1024
    print(f"5 M values: {spills} runs spilled, reducer task process peak RSS {peak_mib:.0f} MiB")
    assert peak_mib < 64, peak_mib  # measured: 26 MiB
