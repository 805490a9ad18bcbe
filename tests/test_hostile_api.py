"""Hostile clients against a real master (and reducer): floods, slow bodies, reused keys, odd numbers and headers.

Each case asserts the status, the JSON error naming the problem (and its setting), and that a good job right after
is still exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from actors.core import wire
from actors.core.messages import Data, StreamHeader, to_wire
from actors.master.keys import REGISTRY, UPLOADS
from actors.reducer.app import BUDGET

from .conftest import FAST, SHARED, TOKEN, Actor, Cluster, ClusterFactory, eventually
from .support import serve_app

GOOD_TEXT = "to be or not to be"
GOOD_RESULT = {"to": 2, "be": 2, "or": 1, "not": 1}
OCTETS = {"Content-Type": "application/octet-stream"}


async def assert_good_job(cluster: Cluster) -> None:
    assert await cluster.run_text(GOOD_TEXT) == GOOD_RESULT


async def request(cluster: Cluster, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any], Any]:
    async with cluster.session.request(method, f"{cluster.url}{path}", **kwargs) as response:
        assert response.content_type == "application/json", await response.text()
        return response.status, dict(response.headers), await response.json()


def expect(answer: tuple[int, dict[str, Any], Any], status: int, *parts: str) -> dict[str, Any]:
    code, _, body = answer
    assert code == status, body
    assert isinstance(body, dict) and "error" in body, body
    for part in parts:
        assert part in body["message"], body
    return body


async def raw_http(url: str, head: bytes, chunks: list[bytes] = (), delay: float = 0.0,  # type: ignore[assignment]
                   timeout: float = 20.0) -> tuple[int, dict[str, Any]]:
    """Send a request byte-exactly (``head`` then ``chunks``, ``delay`` apart) and read one JSON response."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        async with asyncio.timeout(timeout):
            writer.write(head)
            await writer.drain()

            async def trickle() -> None:
                for chunk in chunks:
                    await asyncio.sleep(delay)  # the hostile client's pace, not a wait for a condition
                    writer.write(chunk)
                    await writer.drain()

            sender = asyncio.ensure_future(trickle())
            try:
                status_line = await reader.readline()
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers["content-length"]))
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
    finally:
        writer.close()
    assert headers.get("content-type", "").startswith("application/json"), (status_line, headers, body)
    return int(status_line.split()[1]), json.loads(body)


def head(url: str, method: str, path: str, headers: dict[str, str], length: int | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {urlsplit(url).netloc}",
             *(f"{k}: {v}" for k, v in headers.items())]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def quiet(actor: Actor) -> None:
    """Wait until the actor has dropped the hostile connections (aiohttp lingers up to MR_TIMEOUT_BODY_IDLE)."""
    server = actor.runner.server
    assert server is not None
    await eventually(lambda: not server.connections, timeout=5.0)


def spooled(spool: Path) -> list[Path]:
    return [p for p in spool.rglob("*") if p.is_file()]


# ------------------------------------------------------------------------------------------------ admission


