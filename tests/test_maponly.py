"""Map-only jobs write one part per split (no reducer pass), committed exactly once; a steps job whose last reducer
returns one value keeps the ``{key: value}`` result. Real local clusters, compared with the oracle."""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actors.local import LocalCluster
from actors.sequential import run_sequential_output

from .support import DRILL_ENV, make_text
from .test_faults import Client, client_of, fault_cluster

MODULES = ("tests.stepjobs",)
TEXT = make_text(random.Random(23), 4000, [f"w{i}" for i in range(50)] + ["Apple", "日本語"], range(10))
ENV = {**DRILL_ENV, "MR_JOB_MODULES": "tests.stepjobs", "MR_MIN_SPLIT_SIZE": "1024", "MR_SPLIT_SIZE_FLOOR": "1024",
       "MR_TIMEOUT_LEASE": "10"}


def multiset(records: list[Any]) -> Counter[str]:
    return Counter(json.dumps(record, sort_keys=True) for record in records)


def oracle(job: str, params: dict[str, str] | None = None) -> Any:
    return run_sequential_output(job, [("book.txt", TEXT)], params=params, modules=MODULES)


@pytest.fixture
async def maponly(tmp_path: Path) -> AsyncIterator[tuple[LocalCluster, Client, Path]]:
    (tmp_path / "book.txt").write_bytes(TEXT)
    async with fault_cluster(tmp_path, ENV) as cluster, client_of(cluster) as client:
        yield cluster, client, tmp_path


async def submit(client: Client, job: str, output: str = "", **params: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"job": job, "input": {"path": "book.txt"}, "split_size": 1024, "params": params}
    if output:
        spec["output"] = {"path": output}
    return await client.submit(spec)


async def finished(client: Client, job_id: str) -> dict[str, Any]:
    async with client.session.get(f"/v1/jobs/{job_id}/result", params={"wait": "90"}) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
        return body


def parts_of(root: Path, output: str) -> list[Path]:
    directory = root / output
    assert (directory / "_SUCCESS").is_file()
    assert not [p for p in directory.iterdir() if p.name.startswith(".")], "staging or attempt files were left"
    return sorted(directory.glob("part-*.jsonl"))


def on_disk(parts: list[Path]) -> list[Any]:
    return [json.loads(line) for part in parts for line in part.read_text(encoding="utf-8").splitlines()]


async def test_map_only_writes_one_part_per_split_and_equals_the_oracle(
        maponly: tuple[LocalCluster, Client, Path]) -> None:
    _, client, root = maponly
    expected = oracle("slow_lines")
    job = await submit(client, "slow_lines", output="out/lines")
    await finished(client, job["id"])
    status = await client.status(job["id"])
    splits = status["progress"]["splits_total"]
    assert splits > 2  # more splits than reducers: the parts are per split, not per partition
    parts = parts_of(root, "out/lines")
    assert [p.name for p in parts] == [f"part-{i:05d}.jsonl" for i in range(splits)]
    assert multiset(on_disk(parts)) == multiset(expected)
    success = json.loads((root / "out/lines/_SUCCESS").read_text())
    assert success["keys"] == len(expected) and len(success["parts"]) == splits
    # Each part holds its split's records in the order mapped: the book's lines, in order, across the parts.
    firsts = [line.split()[0] for line in TEXT.decode().splitlines() if line.split()]
    assert [key for key, _ in on_disk(parts)] == firsts

    held = await submit(client, "slow_lines")  # without an output: the mappers report their records
    result = (await finished(client, held["id"]))["result"]
    assert result == on_disk(parts)  # split order, each split's in the order mapped


async def test_map_only_with_backups_and_a_killed_mapper_stays_one_part_per_split(
        maponly: tuple[LocalCluster, Client, Path], tmp_path: Path) -> None:
    cluster, client, root = maponly
    expected = oracle("slow_lines", {"pause_ms": "3"})
    job = await submit(client, "slow_lines", output="out/killed", pause_ms="3")
    async with asyncio.timeout(60):
        while True:
            status = await client.status(job["id"], splits=True)
            running = [(split["split"], a) for split in status["splits"] for a in split["attempts"]
                       if a["state"] == "running" and a.get("mapper")]
            if running:
                break
            await asyncio.sleep(0.02)  # observing another process's progress: nothing else to wait on
    split, attempt = running[0]
    cluster.signal(attempt["mapper"], signal.SIGKILL)
    await cluster.restart(attempt["mapper"])
    await finished(client, job["id"])
    status = await client.status(job["id"], splits=True)
    attempts = status["splits"][split]["attempts"]
    assert [a["state"] for a in attempts].count("done") == 1 and status["attempts"]["retries"] >= 1, attempts
    parts = parts_of(root, "out/killed")
    assert len(parts) == status["progress"]["splits_total"]
    assert multiset(on_disk(parts)) == multiset(expected)


async def test_map_only_backup_attempts_publish_once(tmp_path: Path) -> None:
    # The last split's last line, a line of its own (TEXT does not end with a newline): that split runs alone, and
    # is backed up.
    book = TEXT.rstrip(b"\n") + b"\nSTALL one straggler\n"
    (tmp_path / "book.txt").write_bytes(book)
    env = {**ENV, "MR_BACKUP_TASKS": "on", "MR_BACKUP_AFTER": "0.05"}
    async with fault_cluster(tmp_path, env) as _, client_of(_) as client:
        params = {"stall_ms": "4000"}  # well past twice the median split even on a loaded machine
        expected = run_sequential_output("slow_lines", [("book.txt", book)], params=params, modules=MODULES)
        assert isinstance(expected, list)
        job = await submit(client, "slow_lines", output="out/backups", **params)
        await finished(client, job["id"])
        status = await client.status(job["id"], splits=True)
        started = status["attempts"]["started"]
        parts = parts_of(tmp_path, "out/backups")
        assert len(parts) == status["progress"]["splits_total"] < started, status["attempts"]  # backups ran
        assert multiset(on_disk(parts)) == multiset(expected)
        held = await submit(client, "slow_lines", **params)
        assert multiset((await finished(client, held["id"]))["result"]) == multiset(expected)


async def test_a_steps_job_whose_last_reducer_returns_one_value_keeps_key_value(
        maponly: tuple[LocalCluster, Client, Path]) -> None:
    _, client, root = maponly
    job = await submit(client, "count_then_total")
    body = await finished(client, job["id"])
    expected = oracle("count_then_total")
    assert isinstance(expected, dict) and body["result"] == expected and body["key_encoding"] == "json"
    written = await submit(client, "count_then_total", output="out/totals")
    await finished(client, written["id"])
    lines = on_disk(sorted((root / "out/totals").glob("part-*.jsonl")))
    assert {key: value for key, value in lines} == {int(k): v for k, v in expected.items()}
