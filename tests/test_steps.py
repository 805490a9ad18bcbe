"""Steps, records and hooks on real local clusters (processes, task workers), each compared with the oracle."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from actors.local import LocalCluster
from actors.sequential import run_sequential_records

from .support import make_text

MODULES = ("tests.stepjobs",)
TEXT = make_text(random.Random(17), 6000, ("apple", "Apple", "pear", "fig", "kiwi", "banana", "日本語", "x"),
                 range(12)).decode()
ENV = {"MR_JOB_MODULES": "tests.stepjobs", "MR_MIN_SPLIT_SIZE": "1024"}


def multiset(records: list[Any]) -> Counter[str]:
    return Counter(json.dumps(record, sort_keys=True) for record in records)


def oracle(job: str, text: str = TEXT, name: str = "book.txt") -> list[list[Any]]:
    return run_sequential_records(job, [(name, text.encode())], modules=MODULES)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[LocalCluster, aiohttp.ClientSession, Path]]:
    (tmp_path / "book.txt").write_text(TEXT, encoding="utf-8")
    async with LocalCluster(mappers=2, reducers=2, discovery="static", data_root=str(tmp_path), extra_env=ENV,
                            log_dir=str(tmp_path / "logs"), restarts=None) as local, \
            aiohttp.ClientSession(base_url=local.master_url, headers=local.api_headers,
                                  timeout=aiohttp.ClientTimeout(total=120)) as http:
        yield local, http, tmp_path


async def run(http: aiohttp.ClientSession, job: str, **extra: Any) -> dict[str, Any]:
    spec = {"job": job, "input": {"path": "book.txt"}, "split_size": 4096, **extra}
    async with http.post("/v1/jobs", json=spec) as response:
        submitted = await response.json()
        assert response.status == 202, submitted
    async with http.get(f"/v1/jobs/{submitted['id']}/result", params={"wait": "90"}) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
    return body


async def test_records_map_only_and_hooks_equal_the_oracle(
        cluster: tuple[LocalCluster, aiohttp.ClientSession, Path]) -> None:
    _, http, root = cluster
    fanout = await run(http, "fanout")
    expected = oracle("fanout")
    assert isinstance(fanout["result"], list) and multiset(fanout["result"]) == multiset(expected)
    assert any(key[0] == "pair" or isinstance(key, list) for key, _ in expected)  # 1 and many records per key
    async with http.get(f"/v1/jobs/{fanout['id']}/result", params={"format": "ndjson"}) as response:
        lines = [json.loads(line) for line in (await response.text()).splitlines()]
    assert multiset(lines) == multiset(expected)
    async with http.get(f"/v1/jobs/{fanout['id']}/result", params={"top": "3"}) as response:
        assert len((await response.json())["top"]) == 3

    mapped = await run(http, "long_lines")
    assert multiset(mapped["result"]) == multiset(oracle("long_lines"))

    hooked = await run(http, "hooked")
    got = Counter(key for key, _ in hooked["result"])
    assert got["__reduced__"] == 2  # reducer_final: once per partition's reduce
    words = {key: value for key, value in hooked["result"] if not key.startswith("__")}
    want = {key: value for key, value in oracle("hooked") if not key.startswith("__")}
    assert words == want
    # mapper_final: once per map task; every line counted once over the committed attempts
    assert sum(value for key, value in hooked["result"] if key == "__lines__") == len(TEXT.splitlines())

    written = await run(http, "fanout", output={"path": "out/fanout"})
    assert written["output"]["path"] == "out/fanout"
    parts = sorted((root / "out" / "fanout").glob("part-*.jsonl"))
    on_disk = [json.loads(line) for part in parts for line in part.read_text().splitlines()]
    assert multiset(on_disk) == multiset(expected)


def test_the_oracle_runs_steps_with_typed_keys_between_them() -> None:
    words = Counter(word.lower() for word in TEXT.split())
    top = max(words.items(), key=lambda item: (item[1], [-ord(c) for c in item[0]]))
    assert oracle("most_used_word") == [[top[0], top[1]]]
    counts = Counter(word for word in TEXT.split())
    shapes: dict[tuple[int, str], set[str]] = {}
    for word in counts:
        shapes.setdefault((len(word), word[0]), set()).add(word)
    histogram: Counter[int] = Counter()
    for (length, _), group in shapes.items():
        histogram[length] += len(group)
    assert multiset(oracle("length_histogram")) == multiset([[k, v] for k, v in histogram.items()])


def test_the_oracle_runs_hooks_once_per_map_task_and_reduce() -> None:
    inputs = [("a.txt", b"x y\nx\n"), ("b.txt", b"y\n")]
    records = run_sequential_records("hooked", inputs, modules=MODULES)
    assert sorted(map(tuple, records)) == sorted([("x", 2), ("y", 2), ("__lines__", 3),
                                                  ("__reduced__", 1)])
