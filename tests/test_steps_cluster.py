"""Multi-step jobs on real local clusters: every step's records stay inside the cluster (intermediate files under
MR_WORK_DIR), results equal the oracle's, faults in a later step are redone within that step, and a job's files are
gone once it ends, however it ends."""

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
from actors.sequential import run_sequential_output, run_sequential_records

from .support import DRILL_ENV, make_text
from .test_faults import Client, client_of, fault_cluster, still_exact

MODULES = ("tests.stepjobs",)
VOCABULARY = [f"w{i}" for i in range(300)] + ["apple", "Apple", "日本語"]
TEXT = make_text(random.Random(5), 6000, VOCABULARY, range(12))
ENV = {**DRILL_ENV, "MR_JOB_MODULES": "tests.stepjobs", "MR_MIN_SPLIT_SIZE": "1024", "MR_SPLIT_SIZE_FLOOR": "1024",
       "MR_TIMEOUT_LEASE": "10"}  # step 2 maps slowly: a split may take longer than the drills' 2 s lease


def multiset(records: list[Any]) -> Counter[str]:
    return Counter(json.dumps(record, sort_keys=True) for record in records)


def oracle(job: str, params: dict[str, str] | None = None) -> list[list[Any]]:
    return run_sequential_records(job, [("book.txt", TEXT)], params=params, modules=MODULES)


def work_files(cluster: LocalCluster, job: dict[str, Any] | None = None) -> list[Path]:
    """Every file under the cluster's MR_WORK_DIR (only ``job``'s, when given)."""
    root = cluster.log_dir / "work"
    files = [p for p in root.rglob("*") if p.is_file()]
    if job is not None:
        files = [p for p in files if p.relative_to(root).parts[0] == f"{job['id']}.{job['epoch']}"]
    return files


@pytest.fixture
async def stepped(tmp_path: Path) -> AsyncIterator[tuple[LocalCluster, Client]]:
    (tmp_path / "book.txt").write_bytes(TEXT)
    async with fault_cluster(tmp_path, ENV) as cluster, client_of(cluster) as client:
        yield cluster, client


async def submit(client: Client, job: str, **params: str) -> dict[str, Any]:
    return await client.submit({"job": job, "input": {"path": "book.txt"}, "split_size": 1024, "params": params})


async def records(client: Client, job_id: str) -> list[Any]:
    async with client.session.get(f"/v1/jobs/{job_id}/result", params={"wait": "90"}) as response:
        body = await response.json()
        assert response.status == 200, body
        return list(body["result"])


async def in_step(client: Client, job_id: str, step: int, splits_done: int = 0) -> dict[str, Any]:
    """Poll the job's status until it runs ``step`` with at least ``splits_done`` of its splits done."""
    async with asyncio.timeout(60):
        while True:
            status = await client.status(job_id, splits=True)
            assert status["state"] == "running", status
            if status["step"] == step and status["progress"]["splits_done"] >= splits_done:
                return status
            await asyncio.sleep(0.02)  # observing another process's progress: nothing to wait on but its status


async def test_two_and_three_step_jobs_equal_the_oracle_and_leave_no_files(
        stepped: tuple[LocalCluster, Client]) -> None:
    cluster, client = stepped
    words = Counter(word.lower() for word in TEXT.decode().split())
    top = max(words.items(), key=lambda item: (item[1], [-ord(c) for c in item[0]]))
    job = await submit(client, "most_used_word")
    assert await records(client, job["id"]) == oracle("most_used_word") == [[top[0], top[1]]]
    status = await client.status(job["id"])
    assert status["step"] == 1 and [s["step"] for s in status["steps"]] == [0, 1]
    for step in status["steps"]:
        assert step["state"] == "done" and step["splits_done"] == step["splits_total"] >= 1
        assert step["map_ms"] is not None and step["finalize_ms"] is not None
    assert status["steps"][1]["bytes_total"] > 0  # step 2 read step 1's files, whose sizes the reducers reported

    three = await submit(client, "length_histogram")  # its last reducer returns one value: {key: value}
    async with client.session.get(f"/v1/jobs/{three['id']}/result", params={"wait": "90"}) as response:
        histogram = (await response.json())["result"]
    assert histogram == run_sequential_output("length_histogram", [("book.txt", TEXT)], modules=MODULES)
    assert isinstance(histogram, dict) and histogram
    assert len((await client.status(three["id"]))["steps"]) == 3
    assert work_files(cluster) == []  # every job's intermediate files went when it ended
    await still_exact(client)  # a one-step job runs as before


