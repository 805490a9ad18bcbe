"""Partitions per job (N on any R reducers, partition p on reducer p % R) and total order (key ranges from a sample),
on real clusters, compared with the sequential oracle."""

from __future__ import annotations

import json
import random
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest

from actors.api import AsyncClient
from actors.core import wire
from actors.core.errors import ConfigError, JobFailed, WireError
from actors.core.keyorder import key_order
from actors.core.messages import Commit, Data, Finalize, StreamHeader, to_wire
from actors.core.partition import Key, canonical_key, decode_key, owned, owner
from actors.core.ranges import Router, check_cuts, pick_cuts, route_order
from actors.core.splits import Split
from actors.inputs.outdir import part_name
from actors.jobs import get_job
from actors.jobs.catalog import Catalog
from actors.jobs.examples import TotalOrderSort
from actors.mapper.sample import LineBudget, sampled_keys
from actors.mapper.spool import Spool
from actors.master.sampler import checked_samples, records_per_place, sample_places
from actors.sdk import MapReduceJob
from actors.sequential import run_sequential, sequential_lines

from .conftest import SHARED, Cluster, ClusterFactory
from .support import report_totals
from .test_remote import mapreduce

EXAMPLES = ("actors.jobs.examples",)
TEXT = "the quick brown fox\njumps over the lazy dog\nthe dog naïve 日本語 the\n" * 40


# The pure core: ownership, ranges, cuts and the sample's plan.

def test_partition_p_belongs_to_reducer_p_mod_r() -> None:
    assert [owner(p, 3) for p in range(8)] == [0, 1, 2, 0, 1, 2, 0, 1]
    assert list(owned(1, 8, 3)) == [1, 4, 7]  # reducer 1 of 3 holds 3 of 8 partitions
    assert sorted(p for r in range(3) for p in owned(r, 8, 3)) == list(range(8))
    assert [owner(p, 4) for p in range(4)] == [0, 1, 2, 3]  # N = R: reducer i owns partition i, as before


def test_ranges_route_by_the_natural_order() -> None:
    keys: list[Key] = [-15, -14, 3, 200, "", "a", "b", "é", ("a", 1), ("a", 2)]
    cuts = [canonical_key(k) for k in (3, "a", ("a", 2))]
    router = Router(4, cuts)
    parts = router.split({canonical_key(k): 1 for k in keys})
    shown = [sorted((decode_key(c) for c in part), key=key_order) for part in parts]
    assert shown == [[-15, -14], [3, 200, ""], ["a", "b", "é", ("a", 1)], [("a", 2)]]


def test_cuts_must_be_ascending_canonical_and_few_enough() -> None:
    with pytest.raises(WireError, match="ascending"):
        check_cuts([canonical_key(5), canonical_key(3)], 4)
    with pytest.raises(WireError, match="ascending"):
        check_cuts(["a", "a"], 4)
    with pytest.raises(WireError, match="at most 1"):
        check_cuts(["a", "b"], 2)
    with pytest.raises(WireError):
        check_cuts(["\x00not json"], 2)


def test_cut_points_split_the_sample_evenly_and_collapse_duplicates() -> None:
    sample = [canonical_key(i) for i in range(100)]
    random.Random(1).shuffle(sample)
    assert pick_cuts(sample, 4) == [canonical_key(25), canonical_key(50), canonical_key(75)]
    assert pick_cuts(["x"] * 50, 8) == ["x"]  # one distinct key: one cut, the other ranges stay empty
    assert pick_cuts([], 8) == [] and pick_cuts(sample, 1) == []


def test_the_sample_reads_evenly_spread_places() -> None:
    splits = [Split(i, i * 10, i * 10 + 10) for i in range(100)]
    assert [(s.index, s.start, s.end) for s in sample_places(splits, 10)] == [
        (i, 100 * i, 100 * i + 10) for i in range(10)]
    # Few splits: places inside them, all along the input, not just at the splits' starts.
    two = [Split(0, 0, 500), Split(1, 500, 1000)]
    assert [(s.start, s.end) for s in sample_places(two, 4)] == [(0, 250), (250, 500), (500, 750), (750, 1000)]
    # Two inputs: spread over both by their bytes; a compressed one is read from its start, once.
    mixed = [Split(0, 0, 600, 0), Split(1, 0, 400, 1)]
    assert [(s.start, s.end, s.input) for s in sample_places(mixed, 5, compressed=[1])] == [
        (0, 200, 0), (200, 400, 0), (400, 600, 0), (0, 400, 1)]
    assert sample_places([Split(0, 0, 0)], 10) == [Split(0, 0, 0)]
    assert records_per_place(10_000, 3) == 3334


# Hash partitions per job on a real cluster.

