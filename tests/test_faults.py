"""The fault suite: real actor processes on loopback, real signals; every result must equal the sequential oracle.

Modelled on the MIT 6.5840 MapReduce lab tests (parallelism, job count, early exit, crash) and dask's p2p-shuffle
tests (restarted workers, duplicated and stale streams). Each test ends with the cluster running a new job exactly
and with every process gone after shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from actors.local import LocalCluster
from actors.sequential import run_sequential

from .conftest import HeldInputFactory
from .heldinput import HeldInput, HeldRead
from .support import DRILL_ENV, alive, make_text_file


async def wait_for_progress(client: Client, job_id: str, splits: int) -> None:
    """Poll the job's status until ``splits`` are done: the moment to inject a fault mid-job."""
    async with asyncio.timeout(30):
        while True:
            status = await client.status(job_id)
            assert status["state"] == "running", status
            if status["progress"]["splits_done"] >= splits:
                return
            await asyncio.sleep(0.01)  # observing another process's progress: nothing to wait on but its status


@contextlib.asynccontextmanager
async def fault_cluster(tmp_path: Path, env: dict[str, str] = DRILL_ENV) -> AsyncIterator[LocalCluster]:
    """3 mappers and 2 reducers with the drill settings; after it, no actor process may be left alive. Nothing
    restarts an actor on its own (the drills restart by hand, when their fault calls for it: tests/test_heal.py
    covers the supervisor)."""
    async with LocalCluster(mappers=3, reducers=2, discovery="static", data_root=str(tmp_path), extra_env=env,
                            log_dir=str(tmp_path / "logs"), restarts=None) as running:
        pids: set[int] = set()
        try:
            yield running
        finally:
            pids.update(a.pid for a in running.actors if a.process is not None)
            await running.stop()
    assert not [pid for pid in pids if alive(pid)], "actor processes outlived the cluster"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    async with fault_cluster(tmp_path) as running:
        yield running


# One cluster for the tests that inject no fault (they run in the module's event loop: see ``SHARED``); its
# leak check (no actor process outlives it) runs once, at the end of the module.
SHARED = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCluster]:
    # DEBUG: its tests read the per-split and per-stream events (split_started, stream_committed...) from the logs.
    env = {**DRILL_ENV, "MR_LOG_LEVEL": "DEBUG"}
    async with fault_cluster(tmp_path_factory.mktemp("shared"), env) as running:
        yield running


class Client:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def submit(self, spec: dict[str, Any], key: str = "") -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        async with self.session.post("/v1/jobs", json=spec, headers=headers) as response:
            body = await response.json()
            assert response.status in (200, 202), body
            return dict(body)

    async def status(self, job_id: str, splits: bool = False) -> dict[str, Any]:
        """The job's status; with ``splits``, its ``splits`` is the list of every split (at most 1000)."""
        params = {"splits": "all", "limit": "1000"} if splits else {}
        async with self.session.get(f"/v1/jobs/{job_id}", params=params) as response:
            assert response.status == 200
            status = dict(await response.json())
        if splits:
            status["splits"] = status["splits"]["items"]
        return status

    async def result(self, job_id: str, wait: float = 90.0) -> dict[str, Any]:
        async with self.session.get(f"/v1/jobs/{job_id}/result", params={"wait": str(wait)}) as response:
            body = await response.json()
            assert response.status == 200, body
            return dict(body["result"])


@contextlib.asynccontextmanager
async def client_of(cluster: LocalCluster) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession(base_url=cluster.master_url, headers=cluster.api_headers,
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield Client(session)


@pytest.fixture
async def client(cluster: LocalCluster) -> AsyncIterator[Client]:
    async with client_of(cluster) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_client(shared_cluster: LocalCluster) -> AsyncIterator[Client]:
    async with client_of(shared_cluster) as running:
        yield running


async def still_exact(client: Client) -> None:
    """After any fault the cluster must run a new job exactly."""
    text = "after the fault the cluster still counts the cluster"
    job = await client.submit({"input": {"text": text}})
    assert await client.result(job["id"]) == run_sequential("wordcount", text.encode())


def events(cluster: LocalCluster, name: str, event: str, job: str | None = None) -> list[dict[str, Any]]:
    """``name``'s log lines of ``event`` (only ``job``'s, when given: a shared cluster runs other tests' jobs)."""
    lines = (cluster.log_dir / f"{name}.log").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("event") == event and job in (None, e.get("job"))]


