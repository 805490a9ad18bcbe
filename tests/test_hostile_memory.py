"""Memory you can trust: big streams never stall a reducer, its budget bounds decoded bytes, huge words count."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest

from actors.core import wire
from actors.core.config import Settings
from actors.core.messages import Commit, Data, StreamHeader, to_wire
from actors.jobs import get_job
from actors.mapper.spool import Spool
from actors.reducer.app import LEDGER

from .conftest import TOKEN, Cluster, ClusterFactory

AUTH = {"Authorization": f"Bearer {TOKEN}"}
MiB = 1024 * 1024
# The machine is shared and its cores busy, so stalls are judged against a yardstick measured in the same run:
# decoding one 1 M-key frame at once, as a reducer did before frames were cut to MR_FRAME_KEYS keys (0.65 s on an
# idle core, 2.1 s on busy ones; the stream's worst stall was as long). Now the worst is a few 16 Ki-key frames.
STALL_SHARE = 0.5


def stream_header(job: str, size: int) -> bytes:
    return wire.frame(to_wire(StreamHeader(job=job, epoch=1, split=0, attempt=1, partition=0, partitions=1,
                                           job_name="wordcount", size=size)), 64 * 1024)


async def in_blocks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 256 * 1024):
        yield body[start : start + 256 * 1024]


async def post_stream(cluster: Cluster, body: bytes) -> tuple[int, Any]:
    url = cluster.reducers[0].url + "/internal/v1/shuffle"
    async with cluster.session.post(url, data=in_blocks(body), headers=AUTH) as response:
        raw = await response.read()
        if response.content_type == "application/cbor":
            return response.status, cbor2.loads(raw)
        return response.status, await response.json(content_type=None)


async def worst_stall(cluster: Cluster, work: Callable[[], Awaitable[Any]]) -> tuple[Any, float, float]:
    """Run ``work`` while a heartbeat measures the event loop's lag and a client polls /healthz; the reducer runs
    on this same loop, so any stall of its handlers shows as lag."""
    stop = asyncio.Event()
    lags: list[float] = [0.0]
    probes: list[float] = [0.0]

    async def heartbeat() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.005)  # a measurement tick, not a wait for a condition
            lags.append(time.perf_counter() - before - 0.005)

    async def probe() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            async with cluster.session.get(cluster.reducers[0].url + "/healthz") as response:
                assert response.status == 200
            probes.append(time.perf_counter() - before)

    async with asyncio.TaskGroup() as group:
        group.create_task(heartbeat())
        group.create_task(probe())
        try:
            result = await work()
        finally:
            stop.set()
    return result, max(lags), max(probes)


def distinct_words(count: int) -> dict[str, int]:
    return {f"w{i:07d}": i % 7 + 1 for i in range(count)}


def yardstick(items: dict[str, int]) -> float:
    """Seconds to decode ``items`` as one frame, on this machine now."""
    body = wire.encode(to_wire(Data(items)))
    before = time.perf_counter()
    wire.decode(body, len(body))
    return time.perf_counter() - before


def mapper_streams(job: str, splits: int, items: dict[str, int]) -> list[bytes]:
    """Shuffle streams of ``items`` for splits 0, 1, ..., framed as a mapper frames them (the settings' frame
    cap and frame key count)."""
    spool = Spool(get_job("wordcount"), 1, 2_000_000, Settings().frame_cap)
    try:
        spool.map(" ".join(word for word, n in items.items() for _ in range(n)), "in.txt")
        spool.flush()
        frames = b"".join(spool.blocks(0)) + wire.frame(to_wire(spool.commit(0)), 1024)
        size = spool.sizes[0]
    finally:
        spool.close()
    return [wire.frame(to_wire(StreamHeader(job=job, epoch=1, split=split, attempt=1, partition=0, partitions=1,
                                            job_name="wordcount", size=size)), 1024) + frames
            for split in range(splits)]


@pytest.mark.slow
async def test_million_key_streams_never_stall_the_reducer(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    expected = distinct_words(1_000_000)
    streams = mapper_streams("big", 2, expected)

    async def both() -> list[tuple[int, Any]]:
        # The second stream's values merge into totals of 1 M keys already: that merge must not stall either.
        return [await post_stream(cluster, stream) for stream in streams]

    before = yardstick(expected)
    answers, lag, probe = await worst_stall(cluster, both)
    bound = STALL_SHARE * (before + yardstick(expected)) / 2
    for status, ack in answers:
        assert status == 200, ack
        assert ack["status"] == "committed"
    assert lag < bound, f"the reducer's event loop stalled {lag:.2f} s (a 1 M-key decode takes {bound * 2:.2f} s)"
    assert probe < bound, f"/healthz took {probe:.2f} s (a 1 M-key decode takes {bound * 2:.2f} s)"
    partition = cluster.reducers[0].app[LEDGER].jobs["big"][0]
    assert not partition.merged.pending  # each stream merged before its answer
    partition.settle()  # a word count's COLUMNS frames merged into the count table: fold it into the totals
    assert partition.totals == {word: 2 * n for word, n in expected.items()}


@pytest.mark.slow
async def test_a_million_key_frame_is_refused_before_it_is_decoded(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, frame_cap=16 * MiB)  # the key count, not the cap, refuses it
    items = distinct_words(1_000_000)
    frame = wire.frame(to_wire(Data(items)), 16 * MiB)
    body = (stream_header("hostile", len(frame)) + frame
            + wire.frame(to_wire(Commit(frames=1, keys=len(items), checksum=sum(items.values()))), 1024))
    bound = STALL_SHARE * yardstick(items)
    (status, answer), lag, probe = await worst_stall(cluster, lambda: post_stream(cluster, body))
    assert status == 413
    assert "MR_FRAME_KEYS" in answer["message"]
    assert lag < bound and probe < bound, (lag, probe, bound)
    assert "hostile" not in cluster.reducers[0].app[LEDGER].jobs or not cluster.reducers[0].app[LEDGER].jobs[
        "hostile"][0].totals


def one_frame_stream(job: str, items: dict[str, Any], job_name: str = "wordcount", checksum: int = 0) -> bytes:
    frame = wire.frame(to_wire(Data(items)), 1 << 30)
    header = wire.frame(to_wire(StreamHeader(job=job, epoch=1, split=0, attempt=1, partition=0, partitions=1,
                                             job_name=job_name, size=len(frame))), 64 * 1024)
    return header + frame + wire.frame(to_wire(Commit(frames=1, keys=len(items), checksum=checksum)), 1024)


def decode_seconds(items: dict[str, Any]) -> float:
    """Seconds to decode ``items`` as one frame, on this machine now: the yardstick for a same-run bound."""
    body = wire.encode(to_wire(Data(items)))
    before = time.perf_counter()
    wire.decode(body, len(body))
    return time.perf_counter() - before


async def test_one_key_with_16_m_values_is_refused_before_it_is_decoded(make_cluster: ClusterFactory) -> None:
    # A token holder's frame that passes MR_FRAME_KEYS (one key) but holds a list of 16 M ints: 16 MB, decoded whole
    # it stalled a reducer's loop 2.3 s. MR_FRAME_CAP now refuses it from its length prefix, so only the frame's
    # first bytes are sent (a client that stops sending at the answer leaves aiohttp lingering on the rest).
    cluster = await make_cluster(mappers=1, reducers=1)
    body = one_frame_stream("stall", {"w": [1] * 16_000_000})
    (status, answer), lag, probe = await worst_stall(cluster, lambda: post_stream(cluster, body[:MiB]))
    assert status == 413 and "MR_FRAME_CAP" in answer["message"], answer
    bound = STALL_SHARE * decode_seconds({"w": [1] * 2_000_000})  # an eighth of the hostile frame, decoded
    assert lag < bound and probe < bound, (lag, probe, bound)


@pytest.mark.slow
async def test_a_frame_dense_with_lists_is_refused_without_a_stall(make_cluster: ClusterFactory) -> None:
    # Under MR_FRAME_CAP in bytes, but each byte an empty list: ten times a scalar's decode cost each.
    cluster = await make_cluster(mappers=1, reducers=1)
    items: dict[str, Any] = {"w": [[]] * (Settings().frame_cap - 64)}
    bound = STALL_SHARE * decode_seconds(items)
    (status, answer), lag, probe = await worst_stall(cluster, lambda: post_stream(cluster, one_frame_stream("dense",
                                                                                                            items)))
    assert status == 413 and "MR_FRAME_KEYS" in answer["message"], answer
    assert lag < bound and probe < bound, (lag, probe, bound)


async def test_a_full_frame_of_non_ascii_keys_with_list_values_is_accepted(make_cluster: ClusterFactory) -> None:
    # Its UTF-8 continuation bytes look like list heads to the quick count, so the reducer walks it: still accepted.
    cluster = await make_cluster(mappers=1, reducers=1)
    items = {f"日本語{i}": ["book.txt"] for i in range(Settings().frame_keys)}
    status, ack = await post_stream(cluster, one_frame_stream("cjk", items, "inverted_index", len(items)))
    assert status == 200 and ack["status"] == "committed", ack
    assert cluster.reducers[0].app[LEDGER].jobs["cjk"][0].totals == items


def short_keys(count: int) -> Iterator[str]:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    for i in range(count):
        yield alphabet[i % 36] + alphabet[i // 36 % 36] + alphabet[i // 1296 % 36] + alphabet[i // 46656 % 36]


async def test_the_budget_bounds_decoded_bytes_not_wire_bytes(make_cluster: ClusterFactory) -> None:
    # 4-character keys: about 6 wire bytes each, about 18 times that once decoded. Their wire size fits the
    # budget easily; what they decode to does not.
    budget = 4 * MiB
    cluster = await make_cluster(mappers=1, reducers=1, stage_budget=budget)
    items = dict.fromkeys(short_keys(100_000), 1)
    keys = list(items)
    frames = [wire.frame(to_wire(Data(dict.fromkeys(keys[i : i + 10_000], 1))), 16 * MiB)
              for i in range(0, len(keys), 10_000)]
    size = sum(map(len, frames))
    assert size * 4 < budget
    body = (stream_header("short", size) + b"".join(frames)
            + wire.frame(to_wire(Commit(frames=len(frames), keys=len(items), checksum=len(items))), 1024))
    status, answer = await post_stream(cluster, body)
    assert status == 413, answer
    assert "MR_STAGE_BUDGET" in answer["message"]
    reducer = cluster.reducers[0].app
    assert "short" not in reducer[LEDGER].jobs or not reducer[LEDGER].jobs["short"][0].totals


async def job_outcome(cluster: Cluster, job_id: str) -> dict[str, Any]:
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job_id}/result", params={"wait": "60"}) as response:
        await response.read()
    return await cluster.status(job_id)


@pytest.mark.slow
async def test_a_40_mib_word_counts_exactly(make_cluster: ClusterFactory, data_root: Path) -> None:
    word = "ω" + "x" * (40 * MiB)
    text = f"a {word} b\nc {word}\n" + "d e f\n" * 1000
    (data_root / "huge.txt").write_text(text)
    # Small frames and chunks keep it quick; the word is far longer than both (MR_MAX_KEY is 64 MiB by default).
    cluster = await make_cluster(mappers=2, reducers=2, frame_cap=1 * MiB, chunk_size=64 * 1024, result_max=128 * MiB,
                                 stage_budget=1024 * MiB, split_size=32 * MiB)
    job = await cluster.submit({"input": {"path": "huge.txt"}})
    result = await cluster.result(job["id"], wait=60)
    assert result == dict(Counter(text.split()))


async def test_a_word_over_max_key_fails_the_job_at_once(make_cluster: ClusterFactory, data_root: Path) -> None:
    (data_root / "long.txt").write_text("a b\n" + "z" * (2 * MiB) + "\nc d\n")
    cluster = await make_cluster(mappers=1, reducers=1, chunk_size=64 * 1024, max_key=1 * MiB,
                                 split_size=64 * MiB)
    job = await cluster.submit({"input": {"path": "long.txt"}})
    status = await job_outcome(cluster, job["id"])
    assert status["state"] == "failed"
    assert "MR_MAX_KEY" in status["error"]
    assert status["attempts"]["started"] == 1  # one attempt, not MR_MAX_ATTEMPTS
    assert status["attempts"]["retries"] == 0
