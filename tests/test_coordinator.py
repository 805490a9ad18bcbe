"""Whole jobs on real actors over loopback, each result compared with the sequential oracle."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import pytest

from actors.net.metrics import METRICS
from actors.sequential import run_sequential

from .conftest import Cluster, ClusterFactory

WORDS = ["alpha", "beta", "γάμμα", "δέλτα", "日本語", "😀", "naïve", "x", "The", "the"]


def sample_text(seed: int, lines: int) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        n = rng.choice([0, 0, 1, 3, 8, 20])
        out.append(" ".join(rng.choice(WORDS) for _ in range(n)) + rng.choice(["", "  ", "\t"]))
    return "\n".join(out)


CASES = {
    "multibyte": sample_text(1, 3000),
    "empty_lines": "\n\n\nword\n\n\nword other\n\n",
    "no_trailing_newline": "one two\nthree four two",
    "empty": "",
    "only_whitespace": " \n\t\n  \n",
    "one_long_line": " ".join(f"w{i % 997}" for i in range(120_000)),
    "unicode_whitespace": "a\u2003b\x85c\u00a0d\ne\x1cf",
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_text_jobs_equal_the_oracle(make_cluster: ClusterFactory, name: str) -> None:
    cluster = await make_cluster(mappers=2, reducers=2)
    text = CASES[name]
    result = await cluster.run_text(text)
    assert result == dict(Counter(text.split()))
    assert result == run_sequential("wordcount", text.encode())


async def test_more_splits_than_mappers_on_a_path_input(make_cluster: ClusterFactory, data_root: Path) -> None:
    cluster = await make_cluster(mappers=2, reducers=3)
    text = sample_text(7, 20_000)
    (data_root / "book.txt").write_text(text, encoding="utf-8")
    job = await cluster.submit({"job": "wordcount", "input": {"path": "book.txt"}, "split_size": 8 * 1024})
    result = await cluster.result(job["id"])
    assert result == dict(Counter(text.split()))
    status = await cluster.status(job["id"])
    assert status["state"] == "done"
    assert status["partitions"] == 3
    assert status["progress"]["splits_total"] > 2 * len(cluster.mappers)
    assert status["progress"]["splits_done"] == status["progress"]["splits_total"]
    assert status["progress"]["bytes_done"] == status["progress"]["bytes_total"] == len(text.encode())
    # A failure-free run maps every split exactly once.
    assert status["attempts"]["started"] == status["progress"]["splits_total"]
    assert status["attempts"]["retries"] == 0


async def test_a_large_result_crosses_the_wire_whole(make_cluster: ClusterFactory, data_root: Path) -> None:
    # Reports of megabytes: each reducer's totals arrive in many reads, not one buffer's worth.
    cluster = await make_cluster(mappers=2, reducers=2)
    text = "\n".join(f"word{i} shared{i % 7}" for i in range(120_000))
    (data_root / "wide.txt").write_text(text)
    job = await cluster.submit({"input": {"path": "wide.txt"}, "split_size": 1024 * 1024})
    assert await cluster.result(job["id"]) == dict(Counter(text.split()))


async def test_uploaded_body_with_invalid_utf8_is_replaced_not_fatal(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster()
    data = b"caf\xc3\xa9 ok \xff\xfe broken \xe6\x97 cut\nnext \xc3 line ok\n" * 500
    job = await cluster.submit(data=data, headers={"Content-Type": "application/octet-stream"},
                               params={"split_size": "1000"})
    assert await cluster.result(job["id"]) == run_sequential("wordcount", data)


async def test_two_concurrent_jobs_are_both_exact(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=2, reducers=2)
    first, second = sample_text(11, 8000), sample_text(12, 9000) + " extra"
    jobs = await asyncio.gather(
        cluster.submit({"input": {"text": first}, "split_size": 4096}),
        cluster.submit({"input": {"text": second}, "split_size": 4096}),
    )
    results = await asyncio.gather(*(cluster.result(j["id"]) for j in jobs))
    assert results == [dict(Counter(first.split())), dict(Counter(second.split()))]


async def test_inverted_index_job(make_cluster: ClusterFactory, data_root: Path) -> None:
    cluster = await make_cluster()
    text = sample_text(3, 2000)
    (data_root / "doc.txt").write_text(text, encoding="utf-8")
    job = await cluster.submit({"job": "inverted_index", "input": {"path": "doc.txt"}, "split_size": 2048})
    result = await cluster.result(job["id"])
    assert result == run_sequential("inverted_index", text.encode(), "doc.txt")
    assert result == {word: ["doc.txt"] for word in set(text.split())}


async def test_original_compute_trigger(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=3, reducers=2)
    async with cluster.session.get(f"{cluster.url}/compute",
                                   params={"text": "hello hello hello hello world world world"}) as response:
        assert response.status == 200
        assert await response.json() == {"hello": 4, "world": 3}


def input_reads(cluster: Cluster) -> float:
    """How many times mappers asked the master for a served input's bytes (any status)."""
    samples = (sample for family in cluster.master.app[METRICS].registry.collect() for sample in family.samples)
    return sum(s.value for s in samples
               if s.name == "mapreduce_http_requests_total" and s.labels.get("route") == "/internal/v1/inputs/{id}")


async def test_a_small_text_travels_inside_its_assignment(make_cluster: ClusterFactory) -> None:
    """A text of at most MR_INLINE_INPUT bytes goes to the mapper inside its assignment: no request back to the
    master for it. A longer one is still read by reference, in ranges."""
    cluster = await make_cluster(mappers=2, reducers=2, inline_input=64)
    text = "hello hello hello hello world world world"
    async with cluster.session.get(f"{cluster.url}/compute", params={"text": text}) as response:
        assert (response.status, await response.json()) == (200, {"hello": 4, "world": 3})
    assert await cluster.run_text("x y x z") == {"x": 2, "y": 1, "z": 1}
    assert input_reads(cluster) == 0
    longer = " ".join(["alpha beta gamma"] * 10)  # 169 bytes: past the limit
    assert await cluster.run_text(longer) == run_sequential("wordcount", longer.encode())
    assert input_reads(cluster) >= 1


async def test_top_n_result(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster()
    text = "b a c a b a d"
    job = await cluster.submit({"input": {"text": text}})
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result",
                                   params={"top": "2", "wait": "30"}) as response:
        body = await response.json()
    assert body["top"] == [["a", 3], ["b", 2]]
    assert body["keys"] == 4


async def test_cancel_stops_a_job(make_cluster: ClusterFactory, data_root: Path) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    (data_root / "big.txt").write_text(sample_text(5, 60_000), encoding="utf-8")
    job = await cluster.submit({"input": {"path": "big.txt"}, "split_size": 1024})
    async with cluster.session.delete(f"{cluster.url}/v1/jobs/{job['id']}") as response:
        body = await response.json()
    assert response.status == 200
    assert body["state"] == "cancelled"
    assert (await cluster.status(job["id"]))["state"] == "cancelled"
    # The cluster still runs a good job exactly afterwards.
    assert await cluster.run_text("a b a") == {"a": 2, "b": 1}
