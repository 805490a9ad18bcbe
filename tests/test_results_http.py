"""Result streaming: 409 before a job is done, a long poll cut to MR_MAX_WAIT, NDJSON in the job's order."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from actors.inputs.ref import URL, InputRef
from actors.jobs import get_job
from actors.master.keys import REGISTRY, RESULTS
from actors.master.record import DONE, FINALIZING, RUNNING, JobRecord

from .conftest import ClusterFactory, HeldInputFactory
from .test_master import assert_error


async def test_result_before_done_is_a_409_and_status_shows_progress(make_cluster: ClusterFactory,
                                                                    held_input: HeldInputFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, allow_private_urls=True)
    source = await held_input(b"word " * 200_000)
    source.hold_all = True
    job = await cluster.submit({"input": {"url": source.url}, "split_size": 4096})
    await source.held(1)  # the job's first read is held mid-split: the job cannot be done
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result") as response:
        assert response.status == 409
        assert "no result" in (await response.json())["message"]
    assert (await cluster.status(job["id"]))["state"] == "running"
    source.release_all()
    assert await cluster.result(job["id"]) == {"word": 200_000}
    status = await cluster.status(job["id"])
    assert status["progress"]["splits_done"] == status["progress"]["splits_total"] > 100


async def test_a_long_poll_is_cut_to_mr_max_wait(make_cluster: ClusterFactory, held_input: HeldInputFactory) -> None:
    held = await held_input(b"a b a\n" * 10_000)
    held.hold_all = True  # the mapper's read stops mid-split: the job is certainly still running
    cluster = await make_cluster(mappers=1, reducers=1, allow_private_urls=True, max_wait=0.2)
    job = await cluster.submit({"job": "wordcount", "input": {"url": held.url}})
    await held.held(1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "30"}) as response:
        assert response.status == 409  # still running when the cut wait ended
    assert loop.time() - start < 10, "?wait=30 was not cut to MR_MAX_WAIT (0.2 s)"


async def test_a_result_streams_as_ndjson_in_the_jobs_order(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster()
    text = " ".join(f"w{i}" for i in range(5000)) + " w7 w7 w42"
    job = await cluster.submit({"input": {"text": text}})
    expected = await cluster.result(job["id"])
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result",
                                   params={"format": "ndjson"}) as response:
        assert response.status == 200
        assert response.content_type == "application/x-ndjson"
        lines = (await response.text()).splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == len(expected) == 5000
    assert {key: value for key, value in entries} == expected
    assert entries[:2] == [["w7", 3], ["w42", 2]]  # the job's own order: most frequent first
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result",
                                   params={"format": "ndjson", "top": "2"}) as response:
        assert [json.loads(line) for line in (await response.text()).splitlines()] == [["w7", 3], ["w42", 2]]
    await assert_error(cluster, "GET", f"/v1/jobs/{job['id']}/result?format=xml", 400, "format must be json or ndjson")


@pytest.mark.slow
async def test_a_million_key_result_streams_as_ndjson_without_a_copy_of_it(make_cluster: ClusterFactory) -> None:
    # The master's side of a huge result: a done job whose 1 M-key result it holds (mapping 1 M keys through an
    # in-process cluster would take a minute; the map and reduce sides are exercised by every other test).
    cluster = await make_cluster(mappers=1, reducers=1)
    app, keys = cluster.master.app, 1_000_000
    record = JobRecord(id="huge", epoch=1, job_name="wordcount", input=InputRef(URL, "http://x/", "x", 1),
                       created=0.0, split_size=1)
    for state in (RUNNING, FINALIZING, DONE):
        record.transition(state)
    record.done.set()
    app[REGISTRY].restore(record, "")
    held = app[RESULTS].hold(record.id, {f"w{i}": 1 + i % 7 for i in range(keys)}, get_job("wordcount").encode)
    Path("/proc/self/clear_refs").write_text("5")  # reset this process's peak RSS (VmHWM) to its current RSS
    before = _peak_rss()
    seen, pending = 0, b""
    async with cluster.session.get(f"{cluster.url}/v1/jobs/huge/result", params={"format": "ndjson"}) as response:
        assert response.content_type == "application/x-ndjson"
        async for chunk in response.content.iter_chunked(1 << 16):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            seen += len(lines)
            if seen <= len(lines):
                first = min(f"w{i}" for i in range(6, keys, 7))
                assert json.loads(lines[0]) == [first, 7]  # the job's order: most frequent, then smallest key
    grown = _peak_rss() - before
    assert seen == keys and pending == b""
    # The master wrote a window at a time: its process (this one, client included) grew far less than the result.
    assert grown < held.size / 2, (grown, held.size)


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (VmHWM)."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
