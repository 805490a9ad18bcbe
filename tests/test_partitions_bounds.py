"""With N partitions on R reducers (N up to MR_MAX_PARTITIONS): a mapper keeps at most R streams open, the master
at most R finalizes in flight, and a lost reducer's partitions (and only they) are re-mapped, each exactly once."""

from __future__ import annotations

import random
from pathlib import Path

import aiohttp
import pytest

from actors.core.config import Settings
from actors.core.messages import Assignment
from actors.inputs.ref import PATH
from actors.jobs import get_job
from actors.mapper.app import MapRun
from actors.mapper.spool import Spool
from actors.net.client import PeerClient

from .fakes import FakeDiscovery, FakeTransport, Faults
from .support import make_text
from .test_coordinator_unit import TIMEOUTS, assert_committed_once, make_job, make_settings

CAP = Settings.max_partitions


async def test_a_mapper_keeps_at_most_r_streams_open_at_the_cap(tmp_path: Path) -> None:
    text = make_text(random.Random(3), 20_000, [f"w{i}" for i in range(5000)], range(9)).decode()
    (tmp_path / "book.txt").write_text(text, encoding="utf-8")
    transport = FakeTransport.with_reducers({}, 2)
    transport.faults = Faults(delay=0.001)  # every send yields a while, as a network call does
    settings = Settings(role="mapper", data_root=str(tmp_path), timeouts=TIMEOUTS, chunk_size=4096)
    assignment = Assignment(job="j", epoch=3, split=0, attempt=1, job_name="wordcount", input_kind=PATH,
                            input_location="book.txt", input_name="book.txt", start=0, end=len(text.encode()),
                            partitions=CAP, only_partitions=[], reducers=2)
    async with aiohttp.ClientSession() as session:
        run = MapRun(assignment, get_job("wordcount"), settings, PeerClient(session, settings), transport,
                     FakeDiscovery(1, 2))
        async for _ in run.run():
            pass
    assert 1 <= run.streams_peak <= 2
    sent = sorted(header.partition for _, header in transport.sent)
    assert sent == list(range(CAP))  # every partition once, empty ones too (their reducer commits the split)
    assert all(ordinal == header.partition % 2 for ordinal, header in transport.sent)


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
async def test_the_master_finalizes_at_most_one_partition_per_reducer_at_once() -> None:
    transport = FakeTransport.with_reducers({}, 2)
    transport.faults = Faults(delay=0.002)
    cap = 64  # MR_MAX_PARTITIONS lowered: 1024 finalizes through the fake take 20 s for the same check
    job = make_job(transport, FakeDiscovery(2, 2), settings=make_settings(max_partitions=cap))
    job.record.partitions = cap
    record = await job.run(timeout=60)
    assert (record.state, record.error) == ("done", "")
    assert job.result == job.oracle
    assert sorted(p for _, p in transport.finalized) == list(range(cap))
    assert 1 <= transport.finalizing_peak <= 2
    assert_committed_once(transport)


async def test_a_lost_reducer_holding_3_of_8_partitions_has_just_those_remapped() -> None:
    transport = FakeTransport.with_reducers({}, 3)
    lost: list[int] = []

    def before_finalize(partition: int) -> None:
        if partition % 3 == 1 and not lost:
            transport.reducers[1].restart()  # reducer 1 holds partitions 1, 4 and 7 of 8
            lost.append(partition)

    transport.before_finalize = before_finalize
    job = make_job(transport, FakeDiscovery(2, 3), settings=make_settings(reducer_count=3))
    job.record.partitions = 8
    record = await job.run()
    assert record.state == "done" and job.result == job.oracle
    splits = len(record.splits)
    assert sorted(r["partition"] for r in record.recoveries) == [1, 4, 7]
    assert all(r["splits"] == splits for r in record.recoveries)
    redone = [a for _, a in transport.assignments if a.only_partitions]
    assert sorted(p for a in redone for p in a.only_partitions) == sorted([1, 4, 7] * splits)
    per_partition = {p: sum(n for key, n in transport.commits.items() if key[2] == p) for p in range(8)}
    assert per_partition == {p: (2 if p in (1, 4, 7) else 1) * splits for p in range(8)}
    assert_committed_once(transport)


def test_a_spool_of_many_partitions_holds_no_more_in_memory_than_eight() -> None:
    few = Spool(get_job("wordcount"), 2, key_budget=10, frame_cap=1 << 20, memory_limit=8 << 20)
    many = Spool(get_job("wordcount"), CAP, key_budget=10, frame_cap=1 << 20, memory_limit=8 << 20)
    try:
        assert few.memory_limit == 8 << 20
        assert many.memory_limit == 64 * 1024 and CAP * many.memory_limit <= 8 * (8 << 20)
    finally:
        few.close()
        many.close()
