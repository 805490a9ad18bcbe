"""A reducer that is down, restarting or not visible yet: the mapper waits for it (bounded by MR_TIMEOUT_RECOVERY)
and keeps heartbeating; unit tests on a fake transport, then a real reducer process killed and restarted mid-job."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from actors.core.config import Settings, Timeouts
from actors.core.errors import PeerError, Unavailable
from actors.core.messages import Assignment, Progress
from actors.inputs.ref import PATH
from actors.jobs import get_job
from actors.local import LocalCluster
from actors.mapper.app import MapRun
from actors.net.client import PeerClient
from actors.sequential import run_sequential

from .fakes import FakeDiscovery, FakeTransport, Faults
from .support import DRILL_ENV, make_text, make_text_file

TIMEOUTS = Timeouts(connect=0.5, request=1.0, lease=0.3, stream_idle=0.5, stage_wait=0.2, finalize=1.0,
                    discovery=0.2, peers=0.5, drain=0.5, startup=1.0, recovery=3.0)
TEXT = make_text(random.Random(30), 1600, ("a", "b", "日本語", "the", "The"), range(9)).decode()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:  # only for reading inputs; peers go through the fake
        yield session


def make_run(tmp_path: Path, session: aiohttp.ClientSession, transport: FakeTransport, discovery: FakeDiscovery,
             timeouts: Timeouts = TIMEOUTS) -> MapRun:
    (tmp_path / "book.txt").write_text(TEXT, encoding="utf-8")
    settings = Settings(role="mapper", data_root=str(tmp_path), timeouts=timeouts, chunk_size=1024)
    size = len(TEXT.encode())
    assignment = Assignment(job="j", epoch=3, split=0, attempt=1, job_name="wordcount", input_kind=PATH,
                            input_location="book.txt", input_name="book.txt", start=0, end=size, partitions=2,
                            only_partitions=[])
    return MapRun(assignment, get_job("wordcount"), settings, PeerClient(session, settings), transport, discovery)


async def drive(run: MapRun, on_progress: Callable[[int], Awaitable[None]] | None = None) -> list[Progress]:
    """Run the attempt to its end like the assign handler does, collecting its heartbeats."""
    beats: list[Progress] = []
    async with asyncio.timeout(15):
        async for progress in run.run():
            assert isinstance(progress, Progress)  # a shuffling attempt sends no records to the master
            beats.append(progress)
            if on_progress is not None:
                await on_progress(len(beats))
    return beats


def totals(transport: FakeTransport) -> dict[str, int]:
    merged: dict[str, int] = {}
    for reducer in transport.reducers.values():
        state = reducer.ledger.find("j", 3, reducer.ordinal)
        assert state is not None and state.committed == {0}
        state.settle()  # the finalize's step: count table and pending frames into the totals
        merged.update(state.totals)
    return merged


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
async def test_a_down_reducer_is_waited_for_while_the_mapper_keeps_heartbeating(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    transport = FakeTransport.with_reducers({}, 2)
    transport.reducers[1].down()
    run = make_run(tmp_path, session, transport, FakeDiscovery(1, 2), replace(TIMEOUTS, recovery=20.0))
    refused_at_resume: list[int] = []

    async def resume_after_refusals(_: int) -> None:
        refused = sum(1 for ordinal, _ in transport.sent if ordinal == 1)
        if refused >= Settings().send_attempts and not transport.reducers[1].up:
            refused_at_resume.append(refused)  # as many refusals as a reducer answering errors gets in all
            transport.reducers[1].resume()

    beats = await drive(run, resume_after_refusals)
    assert refused_at_resume
    assert [run.acks[p].incarnation for p in (0, 1)] == [r.incarnation for r in transport.reducers.values()]
    assert totals(transport) == run_sequential("wordcount", TEXT.encode())
    # Heartbeats went on while it waited: the master's lease (0.3 s) never ran out.
    sending = [b for b in beats if b.bytes_read == len(TEXT.encode())]
    assert len(sending) >= 2


async def test_a_reducer_not_visible_yet_is_waited_for(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    discovery = FakeDiscovery(1, 2, hidden=["reducer-1"])
    transport = FakeTransport.with_reducers({}, 2)
    run = make_run(tmp_path, session, transport, discovery)
    task = asyncio.create_task(drive(run))
    async with asyncio.timeout(5):
        await discovery.waiting.wait()
    assert {ordinal for ordinal, _ in transport.sent} == {0}
    await discovery.show("reducer-1")
    await task
    assert totals(transport) == run_sequential("wordcount", TEXT.encode())


async def test_a_reducer_that_stays_down_fails_the_attempt_after_the_recovery_timeout(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    transport = FakeTransport.with_reducers({}, 2)
    transport.reducers[1].down()
    run = make_run(tmp_path, session, transport, FakeDiscovery(1, 2), replace(TIMEOUTS, recovery=0.5))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Unavailable) as caught:
        await drive(run)
    assert 0.3 <= loop.time() - started < 3.0
    assert "reducer 1 did not take split 0 within 0.5 s (MR_TIMEOUT_RECOVERY)" in caught.value.message
    assert "connection refused" in caught.value.message


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
async def test_a_reducer_answering_errors_gets_a_bounded_number_of_tries(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    transport = FakeTransport.with_reducers({}, 2, faults=Faults(drop_stream=1.0))
    run = make_run(tmp_path, session, transport, FakeDiscovery(1, 2))
    with pytest.raises(PeerError, match="cut"):
        await drive(run)
    assert max(sum(1 for o, _ in transport.sent if o == p) for p in (0, 1)) == Settings().send_attempts


# --- a real reducer process, killed and restarted mid-job --------------------------------------------------------

VOCABULARY = (*(f"w{i}" for i in range(2000)), "γάμμα", "日本語", "naïve", "The", "the")


async def test_a_reducer_killed_and_back_seconds_later_does_not_fail_the_job(tmp_path: Path) -> None:
    # Two attempts per split: before mappers waited for a down reducer, each attempt gave up after a few quick
    # tries and the job failed long before the reducer was back.
    env = {**DRILL_ENV, "MR_MAX_ATTEMPTS": "2", "MR_REDUCER_COUNT": "2", "MR_TIMEOUT_RECOVERY": "30",
           "MR_BACKUP_TASKS": "false"}
    data = make_text_file(tmp_path / "book.txt", 8, seed=21, vocabulary=VOCABULARY, line_words=(12,))
    async with LocalCluster(mappers=2, reducers=2, discovery="static", data_root=str(tmp_path), extra_env=env,
                            log_dir=str(tmp_path / "logs"), restarts=None) as cluster, \
            aiohttp.ClientSession(base_url=cluster.master_url, timeout=aiohttp.ClientTimeout(total=120)) as http:
        async with http.post("/v1/jobs", json={"input": {"path": "book.txt"}}) as response:
            job = await response.json()
            assert response.status == 202, job
        async with asyncio.timeout(60):
            while True:  # another process's progress: nothing to wait on but its status
                async with http.get(f"/v1/jobs/{job['id']}") as response:
                    status = await response.json()
                assert status["state"] == "running", status
                if status["progress"]["splits_done"] >= 4:
                    break
                await asyncio.sleep(0.02)
        cluster.signal("reducer-1", signal.SIGKILL)
        await asyncio.sleep(4.0)  # the outage itself: the reducer stays down this long
        await cluster.restart("reducer-1")
        async with http.get(f"/v1/jobs/{job['id']}/result", params={"wait": "90"}) as response:
            body = await response.json()
        assert response.status == 200, (body, cluster.logs())
        assert body["result"] == run_sequential("wordcount", data)
        async with http.get(f"/v1/jobs/{job['id']}") as response:
            status = await response.json()
        # The restarted reducer lost its partition: only partition 1 was re-mapped, for the splits it lacked.
        assert {r["partition"] for r in status["recoveries"]} == {1}
        assert status["attempts"]["last_failure"] is None  # the outage failed no attempt: the mappers waited