async def test_a_flood_past_the_queue_gets_429s_while_probes_and_compute_still_answer(
        make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(max_running_jobs=2, max_queued_jobs=3)
    texts = [f"flood{i} " * (i + 1) + GOOD_TEXT for i in range(40)]

    async def submit(text: str) -> tuple[int, dict[str, Any], Any]:
        return await request(cluster, "POST", "/v1/jobs", json={"input": {"text": text}})

    async def probes() -> None:
        await asyncio.sleep(0.01)  # let the flood start first (its pace, not a condition)
        started = time.monotonic()
        async with asyncio.timeout(5):
            code, _, body = await request(cluster, "GET", "/healthz")
        assert code == 200 and body["status"] == "ok"
        async with asyncio.timeout(20):
            async with cluster.session.get(f"{cluster.url}/compute", params={"text": GOOD_TEXT}) as response:
                assert response.status == 200, await response.text()
                assert await response.json() == GOOD_RESULT
        assert time.monotonic() - started < 20

    answers, _ = await asyncio.gather(asyncio.gather(*(submit(t) for t in texts)), probes())
    accepted = [(text, body) for text, (code, _, body) in zip(texts, answers, strict=True) if code == 202]
    refused = [(headers, body) for code, headers, body in answers if code == 429]
    assert len(accepted) + len(refused) == len(texts), [a[0] for a in answers]
    assert accepted and refused
    for headers, body in refused:
        assert body["error"] == "too_many_requests" and "MR_MAX_QUEUED_JOBS" in body["message"]
        assert int(headers["Retry-After"]) >= 1
    for text, body in accepted:
        expected: dict[str, int] = {}
        for word in text.split():
            expected[word] = expected.get(word, 0) + 1
        assert await cluster.result(body["id"]) == expected
    await assert_good_job(cluster)


async def test_a_queued_job_shows_queued_and_can_be_cancelled(make_cluster: ClusterFactory,
                                                              data_root: Path) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, max_running_jobs=1, max_queued_jobs=1)
    (data_root / "book.txt").write_text("word " * 200_000)
    spec, key = {"input": {"path": "book.txt"}, "split_size": 4096}, {"Idempotency-Key": "big"}
    big = await cluster.submit(spec, headers=key)
    waiting = await cluster.submit({"input": {"text": GOOD_TEXT}})
    assert waiting["state"] == "queued"
    assert (await cluster.status(waiting["id"]))["state"] == "queued"
    expect(await request(cluster, "POST", "/v1/jobs", json={"input": {"text": "more"}}), 429, "MR_MAX_QUEUED_JOBS")
    # A full master still answers a resubmission of a job it has.
    code, _, again = await request(cluster, "POST", "/v1/jobs", json=spec, headers=key)
    assert code == 200 and again["id"] == big["id"]
    code, _, body = await request(cluster, "DELETE", f"/v1/jobs/{waiting['id']}")
    assert code == 200 and body["state"] == "cancelled"
    assert (await cluster.status(waiting["id"]))["state"] == "cancelled"
    assert await cluster.result(big["id"]) == {"word": 200_000}
    assert cluster.master.app[REGISTRY].queued == 0
    await assert_good_job(cluster)


