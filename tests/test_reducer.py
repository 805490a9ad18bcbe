"""The reducer's shuffle protocol against hostile and unlucky streams: merged once, or refused and unchanged."""

from __future__ import annotations

import asyncio
import struct
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import cbor2
import pytest

from actors.core import wire
from actors.core.messages import Commit, Data, Finalize, KeyPart, Release, StreamHeader, to_wire
from actors.net.actor import IDENTITY
from actors.reducer.app import BUDGET, LEDGER

from .conftest import TOKEN, Cluster, ClusterFactory, eventually
from .support import report_totals

CAP = 16 * 1024 * 1024
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def header(split: int = 0, epoch: int = 1, partition: int = 0, size: int = 10_000, job: str = "j1",
           partitions: int = 1) -> bytes:
    return wire.frame(to_wire(StreamHeader(job=job, epoch=epoch, split=split, attempt=1, partition=partition,
                                           partitions=partitions, job_name="wordcount", size=size)), CAP)


def data(items: dict[str, Any]) -> bytes:
    return wire.frame(to_wire(Data(items)), CAP)


def keypart(text: str) -> bytes:
    return wire.frame(to_wire(KeyPart(text)), CAP)


def commit(frames: int, keys: int, checksum: int) -> bytes:
    return wire.frame(to_wire(Commit(frames=frames, keys=keys, checksum=checksum)), CAP)


def good_stream(split: int, items: dict[str, int], epoch: int = 1) -> bytes:
    return header(split, epoch) + data(items) + commit(1, len(items), sum(items.values()))


async def post(cluster: Cluster, body: bytes, path: str = "/internal/v1/shuffle") -> tuple[int, Any]:
    async with cluster.session.post(cluster.reducers[0].url + path, data=body, headers=AUTH) as response:
        raw = await response.read()
        if response.content_type == "application/cbor":
            return response.status, cbor2.loads(raw)
        return response.status, (await response.json())


async def finalize(cluster: Cluster, splits: int, epoch: int = 1) -> tuple[int, Any]:
    message = Finalize(job="j1", epoch=epoch, partition=0, splits=splits, job_name="wordcount")
    return await post(cluster, wire.encode(to_wire(message)), "/internal/v1/finalize")