@SHARED
async def test_failure_free_runs_are_exact_parallel_and_map_each_split_once(
    shared_cluster: LocalCluster, shared_client: Client
) -> None:
    cluster, client = shared_cluster, shared_client
    data = make_text_file(Path(cluster.data_root) / "free.txt", 4, seed=1)
    job = await client.submit({"input": {"path": "free.txt"}})
    assert await client.result(job["id"]) == run_sequential("wordcount", data)
    status = await client.status(job["id"])
    total = status["progress"]["splits_total"]
    assert total >= 20
    # Job count: no spurious retries, no backups, every split mapped exactly once.
    assert status["attempts"]["started"] == total
    assert status["attempts"]["retries"] == 0
    assert sum(len(events(cluster, f"mapper-{i}", "split_done", job["id"])) for i in range(3)) == total

    # Map parallelism: two mappers were inside a split at the same moment.
    windows = []
    for i in range(3):
        starts = events(cluster, f"mapper-{i}", "split_started", job["id"])
        dones = events(cluster, f"mapper-{i}", "split_done", job["id"])
        windows += [(i, s["ts"], d["ts"]) for s, d in zip(starts, dones, strict=True)]
    assert any(a[0] != b[0] and a[1] < b[2] and b[1] < a[2] for a in windows for b in windows), windows
    # Reduce parallelism: both reducers committed streams of this job.
    for i in range(2):
        assert len([e for e in events(cluster, f"reducer-{i}", "stream_committed") if e["job"] == job["id"]]) == total

    # Inverted index, a job whose reduce is a union, on the same cluster.
    index = await client.submit({"job": "inverted_index", "input": {"path": "free.txt"}})
    assert await client.result(index["id"]) == run_sequential("inverted_index", data, "free.txt")


@SHARED
async def test_early_exit_done_means_every_partition_is_in(shared_cluster: LocalCluster,
                                                          shared_client: Client) -> None:
    client = shared_client
    data = make_text_file(Path(shared_cluster.data_root) / "early.txt", 2, seed=2)
    job = await client.submit({"input": {"path": "early.txt"}})
    async with client.session.get(f"/v1/jobs/{job['id']}/result", params={"wait": "60"}) as response:
        first = (await response.json())["result"]  # read at the very moment the job turns done
    assert first == run_sequential("wordcount", data)
    assert await client.result(job["id"]) == first


# The input comes from a HeldInput server, so the test knows which mapper is mid-split when it strikes. A held
# reader sends no progress: the lease outlasts any hold, and a kill shows at once as the assignment stream breaking.
HELD_ENV = {**DRILL_ENV, "MR_ALLOW_PRIVATE_URLS": "true", "MR_TIMEOUT_LEASE": "30", "MR_TIMEOUT_STREAM_IDLE": "30"}


async def submit_held(client: Client, source: HeldInput) -> tuple[str, list[dict[str, Any]]]:
    """Submit a job reading ``source``; answer its id and its plan, read while its first reads are held."""
    source.hold_all = True
    job = await client.submit({"input": {"url": source.url}})
    await source.held(1)
    splits = (await client.status(job["id"], splits=True))["splits"]
    assert len(splits) >= 20, len(splits)
    return str(job["id"]), splits


def hold_reads_of(source: HeldInput, splits: list[dict[str, Any]]) -> None:
    for split in splits:
        start = split["start"]
        source.hold_next_read(max(start - 1, 0), start)  # a reader starts one byte early (read_from)


async def reader_of(client: Client, source: HeldInput, job_id: str, split: dict[str, Any]) -> tuple[HeldRead, str, int]:
    """Wait for the held read of ``split``; answer it, the mapper reading it and that mapper's attempt number."""
    read = await source.read_at(max(split["start"] - 1, 0), split["start"])
    status = await client.status(job_id, splits=True)
    assert status["state"] == "running", status  # the split is held mid-read: the job cannot have finished
    running = [a for a in status["splits"][split["split"]]["attempts"] if a["state"] == "running"]
    assert len(running) == 1, status["splits"][split["split"]]
    return read, str(running[0]["mapper"]), int(running[0]["attempt"])