async def parts_of(cluster: Cluster, directory: Path, spec: dict[str, Any]) -> tuple[dict[str, Any], list[Path]]:
    job = await cluster.submit(spec)
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "60"}) as response:
        assert response.status == 200, await response.text()
    status = await cluster.status(job["id"])
    assert status["state"] == "done", status
    return status, sorted(directory.glob("part-*.jsonl"))


def entries(path: Path) -> list[list[Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("partitions", [1, 3, 8])
async def test_a_job_has_the_partitions_it_asks_for_on_two_reducers(
    make_cluster: ClusterFactory, data_root: Path, partitions: int
) -> None:
    cluster = await make_cluster(mappers=2, reducers=2)
    status, parts = await parts_of(cluster, data_root / "out", {
        "input": {"text": TEXT}, "partitions": partitions, "output": {"path": "out"}, "split_size": 512})
    assert [p.name for p in parts] == [part_name(p) for p in range(partitions)]
    assert status["partitions"] == partitions and len(status["partition_status"]) == partitions
    assert [s["reducer"] for s in status["partition_status"]] == [f"reducer-{p % 2}" for p in range(partitions)]
    merged = {k: v for part in parts for k, v in entries(part)}
    assert merged == run_sequential("wordcount", TEXT.encode())
    assert sum(len(entries(p)) for p in parts) == len(merged)  # each key in one part only
    # Without an output the result merges the N reports.
    job = await cluster.submit({"input": {"text": TEXT}, "partitions": partitions})
    assert await cluster.result(job["id"]) == run_sequential("wordcount", TEXT.encode())


async def test_the_default_is_the_reducer_count(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=3)
    job = await cluster.submit({"input": {"text": TEXT}})
    assert await cluster.result(job["id"]) == run_sequential("wordcount", TEXT.encode())
    assert (await cluster.status(job["id"]))["partitions"] == 3


@SHARED
@pytest.mark.parametrize("value", [0, -1, 10**30, 1025, "4", True, None, 4.0, [4], {"n": 4}])
async def test_hostile_partitions_are_refused_naming_the_field(shared_cluster: Cluster, value: Any) -> None:
    cluster = shared_cluster
    async with cluster.session.post(f"{cluster.url}/v1/jobs",
                                    json={"input": {"text": "a b"}, "partitions": value}) as response:
        body = await response.json()
    assert response.status == 400, body
    assert "partitions" in body["message"]
    if value in (1025, 10**30):
        assert "MR_MAX_PARTITIONS" in body["message"]


@SHARED
@pytest.mark.parametrize("query", ["0", "-1", "4.0", " 4", "99999999999999999999", "1025", "x"])
async def test_hostile_partitions_of_an_upload_are_refused(shared_cluster: Cluster, query: str) -> None:
    cluster = shared_cluster
    async with cluster.session.post(f"{cluster.url}/v1/jobs", params={"partitions": query}, data=b"a b\n",
                                    headers={"Content-Type": "application/octet-stream"}) as response:
        body = await response.json()
    assert response.status == 400, body
    assert "partitions" in body["message"]


@SHARED
async def test_an_upload_takes_partitions_in_its_query(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    async with cluster.session.post(f"{cluster.url}/v1/jobs", params={"partitions": "5"}, data=TEXT.encode(),
                                    headers={"Content-Type": "application/octet-stream"}) as response:
        job = await response.json()
    assert response.status == 202, job
    assert await cluster.result(job["id"]) == run_sequential("wordcount", TEXT.encode())
    assert (await cluster.status(job["id"]))["partitions"] == 5


async def test_n_at_the_cap_keeps_streams_and_finalizes_bounded_by_r(make_cluster: ClusterFactory,
                                                                      data_root: Path) -> None:
    """MR_MAX_PARTITIONS partitions on 2 reducers under a small MR_STAGE_BUDGET (the streams of a split to one
    reducer share it): exact, one part per partition (the mappers' stream fan-out and the master's finalize
    fan-out are counted in tests/test_partitions_bounds.py, with fakes)."""
    cap = 64
    cluster = await make_cluster(mappers=2, reducers=2, max_partitions=cap, stage_budget=256 * 1024)
    _, parts = await parts_of(cluster, data_root / "out", {
        "input": {"text": TEXT * 4}, "partitions": cap, "output": {"path": "out"}, "split_size": 1024})
    assert len(parts) == cap
    merged = {k: v for part in parts for k, v in entries(part)}
    assert merged == run_sequential("wordcount", (TEXT * 4).encode())


# Total order on a real cluster: TeraSort's inputs.

def int_keys(rng: random.Random, count: int) -> list[int]:
    return [rng.randrange(-(2**63), 2**63) for _ in range(count)]


def str_keys(rng: random.Random, count: int) -> list[str]:
    alphabet = string.ascii_letters + string.digits
    return ["".join(rng.choices(alphabet, k=10)) for _ in range(count)]


def typed(raw: Any) -> Key:
    """A part's key as the job made it (a part holds typed keys: a tuple as an array)."""
    return tuple(typed(item) for item in raw) if isinstance(raw, list) else raw


def check_total_order(parts: list[Path], keys: list[Any]) -> list[int]:
    """The parts concatenated in order hold every key, each once, in the natural order, as written (the part
    writer puts each part in that order: nothing is sorted here); answers each part's size."""
    ranges = [[typed(k) for k, _ in entries(part)] for part in parts]
    flat = [k for keys_of_part in ranges for k in keys_of_part]
    assert flat == sorted(set(keys), key=key_order)
    counts = {typed(k): v for part in parts for k, v in entries(part)}
    expected: dict[Any, int] = {}
    for key in keys:
        expected[key] = expected.get(key, 0) + 1
    assert counts == expected
    return [len(r) for r in ranges]


@pytest.mark.parametrize("kind", ["int", "str"])
async def test_total_order_parts_concatenated_are_the_sorted_input(
    make_cluster: ClusterFactory, data_root: Path, kind: str
) -> None:
    rng = random.Random(18)
    keys: list[Any] = int_keys(rng, 3000) if kind == "int" else str_keys(rng, 3000)
    keys += keys[:50]  # a few repeats
    (data_root / "keys.txt").write_text("".join(f"{k}\n" for k in keys), encoding="utf-8")
    # The oracle's entries in the natural key order, typed keys: what a part holds of its own range.
    in_order = sequential_lines("total_order_sort", [("keys.txt", (data_root / "keys.txt").read_bytes())],
                                modules=EXAMPLES)
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=EXAMPLES, sample_size=600)
    for partitions in (1, 4, 16):
        out = f"out-{partitions}"
        status, parts = await parts_of(cluster, data_root / out, {
            "job": "total_order_sort", "input": {"path": "keys.txt"}, "partitions": partitions,
            "output": {"path": out}, "split_size": 4096})
        assert len(parts) == partitions
        sizes = check_total_order(parts, keys)
        assert [entry for part in parts for entry in entries(part)] == in_order  # concatenated, unsorted
        assert status["partitioner"] == "total_order"
        if partitions > 1:
            assert status["sample"]["cuts"] == partitions - 1 and status["sample"]["keys"] > 0
            assert "sample_ms" in status["phases"] and "map_ms" in status["phases"]
            assert min(sizes) > 0, sizes
        else:
            assert "sample" not in status  # one range: nothing to sample


def test_a_sample_answers_at_most_its_record_count_of_keys_whole_lines_only() -> None:
    budget = LineBudget(3)
    assert budget.take([b"a\nb", b"\nc\nd\n", b"e\n"]) == [b"a\nb", b"\nc\n"] and budget.done
    spool = Spool(get_job("wordcount"), 1, 10_000, 1 << 20, native=False)
    spool.feed(" ".join(f"w{i}" for i in range(1000)).encode() + b"\n", "x")  # one record, 1000 keys
    spool.flush()
    keys = sampled_keys(spool, 1 << 20, 10)
    assert 5 <= len(keys) <= 10 and len(set(keys)) == len(keys)
    assert len(sampled_keys(spool, 200, 10_000)) < 20  # bounded by the answer's bytes too


def test_the_routing_order_is_the_natural_order() -> None:
    rng = random.Random(7)
    keys: list[Key] = [0, -1, 1, 2**64 - 1, -(2**63), "", "\x00", "\x00x", "0", "-0", "007", "é", ("a", 1), (3,),
                       *int_keys(rng, 200), *str_keys(rng, 50)]
    for key in keys:
        assert route_order(canonical_key(key)) == key_order(key), key


async def test_a_reducer_holds_each_partition_it_owns_apart_and_refuses_the_others(
    make_cluster: ClusterFactory,
) -> None:
    """Reducer 0 of 2 with 6 partitions: partitions 0, 2 and 4 are committed, reported and repeated each on its
    own; partition 3 is reducer 1's (409), partition 6 does not exist (400)."""
    cluster = await make_cluster(mappers=1, reducers=2)
    url = cluster.reducers[0].url

    async def call(path: str, body: bytes) -> tuple[int, Any]:
        async with cluster.session.post(url + path, data=body, headers=cluster.auth) as response:
            raw = await response.read()
            return response.status, cbor2.loads(raw) if response.content_type == "application/cbor" else (
                json.loads(raw))

    def stream(partition: int, split: int, items: dict[str, int]) -> bytes:
        head = StreamHeader(job="j", epoch=1, split=split, attempt=1, partition=partition, partitions=6,
                            job_name="wordcount", size=10_000, reducers=2)
        return (wire.frame(to_wire(head), 1 << 20) + wire.frame(to_wire(Data(items)), 1 << 20)
                + wire.frame(to_wire(Commit(1, len(items), sum(items.values()))), 1 << 20))

    def finalize(partition: int) -> bytes:
        return wire.encode(to_wire(Finalize(job="j", epoch=1, partition=partition, splits=2, job_name="wordcount",
                                            partitions=6, reducers=2)))

    for partition in (0, 2, 4):
        for split in (0, 1):
            status, ack = await call("/internal/v1/shuffle", stream(partition, split, {f"p{partition}": split + 1}))
            assert (status, ack["status"]) == (200, "committed")
    status, ack = await call("/internal/v1/shuffle", stream(2, 1, {"p2": 2}))
    assert (status, ack["status"]) == (200, "duplicate")  # per partition: split 1 of partition 2 is in already
    status, answer = await call("/internal/v1/shuffle", stream(3, 0, {"x": 1}))
    assert status == 409 and "routing is stale" in answer["message"]
    status, answer = await call("/internal/v1/shuffle", stream(6, 0, {"x": 1}))
    assert status == 400 and "out of range" in answer["message"]
    answers = {}
    for partition in (2, 0, 4):
        status, answer = await call("/internal/v1/finalize", finalize(partition))
        assert status == 200 and answer["partition"] == partition
        answers[partition] = answer
        assert report_totals(answer) == {f"p{partition}": 3}
    status, again = await call("/internal/v1/finalize", finalize(2))
    assert (status, again) == (200, answers[2])  # a repeated finalize: the same answer, kept per partition
    status, answer = await call("/internal/v1/finalize", finalize(1))
    assert status == 409


async def test_an_input_already_in_order_is_sampled_all_along(make_cluster: ClusterFactory, data_root: Path) -> None:
    """Sorted keys in a plan of few splits: a sample at the splits' starts only would cut every range near them
    and leave most parts empty; places spread along the bytes keep the ranges even."""
    keys = sorted(set(int_keys(random.Random(5), 4000)))
    (data_root / "sorted.txt").write_text("".join(f"{k}\n" for k in keys), encoding="utf-8")
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=EXAMPLES, sample_size=800)
    status, parts = await parts_of(cluster, data_root / "out", {
        "job": "total_order_sort", "input": {"path": "sorted.txt"}, "partitions": 16, "output": {"path": "out"}})
    sizes = check_total_order(parts, keys)
    assert min(sizes) > 0 and max(sizes) <= 2 * len(keys) / 16, sizes
    assert status["progress"]["splits_total"] <= 2 and status["sample"]["places"] == 10


async def test_status_and_the_client_show_partitions_and_the_sample(make_cluster: ClusterFactory,
                                                                    data_root: Path) -> None:
    keys = str_keys(random.Random(9), 2000)
    (data_root / "keys.txt").write_text("".join(f"{k}\n" for k in keys), encoding="utf-8")
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=EXAMPLES)
    async with AsyncClient(cluster.url) as client:
        handle = await client.submit("total_order_sort", {"path": "keys.txt"}, partitions=4, output="out")
        await handle.wait(60)
    done = await mapreduce("status", "--url", cluster.url, handle.id)
    assert done.code == 0, done.err
    assert "partitions: 4 (total order)" in done.out
    assert "sample: 2000 keys from 10 places, 3 cut points, " in done.out, done.out
    assert len(list((data_root / "out").glob("part-*.jsonl"))) == 4


def test_a_job_with_an_unknown_partitioner_is_refused_when_registered() -> None:
    class Ranged(MapReduceJob):
        name = "ranged"
        partitioner = "range"

        def mapper(self, line: str) -> Iterator[tuple[str, int]]:
            yield line, 1

    with pytest.raises(ConfigError, match="partitioner 'range' is not one of hash, total_order"):
        Catalog([(Ranged, "a test")])
    assert TotalOrderSort.partitioner == "total_order" and MapReduceJob.partitioner == "hash"


def test_a_lying_sample_fails_the_job_naming_the_mapper() -> None:
    """More keys than records asked for, or a key no mapper can make, never cut the ranges."""
    assert checked_samples(["a", "\x007"], 2, "mapper-0") == ["a", "\x007"]
    with pytest.raises(JobFailed, match="mapper-1 answered a sample of 2 records with 3 keys"):
        checked_samples(["a", "b", "c"], 2, "mapper-1")
    with pytest.raises(JobFailed, match="mapper-1 answered a sample with a malformed key"):
        checked_samples(["\x00{not json"], 2, "mapper-1")