async def test_a_replayed_stream_counts_once(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    stream = good_stream(0, {"a": 2, "b": 1})
    assert (await post(cluster, stream))[1]["status"] == "committed"
    for _ in range(3):
        status, ack = await post(cluster, stream)
        assert status == 200
        assert ack["status"] == "duplicate"
        assert ack["incarnation"] == cluster.reducers[0].app[IDENTITY].incarnation
    assert (await post(cluster, good_stream(1, {"a": 5})))[1]["status"] == "committed"
    status, report = await finalize(cluster, splits=2)
    assert status == 200
    assert report_totals(report) == {"a": 7, "b": 1}


def tagged_frame() -> bytes:
    body = cbor2.dumps({"v": 1, "type": "data", "items": {"a": cbor2.CBORTag(2, b"\x01\x00")}})
    return struct.pack(">I", len(body)) + body


STREAM_FAULTS = [
    ("cut_mid_frame", header() + data({"a": 1})[:-3], 400, "ended inside a frame"),
    ("cut_before_commit", header() + data({"a": 1}), 400, "ended before its COMMIT"),
    ("bad_commit_counts", header() + data({"a": 1}) + commit(1, 1, 999), 400, "COMMIT does not match"),
    ("bad_commit_frames", header() + data({"a": 1}) + commit(2, 1, 1), 400, "COMMIT does not match"),
    ("oversized_frame", header() + struct.pack(">I", CAP + 1) + b"x" * 10, 413, "exceeds the cap"),
    ("zero_frame", header() + struct.pack(">I", 0), 400, "empty frame"),
    ("garbage_cbor", header() + struct.pack(">I", 3) + b"\xff\xff\xff", 400, "malformed CBOR"),
    ("tagged_value", header() + tagged_frame(), 400, "tags are not accepted"),
    ("bool_count", header() + data({"a": True}) + commit(1, 1, 1), 400, "integers from 1 to 2**63 - 1"),
    ("string_count", header() + data({"a": "1"}) + commit(1, 1, 1), 400, "integers from 1 to 2**63 - 1"),
    ("negative_count", header() + data({"a": -4}) + commit(1, 1, -4), 400, "integers from 1 to 2**63 - 1"),
    ("no_header", data({"a": 1}), 400, "expected a streamheader message"),
    ("empty_body", b"", 400, "empty shuffle stream"),
    ("after_commit", header() + data({"a": 1}) + commit(1, 1, 1) + b"\x00", 400, "bytes after the COMMIT"),
    ("misrouted", header(partition=1, partitions=2) + data({"a": 1}) + commit(1, 1, 1), 409, "routing is stale"),
    ("more_than_declared", header(size=5) + data({"a": 1}) + commit(1, 1, 1), 400, "more than the 5 bytes"),
    ("beyond_the_budget", header(size=1 << 40) + data({"a": 1}) + commit(1, 1, 1), 413, "staging budget"),
    ("frame_past_declared", header(size=100) + struct.pack(">I", 5000) + b"x" * 10, 400, "at most"),
    ("too_many_keys", header(size=1 << 20) + data({f"k{i}": 1 for i in range(16_385)}), 413, "MR_FRAME_KEYS"),
    ("big_other_frame", header(size=1 << 20) + wire.frame({"v": 1, "type": "commit", "pad": "x" * 2000}, CAP), 400,
     "neither a DATA nor a KEYPART"),
    ("keypart_then_commit", header() + keypart("ab") + commit(1, 0, 0), 400, "inside a long key"),
    ("keypart_then_two_items", header() + keypart("ab") + data({"c": 1, "d": 1}), 400, "must hold one item"),
]


@pytest.mark.parametrize(("name", "body", "status", "message"), STREAM_FAULTS, ids=[f[0] for f in STREAM_FAULTS])
async def test_bad_streams_change_nothing(make_cluster: ClusterFactory, name: str, body: bytes, status: int,
                                         message: str) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    got, answer = await post(cluster, body)
    assert got == status, answer
    assert message in answer["message"]
    # Nothing was merged: the same split still commits, exactly once, afterwards.
    assert (await post(cluster, good_stream(0, {"a": 1})))[1]["status"] == "committed"
    assert report_totals((await finalize(cluster, splits=1))[1]) == {"a": 1}
    assert await cluster.run_text("x y x") == {"x": 2, "y": 1}


async def test_stale_epochs_are_fenced(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    assert (await post(cluster, good_stream(0, {"a": 1}, epoch=5)))[1]["status"] == "committed"
    status, answer = await post(cluster, good_stream(1, {"a": 1}, epoch=4))
    assert status == 409 and "stale" in answer["message"]
    status, answer = await finalize(cluster, splits=1, epoch=4)
    assert status == 409
    # A newer epoch replaces the old state entirely (a resubmitted job).
    assert (await post(cluster, good_stream(0, {"b": 3}, epoch=6)))[1]["status"] == "committed"
    status, report = await finalize(cluster, splits=1, epoch=6)
    assert report_totals(report) == {"b": 3}
    async with cluster.session.get(cluster.reducers[0].url + "/internal/v1/state", headers=AUTH) as response:
        state = await response.json()
    assert state["stale"] == 2


async def test_finalize_names_missing_splits_and_release_forgets(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    await post(cluster, good_stream(1, {"a": 1}))
    status, answer = await finalize(cluster, splits=3)
    assert status == 200
    assert (answer["type"], answer["splits"]) == ("missing", [0, 2])
    status, _ = await post(cluster, wire.encode(to_wire(Release(job="j1", epoch=1))), "/internal/v1/release")
    assert status == 200
    # Forgotten: every split is missing now, so a master would re-map them all for this partition.
    status, answer = await finalize(cluster, splits=2)
    assert status == 200
    assert (answer["type"], answer["splits"]) == ("missing", [0, 1])


async def raw_finalize(cluster: Cluster, splits: int, epoch: int = 1) -> tuple[int, bytes]:
    message = Finalize(job="j1", epoch=epoch, partition=0, splits=splits, job_name="wordcount")
    async with cluster.session.post(cluster.reducers[0].url + "/internal/v1/finalize",
                                    data=wire.encode(to_wire(message)), headers=AUTH) as response:
        return response.status, await response.read()


async def test_a_reported_job_is_forgotten_and_a_repeated_finalize_gets_the_same_bytes(
        make_cluster: ClusterFactory) -> None:
    """The master's finalize answer may be lost and asked for again: the reducer forgot the job when it reported
    (no Release needed), yet answers the repeated finalize with the very same bytes."""
    cluster = await make_cluster(mappers=1, reducers=1)
    assert (await post(cluster, good_stream(0, {"a": 2, "b": 1})))[1]["status"] == "committed"
    assert (await post(cluster, good_stream(1, {"a": 5, "c": 1})))[1]["status"] == "committed"
    status, first = await raw_finalize(cluster, splits=2)
    assert status == 200
    assert report_totals(cbor2.loads(first)) == {"a": 7, "b": 1, "c": 1}
    state = await reducer_state(cluster)
    assert state["jobs"] == {} and state["reported"] == 1  # forgotten at once: nothing held but the answer
    for _ in range(2):  # the answer was lost on the way: asked again, answered the same, byte for byte
        status, again = await raw_finalize(cluster, splits=2)
        assert (status, again) == (200, first)
    # A late stream of the reported job (a backup attempt still sending) is a duplicate and recreates nothing.
    status, ack = await post(cluster, header(0) + data({"a": 2, "b": 1}) + commit(1, 2, 3))
    assert (status, ack["status"]) == (200, "duplicate")
    status, answer = await post(cluster, good_stream(0, {"a": 1}, epoch=0))  # an older epoch is still fenced
    assert status == 409 and "stale" in answer["message"]
    assert (await reducer_state(cluster))["jobs"] == {}
    assert (await raw_finalize(cluster, splits=2))[1] == first
    # A newer epoch of the job starts afresh.
    assert (await post(cluster, good_stream(0, {"z": 1}, epoch=2)))[1]["status"] == "committed"
    assert report_totals((await finalize(cluster, splits=1, epoch=2))[1]) == {"z": 1}


async def test_a_report_no_longer_kept_is_redone_exactly(make_cluster: ClusterFactory) -> None:
    """Past MR_REPORT_GRACE the kept answer goes: a finalize asked again then names every split missing, and the
    splits sent again give the same totals (a master re-maps them for this partition)."""
    cluster = await make_cluster(mappers=1, reducers=1, report_grace=0.001)
    streams = [good_stream(0, {"a": 2, "b": 1}), good_stream(1, {"a": 5})]
    for body in streams:
        assert (await post(cluster, body))[1]["status"] == "committed"
    status, first = await finalize(cluster, splits=2)
    assert (status, report_totals(first)) == (200, {"a": 7, "b": 1})
    await eventually(lambda: not cluster.reducers[0].app[LEDGER].reported.get(("j1", 0)), timeout=5)
    status, answer = await finalize(cluster, splits=2)
    assert (status, answer["type"], answer["splits"]) == (200, "missing", [0, 1])
    for body in streams:
        assert (await post(cluster, body))[1]["status"] == "committed"
    assert report_totals((await finalize(cluster, splits=2))[1]) == report_totals(first)


@pytest.mark.parametrize("body", [b"", b"\xa1", cbor2.dumps([1, 2]), cbor2.dumps({"v": 1, "type": "finalize"}),
                                  cbor2.dumps({"v": 2, "type": "finalize"})])
async def test_bad_finalize_bodies(make_cluster: ClusterFactory, body: bytes) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    status, answer = await post(cluster, body, "/internal/v1/finalize")
    assert status == 400
    assert answer["error"] == "bad_wire"


async def test_a_full_staging_budget_pushes_back_and_jobs_stay_exact(make_cluster: ClusterFactory) -> None:
    # A stream that reserved the whole budget and stalls holds every other stream back (they wait for room,
    # so their senders feel TCP backpressure); once it commits, the job goes on and stays exact.
    budget = 1024 * 1024
    cluster = await make_cluster(mappers=2, reducers=1, stage_budget=budget)
    release = asyncio.Event()

    async def hog() -> AsyncIterator[bytes]:
        yield header(split=0, size=budget, job="hog")  # it reserves the whole budget, packed or not
        yield data({"hog": 1})
        await release.wait()
        yield commit(1, 1, 1)

    url = cluster.reducers[0].url
    hogging = asyncio.ensure_future(cluster.session.post(url + "/internal/v1/shuffle", data=hog(), headers=AUTH))
    try:
        text = "\n".join(f"u{i} v{i % 50}" for i in range(5_000))
        job = await cluster.submit({"input": {"text": text}})
        staging = cluster.reducers[0].app[BUDGET]
        await eventually(lambda: staging.waited > 0)
        assert (await cluster.status(job["id"]))["state"] == "running"
        release.set()
        async with await hogging as response:
            assert response.status == 200
        assert await cluster.result(job["id"]) == dict(Counter(text.split()))
    finally:
        release.set()
        if not hogging.done():
            hogging.cancel()
        await asyncio.gather(hogging, return_exceptions=True)
    state = await reducer_state(cluster)
    assert state["staged_bytes"] == 0


async def reducer_state(cluster: Cluster) -> dict[str, Any]:
    async with cluster.session.get(cluster.reducers[0].url + "/internal/v1/state", headers=AUTH) as response:
        return dict(await response.json())


async def test_a_key_in_pieces_is_merged_whole(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    long_key = "x" * 5000 + "é" * 3000
    stream = (header(size=100_000) + data({"a": 1}) + keypart("x" * 5000) + keypart("é" * 1000)
              + data({"é" * 2000: 3}) + commit(4, 2, 4))
    status, ack = await post(cluster, stream)
    assert status == 200, ack
    assert ack["status"] == "committed"
    assert report_totals((await finalize(cluster, splits=1))[1]) == {"a": 1, long_key: 3}


async def test_a_finalize_of_more_splits_than_any_job_has_is_a_400(make_cluster: ClusterFactory) -> None:
    # The reducer answers the splits it lacks: a peer asking about 10**10 of them made it build that list (OOM).
    cluster = await make_cluster(mappers=1, reducers=1, max_splits=4)
    status, answer = await finalize(cluster, splits=5)
    assert status == 400, answer
    assert "MR_MAX_SPLITS" in answer["message"]
    status, answer = await finalize(cluster, splits=4)
    assert (status, answer["type"], answer["splits"]) == (200, "missing", [0, 1, 2, 3])