def struck_attempt(status: dict[str, Any], split: int, attempt: int, mapper: str) -> dict[str, Any]:
    """The struck attempt, which must have failed, on ``mapper``; the split must have been done exactly once."""
    attempts = status["splits"][split]["attempts"]
    struck = next(a for a in attempts if a["attempt"] == attempt)
    assert struck["state"] == "failed" and struck["mapper"] == mapper, attempts
    assert [a["state"] for a in attempts].count("done") == 1, attempts
    return dict(struck)


@pytest.mark.parametrize("seed", range(4))
async def test_killed_mappers_are_replaced_and_the_result_is_exact(
    tmp_path: Path, held_input: HeldInputFactory, seed: int
) -> None:
    rng = random.Random(seed)
    data = make_text_file(tmp_path / "book.txt", 4, seed=seed)
    source = await held_input(data)
    async with fault_cluster(tmp_path, HELD_ENV) as cluster, client_of(cluster) as client:
        job_id, splits = await submit_held(client, source)
        targets = [splits[i] for i in sorted(rng.sample(range(3, len(splits) - 3), 3))]
        hold_reads_of(source, targets)
        source.release_all()
        killed: list[tuple[int, int, str]] = []
        for split in targets:
            read, victim, attempt = await reader_of(client, source, job_id, split)
            cluster.signal(victim, signal.SIGKILL)
            source.release(read)  # its reader is dead: nothing reaches it
            killed.append((split["split"], attempt, victim))
            await cluster.restart(victim)
        assert await client.result(job_id) == run_sequential("wordcount", data)
        status = await client.status(job_id, splits=True)
        assert status["state"] == "done"
        for index, attempt, victim in killed:
            struck_attempt(status, index, attempt, victim)
        assert status["attempts"]["retries"] >= len(killed)
        await still_exact(client)


async def test_killed_reducer_comes_back_and_its_partition_is_redone(
    cluster: LocalCluster, client: Client, tmp_path: Path
) -> None:
    data = make_text_file(tmp_path / "book.txt", 8, seed=9)
    job = await client.submit({"input": {"path": "book.txt"}})
    await wait_for_progress(client, job["id"], 10)
    cluster.signal("reducer-1", signal.SIGKILL)
    await cluster.restart("reducer-1")
    assert await client.result(job["id"]) == run_sequential("wordcount", data)
    status = await client.status(job["id"])
    # Only partition 1 was re-mapped, and only for the splits the new reducer lacked.
    assert {r["partition"] for r in status["recoveries"]} == {1}
    assert 10 <= status["recoveries"][0]["splits"] < status["progress"]["splits_total"]
    await still_exact(client)


async def test_stalled_mapper_is_overtaken_and_its_late_output_ignored(
    tmp_path: Path, held_input: HeldInputFactory
) -> None:
    data = make_text_file(tmp_path / "book.txt", 4, seed=4)
    source = await held_input(data)
    # The drill's 2 s lease this time: the stall is what the lease is for.
    async with fault_cluster(tmp_path, {**DRILL_ENV, "MR_ALLOW_PRIVATE_URLS": "true"}) as cluster, \
            client_of(cluster) as client:
        job_id, splits = await submit_held(client, source)
        hold_reads_of(source, [splits[5]])
        source.release_all()
        read, victim, attempt = await reader_of(client, source, job_id, splits[5])
        cluster.signal(victim, signal.SIGSTOP)
        source.release(read)
        try:
            result = await client.result(job_id)  # the lease (2 s) expires; the split moves to another mapper
        finally:
            cluster.signal(victim, signal.SIGCONT)
        assert result == run_sequential("wordcount", data)
        struck = struck_attempt(await client.status(job_id, splits=True), 5, attempt, victim)
        assert "stalled" in struck["cause"] and victim in struck["cause"], struck
        # The resumed mapper's late streams and report change nothing.
        await still_exact(client)
        assert await client.result(job_id) == result