async def test_reducer_killed_in_step_2_redoes_that_step_from_step_1_files(
        stepped: tuple[LocalCluster, Client]) -> None:
    cluster, client = stepped
    job = await submit(client, "slow_most_used", pause_ms="15")
    await in_step(client, job["id"], 1, splits_done=1)
    step_1_files = work_files(cluster, job)
    assert len(step_1_files) == 2 and all(p.parent.name == "step-0" for p in step_1_files)
    cluster.signal("reducer-1", signal.SIGKILL)
    await cluster.restart("reducer-1")
    assert await records(client, job["id"]) == oracle("slow_most_used", {"pause_ms": "15"})
    status = await client.status(job["id"])
    # Partition 1 lost its step-2 state: exactly step 2's splits were re-mapped for it, from step 1's files.
    assert status["recoveries"] and {(r["partition"], r["step"]) for r in status["recoveries"]} == {(1, 1)}
    assert work_files(cluster) == []
    await still_exact(client)


async def test_step_2_mapper_killed_mid_split_is_retried(stepped: tuple[LocalCluster, Client]) -> None:
    cluster, client = stepped
    job = await submit(client, "slow_most_used", pause_ms="40")
    status = await in_step(client, job["id"], 1)
    async with asyncio.timeout(30):
        while True:
            running = [(split["split"], attempt) for split in status["splits"] for attempt in split["attempts"]
                       if attempt["state"] == "running"]
            if running:
                break
            await asyncio.sleep(0.02)  # as in in_step
            status = await in_step(client, job["id"], 1)
    split, attempt = running[0]
    cluster.signal(attempt["mapper"], signal.SIGKILL)
    await cluster.restart(attempt["mapper"])
    assert await records(client, job["id"]) == oracle("slow_most_used", {"pause_ms": "40"})
    status = await client.status(job["id"], splits=True)
    attempts = status["splits"][split]["attempts"]  # the last step's splits
    struck = next(a for a in attempts if a["attempt"] == attempt["attempt"])
    assert struck["state"] == "failed" and [a["state"] for a in attempts].count("done") == 1, attempts
    assert status["attempts"]["retries"] >= 1
    assert work_files(cluster) == []
    await still_exact(client)


async def test_intermediate_files_are_removed_after_a_failure_and_a_cancel(
        stepped: tuple[LocalCluster, Client]) -> None:
    cluster, client = stepped
    failing = await submit(client, "slow_most_used", fail="1")
    async with client.session.get(f"/v1/jobs/{failing['id']}/result", params={"wait": "90"}) as response:
        body = await response.json()
    status = await client.status(failing["id"])
    assert status["state"] == "failed" and "on purpose" in status["error"], (body, status)
    assert status["step"] == 1
    assert work_files(cluster) == []

    job = await submit(client, "slow_most_used", pause_ms="50")
    await in_step(client, job["id"], 1)
    assert len(work_files(cluster, job)) == 2  # step 1's files, read by step 2 now
    async with client.session.delete(f"/v1/jobs/{job['id']}") as response:
        assert response.status == 200 and (await response.json())["state"] == "cancelled"
    assert work_files(cluster) == []
    await still_exact(client)


async def test_a_killed_master_restarts_and_removes_the_files_its_journal_says_are_stale(
        stepped: tuple[LocalCluster, Client]) -> None:
    cluster, client = stepped
    job = await submit(client, "slow_most_used", pause_ms="50")
    await in_step(client, job["id"], 1)
    assert len(work_files(cluster, job)) == 2
    cluster.signal("master-0", signal.SIGKILL)
    await cluster.restart("master-0")
    status = await client.status(job["id"])
    assert status["state"] == "failed"  # the journal says it was running: lost in the restart, and said so
    assert work_files(cluster) == []