async def test_uploads_beyond_the_cap_get_429(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(max_uploads=1)
    slots = cluster.master.app[UPLOADS]
    parts = urlsplit(cluster.url)
    _, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(head(cluster.url, "POST", "/v1/jobs", OCTETS, length=100) + b"some words ")
    await writer.drain()
    await eventually(lambda: slots.active == 1)  # the slow upload holds the only slot
    answer = await request(cluster, "POST", "/v1/jobs", data=b"other words", headers=OCTETS)
    expect(answer, 429, "MR_MAX_UPLOADS")
    assert int(answer[1]["Retry-After"]) >= 1
    writer.close()
    await eventually(lambda: slots.active == 0)
    await assert_good_job(cluster)


# ------------------------------------------------------------------------------------------------ slow bodies


@pytest.mark.parametrize("kind", ["upload", "json"])
@pytest.mark.slow
async def test_slow_bodies_are_cut_off_with_408_and_leave_nothing(make_cluster: ClusterFactory, tmp_path: Path,
                                                                  kind: str) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    # Generous against a busy machine: the trickle's 0.1 s gaps stay far below the idle timeout.
    timeouts = dataclasses.replace(FAST, body_idle=1.5, body=3.0)
    # A minimum rate below the trickle's 10 bytes/s: this test is about the two timeouts.
    cluster = await make_cluster(spool_dir=str(spool), timeouts=timeouts, min_body_rate=1)
    headers = OCTETS if kind == "upload" else {"Content-Type": "application/json"}
    # Stalls: a few bytes, then silence longer than the idle timeout.
    status, body = await raw_http(cluster.url, head(cluster.url, "POST", "/v1/jobs", headers, length=1000) + b"{")
    assert status == 408 and body["error"] == "request_timeout" and "MR_TIMEOUT_BODY_IDLE" in body["message"]
    # Trickles: a byte every 0.1 s never trips the idle timeout, but the total deadline cuts it off.
    status, body = await raw_http(cluster.url, head(cluster.url, "POST", "/v1/jobs", headers, length=1000),
                                  chunks=[b" "] * 1000, delay=0.1)
    assert status == 408 and "MR_TIMEOUT_BODY)" in body["message"], body
    await eventually(lambda: not spooled(spool))
    assert cluster.master.app[UPLOADS].active == 0
    await quiet(cluster.master)
    await assert_good_job(cluster)


@pytest.mark.parametrize("kind", ["upload", "json"])
@pytest.mark.slow
async def test_a_body_slower_than_the_minimum_rate_is_cut_off_and_frees_its_slot(make_cluster: ClusterFactory,
                                                                                 kind: str) -> None:
    """/tmp/r1/upload_slots.py: 1 byte every 20 s held every upload slot for MR_TIMEOUT_BODY (an hour)."""
    timeouts = dataclasses.replace(FAST, body_idle=1.0)  # the grace; MR_TIMEOUT_BODY stays an hour
    cluster = await make_cluster(timeouts=timeouts, max_uploads=1)  # MR_MIN_BODY_RATE's default: 1024 bytes/s
    slots = cluster.master.app[UPLOADS]
    headers = OCTETS if kind == "upload" else {"Content-Type": "application/json"}
    # 5 bytes/s: never silent for the idle timeout, far below the minimum rate; declared huge, so it takes a slot.
    started = time.monotonic()
    length = 4 << 30 if kind == "upload" else 1 << 20
    status, body = await raw_http(cluster.url, head(cluster.url, "POST", "/v1/jobs", headers, length=length)
                                  + b"{", chunks=[b" "] * 200, delay=0.2, timeout=15)
    assert status == 408 and body["error"] == "request_timeout", body
    assert "slower than 1024 bytes/s on average" in body["message"] and "(MR_MIN_BODY_RATE)" in body["message"]
    assert time.monotonic() - started < 10
    assert slots.active == 0
    await quiet(cluster.master)
    await assert_good_job(cluster)


@pytest.mark.slow
async def test_a_request_head_must_arrive_within_the_header_timeout(make_cluster: ClusterFactory) -> None:
    """/tmp/r1/slow_headers.py: a header byte every 20 s kept a connection (a file descriptor) open forever."""
    cluster = await make_cluster(timeouts=dataclasses.replace(FAST, headers=1.0))
    parts = urlsplit(cluster.url)
    partial = f"GET /healthz HTTP/1.1\r\nHost: {parts.netloc}\r\nX-a: ".encode()
    started = time.monotonic()
    # A byte every 0.2 s: aiohttp alone waits for the rest of the head for ever (its keep-alive timer spares it).
    status, body = await raw_http(cluster.url, partial, chunks=[b"a"] * 100, delay=0.2, timeout=15)
    assert status == 408 and body["error"] == "request_timeout" and "(MR_TIMEOUT_HEADERS)" in body["message"], body
    assert time.monotonic() - started < 10
    # A connection that never sends a byte is closed too, without an answer.
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    async with asyncio.timeout(10):
        assert await reader.read() == b""
    writer.close()
    # An idle keep-alive connection is not the head deadline's business: it serves a request after idling past it.
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        for _ in range(2):
            writer.write(f"GET /healthz HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
            async with asyncio.timeout(10):
                assert (await reader.readline()).startswith(b"HTTP/1.1 200"), "keep-alive request refused"
                length = 0
                while (line := await reader.readline()) != b"\r\n":
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
            await asyncio.sleep(2.5)  # idle on purpose, 2.5x the head deadline (the client's pace, not a wait)
    finally:
        writer.close()
    await assert_good_job(cluster)


@pytest.mark.slow
async def test_a_trickled_shuffle_stream_is_cut_off_and_frees_its_budget(make_cluster: ClusterFactory) -> None:
    timeouts = dataclasses.replace(FAST, stream_idle=1.5, stream=3.0, body_idle=1.5)
    cluster = await make_cluster(mappers=1, reducers=1, timeouts=timeouts)
    reducer = cluster.reducers[0]
    cap = reducer.settings.frame_cap
    first = wire.frame(to_wire(StreamHeader(job="slow", epoch=1, split=0, attempt=1, partition=0, partitions=1,
                                            job_name="wordcount", size=10_000)), cap)
    # Whole frames, each well within the idle timeout: only the stream's overall deadline can stop this sender.
    frames = [wire.frame(to_wire(Data({"a": 1})), cap)] * 60
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/octet-stream"}
    status, body = await raw_http(reducer.url, head(reducer.url, "POST", "/internal/v1/shuffle", headers,
                                                    length=len(first) + sum(map(len, frames))) + first,
                                  chunks=frames, delay=0.2)
    assert status == 408 and "MR_TIMEOUT_STREAM" in body["message"], body
    assert reducer.app[BUDGET].used == 0
    await quiet(reducer)
    await assert_good_job(cluster)


# ------------------------------------------------------------------------------------------------ idempotency


async def test_a_key_reused_for_another_body_gets_422(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster()
    key = {"Idempotency-Key": "report-7"}
    first = await cluster.submit({"input": {"text": GOOD_TEXT}}, headers=key)
    expect(await request(cluster, "POST", "/v1/jobs", json={"input": {"text": "other words"}}, headers=key),
           422, "different request body")
    # The same spec with its keys in another order is the same request.
    code, _, again = await request(cluster, "POST", "/v1/jobs", json={"input": {"text": GOOD_TEXT}}, headers=key)
    assert code == 200 and again["id"] == first["id"]
    upload_key = {"Idempotency-Key": "upload-7", **OCTETS}
    up = await request(cluster, "POST", "/v1/jobs?name=a.txt", data=GOOD_TEXT.encode(), headers=upload_key)
    assert up[0] == 202
    expect(await request(cluster, "POST", "/v1/jobs?name=a.txt", data=b"other words", headers=upload_key),
           422, "different request body")
    expect(await request(cluster, "POST", "/v1/jobs?name=b.txt", data=GOOD_TEXT.encode(), headers=upload_key),
           422, "different request body")
    same = await request(cluster, "POST", "/v1/jobs?name=a.txt", data=GOOD_TEXT.encode(), headers=upload_key)
    assert same[0] == 200 and same[2]["id"] == up[2]["id"]
    assert await cluster.result(first["id"]) == GOOD_RESULT
    assert await cluster.result(up[2]["id"]) == GOOD_RESULT
    await assert_good_job(cluster)


async def test_concurrent_posts_with_one_key_start_one_job(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster()
    headers = {"Idempotency-Key": "burst-1", "Content-Type": "application/json"}
    body = json.dumps({"input": {"text": GOOD_TEXT}}).encode()
    # Each body arrives in two parts, so every request is inside the master (awaiting its body) at once.
    first = head(cluster.url, "POST", "/v1/jobs", headers, length=len(body)) + body[:10]
    answers = await asyncio.gather(*(raw_http(cluster.url, first, chunks=[body[10:]], delay=0.3) for _ in range(8)))
    codes = sorted(code for code, _ in answers)
    assert codes == [200] * 7 + [202], answers
    assert len({job["id"] for _, job in answers}) == 1
    assert len({job["epoch"] for _, job in answers}) == 1
    assert await cluster.result(answers[0][1]["id"]) == GOOD_RESULT
    registry = cluster.master.app[REGISTRY]
    await eventually(lambda: registry.running == 0)  # the job's task releases reducers' state after its result
    assert len(registry.jobs) == 1
    await assert_good_job(cluster)


async def test_a_refused_intruder_does_not_free_a_claim_others_wait_on(make_cluster: ClusterFactory) -> None:
    """While one request holds a key (probing its URL input), a same-key request waits and a different one is 422."""
    asked, gate = asyncio.Event(), asyncio.Event()
    book = b"word " * 1000

    async def serve(request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            asked.set()
            async with asyncio.timeout(20):
                await gate.wait()
            return web.Response(headers={"Accept-Ranges": "bytes", "Content-Length": str(len(book))})
        start, stop, _ = request.http_range.indices(len(book))
        return web.Response(body=book[start:stop], status=206,
                            headers={"Content-Range": f"bytes {start}-{stop - 1}/{len(book)}"})

    source = web.Application()
    source.router.add_get("/book.txt", serve)
    async with serve_app(source) as base, contextlib.AsyncExitStack() as stack:
        stack.callback(gate.set)  # first thing at the end, also on failure: no request stays held
        cluster = await make_cluster(allow_private_urls=True)
        key = {"Idempotency-Key": "url-1"}
        spec = {"input": {"url": f"{base}/book.txt"}}
        holder = asyncio.ensure_future(request(cluster, "POST", "/v1/jobs", json=spec, headers=key))
        async with asyncio.timeout(20):
            await asked.wait()
        follower = asyncio.ensure_future(request(cluster, "POST", "/v1/jobs", json=spec, headers=key))
        expect(await request(cluster, "POST", "/v1/jobs", json={"input": {"text": "x"}}, headers=key),
               422, "different request body")
        gate.set()
        first, second = await holder, await follower
        assert (first[0], second[0]) == (202, 200), (first, second)
        assert first[2]["id"] == second[2]["id"] and first[2]["epoch"] == second[2]["epoch"]
        assert await cluster.result(first[2]["id"]) == {"word": 1000}
        await assert_good_job(cluster)


async def test_resubmitting_while_a_cancelled_epoch_cleans_up(make_cluster: ClusterFactory,
                                                              data_root: Path) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    (data_root / "book.txt").write_text("word " * 200_000)
    key = {"Idempotency-Key": "nightly"}
    spec = {"input": {"path": "book.txt"}, "split_size": 4096}
    old = await cluster.submit(spec, headers=key)
    registry = cluster.master.app[REGISTRY]
    deleting = asyncio.ensure_future(request(cluster, "DELETE", f"/v1/jobs/{old['id']}"))
    await eventually(lambda: registry.jobs[old["id"]].state == "cancelled")
    new = await cluster.submit(spec, headers=key)  # the old epoch may still be releasing reducers' state
    assert new["id"] == old["id"] and new["epoch"] > old["epoch"]
    assert (await deleting)[0] == 200
    await eventually(lambda: registry.running == 1)
    code, _, body = await request(cluster, "DELETE", f"/v1/jobs/{new['id']}")
    assert code == 200 and body["state"] == "cancelled"
    await eventually(lambda: registry.running == 0)
    third = await cluster.submit(spec, headers=key)
    assert third["epoch"] > new["epoch"]
    assert await cluster.result(third["id"]) == {"word": 200_000}
    await assert_good_job(cluster)


# ------------------------------------------------------------------------------------------------ odd values


@pytest.mark.parametrize("wait", ["nan", "inf", "-inf", "NaN"])
@SHARED
async def test_non_finite_wait_is_a_400(shared_cluster: Cluster, wait: str) -> None:
    cluster = shared_cluster
    job = await cluster.submit({"input": {"text": GOOD_TEXT}})
    expect(await request(cluster, "GET", f"/v1/jobs/{job['id']}/result?wait={wait}"), 400, "finite")
    expect(await request(cluster, "GET", f"/v1/jobs/{job['id']}/result?top={wait}"), 400, "top must be")
    assert await cluster.result(job["id"]) == GOOD_RESULT


@pytest.mark.parametrize("wait", ["1_0", "%201%20", "%D9%A1", "%C2%B2", "1e1", "-1", "0x10", ""])
async def test_wait_is_plain_decimal_seconds(make_cluster: ClusterFactory, wait: str) -> None:
    """float() took "1_0", " 1 " and other scripts' digits; ?wait= is plain ASCII decimal seconds like ?top=."""
    cluster = await make_cluster()
    job = await cluster.submit({"input": {"text": GOOD_TEXT}})
    expect(await request(cluster, "GET", f"/v1/jobs/{job['id']}/result?wait={wait}"), 400, "wait must be")
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result?wait=29.5") as response:
        assert response.status == 200 and (await response.json())["result"] == GOOD_RESULT


@pytest.mark.parametrize("param", ["wait_mappers", "wait_reducers"])
@pytest.mark.parametrize("value", ["%C2%B2", "%D9%A1", "-1", "1.0", "%201"])
async def test_cluster_waits_are_plain_decimal_counts(make_cluster: ClusterFactory, param: str, value: str) -> None:
    """str.isdigit() accepts "²", which int() refuses: that was a 500."""
    cluster = await make_cluster()
    expect(await request(cluster, "GET", f"/v1/cluster?{param}={value}"), 400, f"{param} must be")
    code, _, body = await request(cluster, "GET", f"/v1/cluster?{param}=1")
    assert code == 200 and len(body["mappers"]) == 2 and len(body["reducers"]) == 2


async def test_a_bad_idempotency_key_is_a_400(make_cluster: ClusterFactory) -> None:
    """A non-UTF-8 key made _job_id raise UnicodeEncodeError (a 500); an endless key was held for the job's life."""
    cluster = await make_cluster()
    body = json.dumps({"input": {"text": GOOD_TEXT}}).encode()
    raw = head(cluster.url, "POST", "/v1/jobs", {"Content-Type": "application/json"}, length=len(body))
    raw = raw.replace(b"\r\n\r\n", b"\r\nIdempotency-Key: k\xff\xfe\x80\r\n\r\n") + body
    status, answer = await raw_http(cluster.url, raw)
    assert status == 400 and "Idempotency-Key header is not UTF-8" in answer["message"], answer
    expect(await request(cluster, "POST", "/v1/jobs", json={"input": {"text": GOOD_TEXT}},
                         headers={"Idempotency-Key": "k" * 256}), 400, "Idempotency-Key", "more than the 255")
    assert cluster.master.app[REGISTRY].jobs == {}
    job = await cluster.submit({"input": {"text": GOOD_TEXT}}, headers={"Idempotency-Key": "ключ-" + "k" * 200})
    assert await cluster.result(job["id"]) == GOOD_RESULT


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
@SHARED
async def test_non_finite_json_numbers_are_a_400(shared_cluster: Cluster, number: str) -> None:
    cluster = shared_cluster
    body = '{"input": {"text": "a"}, "split_size": ' + number + "}"
    expect(await request(cluster, "POST", "/v1/jobs", data=body, headers={"Content-Type": "application/json"}),
           400, "not")
    await assert_good_job(cluster)


@SHARED
async def test_deeply_nested_json_is_a_400(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    body = "[" * 100_000 + "]" * 100_000
    expect(await request(cluster, "POST", "/v1/jobs", data=body, headers={"Content-Type": "application/json"}),
           400, "nested too deeply")
    await assert_good_job(cluster)


@SHARED
async def test_a_very_long_input_path_is_a_400(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    for path in ["a" * 5000, "/".join(["abcd"] * 1000)]:
        expect(await request(cluster, "POST", "/v1/jobs", json={"input": {"path": path}}), 400, "input path")
    await assert_good_job(cluster)


async def test_an_overlong_query_is_a_json_414_and_a_long_header_a_431(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster()
    expect(await request(cluster, "GET", "/compute", params={"text": "word " * 2000}), 414, "MR_MAX_LINE")
    expect(await request(cluster, "GET", "/healthz", headers={"X-Long": "x" * 9000}), 431, "MR_MAX_LINE")
    bigger = await make_cluster(max_line=32 * 1024)
    async with bigger.session.get(f"{bigger.url}/compute", params={"text": "word " * 2000}) as response:
        assert response.status == 200 and await response.json() == {"word": 2000}
    await assert_good_job(cluster)


# ------------------------------------------------------------------------------------------------ headers


async def test_a_non_utf8_authorization_header_is_a_401(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(api_token="public-secret")
    for path in ["/v1/jobs", "/internal/v1/inputs/x"]:
        raw = head(cluster.url, "GET", path, {}).replace(b"\r\n\r\n", b"\r\nAuthorization: Bearer \xff\xfe\x80\r\n\r\n")
        status, body = await raw_http(cluster.url, raw)
        assert status == 401 and body["error"] == "unauthorized", body
    job = await cluster.submit({"input": {"text": GOOD_TEXT}}, headers={"Authorization": "Bearer public-secret"})
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "30"},
                                   headers={"Authorization": "Bearer public-secret"}) as response:
        assert (await response.json())["result"] == GOOD_RESULT


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
async def test_the_bearer_scheme_is_case_insensitive(make_cluster: ClusterFactory, scheme: str) -> None:
    cluster = await make_cluster(api_token="public-secret")
    auth = {"Authorization": f"{scheme} public-secret"}
    job = await cluster.submit({"input": {"text": GOOD_TEXT}}, headers=auth)
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "30"},
                                   headers=auth) as response:
        assert (await response.json())["result"] == GOOD_RESULT
    expect(await request(cluster, "GET", "/v1/jobs", headers={"Authorization": f"{scheme} PUBLIC-SECRET"}), 401,
           "requires the API token")


# ------------------------------------------------------------------------------------------------ full disk


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Any:
    """A 256 KiB tmpfs the test mounts (as root) for the master's spool; skipped where it cannot."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the full-disk test needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


async def test_an_upload_onto_a_full_disk_is_a_507_and_leaves_nothing(make_cluster: ClusterFactory,
                                                                       tiny_disk: Path) -> None:
    cluster = await make_cluster(spool_dir=str(tiny_disk))
    answer = await request(cluster, "POST", "/v1/jobs", data=b"word " * 200_000, headers=OCTETS)
    expect(answer, 507, "disk is full", "MR_SPOOL_DIR")
    assert not spooled(tiny_disk)
    small = await request(cluster, "POST", "/v1/jobs", data=GOOD_TEXT.encode(), headers=OCTETS)
    assert small[0] == 202
    assert await cluster.result(small[2]["id"]) == GOOD_RESULT
    await assert_good_job(cluster)