async def test_master_killed_mid_job_resubmission_with_the_same_key_works(
    cluster: LocalCluster, client: Client, tmp_path: Path
) -> None:
    data = make_text_file(tmp_path / "book.txt", 8, seed=6)
    spec = {"input": {"path": "book.txt"}}
    job = await client.submit(spec, key="nightly")
    await wait_for_progress(client, job["id"], 3)
    cluster.signal("master-0", signal.SIGKILL)
    await cluster.restart("master-0")
    status = await client.status(job["id"])
    assert status["state"] == "failed"
    assert "master restarted" in status["error"]
    again = await client.submit(spec, key="nightly")
    assert again["id"] == job["id"]
    assert again["epoch"] > job["epoch"]
    assert await client.result(again["id"]) == run_sequential("wordcount", data)
    await still_exact(client)
    # No actor is stuck: every mapper and reducer answers its probe.
    async with aiohttp.ClientSession() as session:
        for actor in cluster.actors:
            async with session.get(actor.url + "/readyz") as response:
                assert response.status == 200, actor.name


async def test_sigterm_drains_every_actor_with_exit_0(tmp_path: Path) -> None:
    make_text_file(tmp_path / "book.txt", 1, seed=3)
    async with LocalCluster(mappers=2, reducers=2, discovery="static", data_root=str(tmp_path),
                            extra_env=DRILL_ENV, log_dir=str(tmp_path / "logs")) as cluster:
        async with aiohttp.ClientSession(base_url=cluster.master_url) as session, session.post(
            "/v1/jobs", json={"input": {"path": "book.txt"}}
        ) as response:
            assert response.status == 202
        pids = [a.pid for a in cluster.actors]
        codes = await cluster.stop()
    assert codes == dict.fromkeys(codes, 0), codes
    assert not [pid for pid in pids if alive(pid)]
    for actor in cluster.actors:  # each one drained on SIGTERM, rather than dying some other way with 0
        logged = [json.loads(line).get("event") for line in actor.log_path.read_text().splitlines()]
        steps = [e for e in logged if e in ("actor_draining", "actor_stopped")]
        assert steps == ["actor_draining", "actor_stopped"], (actor.name, steps)


async def test_sigterm_on_a_busy_mapper_drains_and_the_job_stays_exact(
    cluster: LocalCluster, client: Client, tmp_path: Path
) -> None:
    data = make_text_file(tmp_path / "book.txt", 8, seed=12)
    job = await client.submit({"input": {"path": "book.txt"}})
    await wait_for_progress(client, job["id"], 5)
    mapper = cluster.actor("mapper-1")
    cluster.signal("mapper-1", signal.SIGTERM)
    assert mapper.process is not None
    async with asyncio.timeout(20):
        assert await mapper.process.wait() == 0  # finished or handed back its split, then exited cleanly
    assert await client.result(job["id"]) == run_sequential("wordcount", data)
    await cluster.restart("mapper-1")
    await still_exact(client)


async def test_reducer_killed_and_restarted_under_mdns_on_a_new_port(tmp_path: Path) -> None:
    data = make_text_file(tmp_path / "book.txt", 8, seed=13)
    async with LocalCluster(mappers=2, reducers=2, discovery="mdns", data_root=str(tmp_path), extra_env=DRILL_ENV,
                            restarts=None) as cluster, aiohttp.ClientSession(
        base_url=cluster.master_url, timeout=aiohttp.ClientTimeout(total=120)
    ) as session:
        client = Client(session)
        job = await client.submit({"input": {"path": "book.txt"}})
        await wait_for_progress(client, job["id"], 10)
        old_url = cluster.actor("reducer-0").url
        cluster.signal("reducer-0", signal.SIGKILL)
        await cluster.restart("reducer-0")
        assert cluster.actor("reducer-0").url != old_url  # a new address, found again through mDNS
        assert await client.result(job["id"]) == run_sequential("wordcount", data)
        status = await client.status(job["id"])
        assert {r["partition"] for r in status["recoveries"]} == {0}
        await still_exact(client)
