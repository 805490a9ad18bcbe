"""Per-job partitions with steps and counters (the merge of partitions into main): a multi-step job on more
partitions than reducers, a total-order job whose last step is sampled, counters that a sample never adds to, and a
total-order job that cannot be sampled refused at submit. Every result is the oracle's."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from actors.core.keyorder import key_order
from actors.jobs import load_catalog
from actors.sequential import run_counted, run_sequential_output, run_sequential_records

from .conftest import Cluster, ClusterFactory
from .support import make_text

MODULES = ("tests.stepjobs", "tests.partitionjobs")
VOCABULARY = [f"w{i}" for i in range(400)] + ["apple", "Apple", "日本語"]
TEXT = make_text(random.Random(18), 4000, VOCABULARY, range(10))


def multiset(records: list[Any]) -> Counter[str]:
    return Counter(json.dumps(record, sort_keys=True) for record in records)


def typed(raw: Any) -> Any:
    return tuple(typed(item) for item in raw) if isinstance(raw, list) else raw


async def finished(cluster: Cluster, spec: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    job = await cluster.submit(spec)
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "90"},
                                   headers=cluster.auth) as response:
        body = await response.json()
    status = await cluster.status(job["id"])
    assert status["state"] == "done", status
    return status, body.get("result")


def part_lines(directory: Path) -> list[list[Any]]:
    """Every part's lines, the parts concatenated in order, nothing re-sorted."""
    return [json.loads(line) for part in sorted(directory.glob("part-*.jsonl"))
            for line in part.read_text(encoding="utf-8").splitlines()]


async def test_a_multi_step_job_on_more_partitions_than_reducers_equals_the_oracle(
        make_cluster: ClusterFactory, data_root: Path) -> None:
    """5 partitions on 2 reducers in both steps of two jobs: reducer 0 holds partitions 0, 2 and 4 of each step
    (its ledger replaces step 1's states by step 2's), step 1 writes 5 intermediate files, step 2 is planned over
    them, and the records are the oracle's."""
    (data_root / "book.txt").write_bytes(TEXT)
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=MODULES, split_size=2048)
    for job in ("most_used_word", "length_histogram"):
        expected = run_sequential_output(job, [("book.txt", TEXT)], modules=MODULES)
        status, result = await finished(cluster, {"job": job, "input": {"path": "book.txt"}, "partitions": 5,
                                                  "split_size": 2048})
        if isinstance(expected, dict):  # its last reducer returns one value a key: {key: value}, as the oracle's
            assert result == expected, job
        else:
            assert multiset(result) == multiset(expected), job
        assert status["partitions"] == 5 and len(status["partition_status"]) == 5
        assert [p["reducer"] for p in status["partition_status"]] == [status["reducers"][p % 2] for p in range(5)]
        assert len(status["steps"]) >= 2 and all(s["state"] == "done" for s in status["steps"])
        # Step 2 read the intermediate files step 1's 5 partitions wrote: at least one split, and their bytes.
        assert status["steps"][1]["splits_total"] >= 1 and status["steps"][1]["bytes_total"] > 0


async def test_a_total_order_job_with_steps_samples_its_last_step_and_its_parts_are_in_order(
        make_cluster: ClusterFactory, data_root: Path) -> None:
    """The last step's keys (counts, ints) are cut from a sample of that step's own input, the intermediate
    files: the parts, concatenated as written, are the oracle's records in the natural key order, and the counters
    of every step's first reports and splits are the oracle's."""
    (data_root / "book.txt").write_bytes(TEXT)
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=MODULES, split_size=2048, sample_size=400)
    records = run_sequential_records("words_by_count", [("book.txt", TEXT)], modules=MODULES)
    in_order = sorted(records, key=lambda record: key_order(typed(record[0])))
    status, _ = await finished(cluster, {"job": "words_by_count", "input": {"path": "book.txt"}, "partitions": 4,
                                         "output": {"path": "out"}, "split_size": 2048})
    assert part_lines(data_root / "out") == in_order
    assert len(list((data_root / "out").glob("part-*.jsonl"))) == 4
    assert status["partitioner"] == "total_order" and status["sample"]["cuts"] >= 1
    assert "sample_ms" in status["phases"]
    words = len(TEXT.split())
    assert status["counters"]["map"]["words"] == words  # the first step's splits, each counted once


async def test_a_total_order_sample_adds_nothing_to_the_counters(make_cluster: ClusterFactory,
                                                                data_root: Path) -> None:
    """The sample maps records the splits map again: its counts are never the job's (8 partitions, 2 reducers)."""
    (data_root / "book.txt").write_bytes(TEXT)
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=MODULES, split_size=2048, sample_size=600)
    expected = run_counted(load_catalog(MODULES).sdk("counted_sort"), [("book.txt", TEXT)])
    status, _ = await finished(cluster, {"job": "counted_sort", "input": {"path": "book.txt"}, "partitions": 8,
                                         "output": {"path": "sorted"}, "split_size": 2048})
    assert status["sample"]["keys"] > 0
    assert status["counters"] == expected.counters
    assert status["counters"]["map"]["lines"] == len(TEXT.splitlines())
    lines = part_lines(data_root / "sorted")
    assert [key for key, _ in lines] == sorted(str(key) for key in expected.result)
    assert {key: value for key, value in lines} == expected.result


async def test_a_one_step_total_order_job_with_mapper_raw_is_refused_at_submit(make_cluster: ClusterFactory,
                                                                             data_root: Path) -> None:
    (data_root / "book.txt").write_bytes(TEXT)
    cluster = await make_cluster(mappers=1, reducers=2, job_modules=MODULES)
    async with cluster.session.post(f"{cluster.url}/v1/jobs", headers=cluster.auth, json={
            "job": "raw_sort", "input": {"path": "book.txt"}, "partitions": 4}) as response:
        body = await response.json()
    assert response.status == 400, body
    assert "total_order" in body["message"] and "mapper_raw" in body["message"]
