"""A hostile master against the client and the CLI: endless lines, trickled answers, huge bodies, and terminal
control characters in what it says. The client must end each call at its deadline with bounded memory, and the CLI
must never hand the terminal a raw control character."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from actors.api import AsyncClient
from actors.api.bodies import ndjson_batches
from actors.core.errors import PeerError
from actors.core.text import CONTROL, escaped, json_escaped

from .conftest import SHARED, Cluster
from .support import serve_app
from .test_remote import mapreduce

MiB = 1024 * 1024
NDJSON = "application/x-ndjson"
SEQUENCES = ["\x1b[31m", "\x1b]0;pwned\x07", "\x9b2J", "\r", "\x7f", "\u202e", "\b"]
HOSTILE = "".join(SEQUENCES)


def status_body(job_id: str) -> dict[str, Any]:
    return {"id": job_id, "job": f"wordcount{HOSTILE}", "state": "failed", "error": f"boom{HOSTILE}\nline two",
            "created": 1.0, "input": {"name": f"book{HOSTILE}.txt", "size": 10, "kind": f"upload{HOSTILE}"},
            "progress": {"splits_done": 1, "splits_total": 1, "bytes_done": 10, "bytes_total": 10}}


class Hostile:
    """What the fake master has sent, so a test can tell that the client stopped reading early."""

    def __init__(self) -> None:
        self.sent = 0


async def hostile_master(hostile: Hostile) -> web.Application:
    async def status(request: web.Request) -> web.StreamResponse:
        job_id = request.match_info["id"]
        if job_id == "big":  # a 16 MiB answer, said up front
            return web.json_response({"id": "big", "state": "done", "pad": "x" * (16 * MiB)})
        if job_id == "big-chunked":  # the same with no Content-Length: only reading tells
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            await response.write(b'{"id": "big", "state": "done", "pad": "')
            for _ in range(256):
                await response.write(b"x" * (64 * 1024))
                hostile.sent += 64 * 1024
            await response.write(b'"}')
            return response
        return web.json_response(status_body(job_id))

    async def jobs(request: web.Request) -> web.Response:
        return web.json_response({"jobs": [status_body(f"job{HOSTILE}")]})

    async def result(request: web.Request) -> web.StreamResponse:
        job_id = request.match_info["id"]
        response = web.StreamResponse(headers={"Content-Type": NDJSON})
        await response.prepare(request)
        if job_id == "endless":  # one line that never ends: 512 MiB unless the client stops reading
            chunk = b"a" * (256 * 1024)
            for _ in range(2048):
                await response.write(chunk)
                hostile.sent += len(chunk)
        elif job_id == "trickle":  # a line a byte at a time, never silent long enough for an idle timeout
            for byte in json.dumps(["word", 1]).encode() * 1000:
                await response.write(bytes([byte]))
                await asyncio.sleep(0.05)
        else:
            for key, value in ((f"k{HOSTILE}", 3), (HOSTILE, 2), ("plain", 1)):
                await response.write(json.dumps([key, value]).encode() + b"\n")
        return response

    app = web.Application()
    app.router.add_get("/v1/jobs", jobs)
    app.router.add_get("/v1/jobs/{id}", status)
    app.router.add_get("/v1/jobs/{id}/result", result)
    return app


@pytest.fixture
async def master() -> AsyncIterator[tuple[str, Hostile]]:
    hostile = Hostile()
    async with serve_app(await hostile_master(hostile), shutdown_timeout=0.1) as url:
        yield url, hostile


# ---------------------------------------------------------------- the client's bounds


async def _chunks(total: int, size: int, end: bytes = b"") -> AsyncIterator[bytes]:
    for _ in range(total // size):
        yield b"a" * size
    if end:
        yield end


async def test_an_endless_line_is_refused_at_max_line_with_bounded_memory(master: tuple[str, Hostile]) -> None:
    url, hostile = master
    async with AsyncClient(url, timeout=20.0, max_line=1 * MiB) as client:
        with pytest.raises(PeerError, match="max_line of 1048576"):
            async for _ in client.job("endless").iter_result():
                pass
    # The client stopped reading past the cap: the server got no further than its socket buffers let it.
    assert hostile.sent < 64 * MiB, hostile.sent


async def test_a_long_line_costs_linear_time_and_a_cap_past_it_is_refused_early() -> None:
    line = b'["' + b"a" * (16 * MiB) + b'", 1]\n'

    async def pieces() -> AsyncIterator[bytes]:  # 1 KiB at a time, as a slow network delivers it
        for start in range(0, len(line), 1024):
            yield line[start:start + 1024]

    started = time.perf_counter()
    async with asyncio.timeout(30):  # re-joining the line per chunk copies 128 GiB here: minutes, not seconds
        batches = [batch async for batch in ndjson_batches(pieces(), "/r", max_line=32 * MiB)]
    assert [len(key) for batch in batches for key, _ in batch] == [16 * MiB]
    assert time.perf_counter() - started < 30
    consumed = 0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal consumed
        async for chunk in _chunks(256 * MiB, 64 * 1024):
            consumed += len(chunk)
            yield chunk

    with pytest.raises(PeerError, match="max_line"):
        _ = [batch async for batch in ndjson_batches(counted(), "/r", max_line=1 * MiB)]
    assert consumed <= 1 * MiB + 64 * 1024


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
async def test_a_trickled_result_ends_at_the_stream_deadline(master: tuple[str, Hostile]) -> None:
    url, _ = master
    async with AsyncClient(url, timeout=1.0, stream_timeout=2.0) as client:
        started = time.perf_counter()
        with pytest.raises(PeerError, match="no answer from the master"):
            async for _ in client.job("trickle").iter_result():
                pass
        assert time.perf_counter() - started < 6.0


@pytest.mark.parametrize("job_id", ["big", "big-chunked"])
async def test_a_json_answer_past_max_json_is_refused(master: tuple[str, Hostile], job_id: str) -> None:
    url, hostile = master
    async with AsyncClient(url, timeout=20.0, max_json=1 * MiB) as client:
        with pytest.raises(PeerError, match="max_json"):
            await client.job(job_id).status()
    assert hostile.sent < 16 * MiB


# ---------------------------------------------------------------- the CLI never prints a raw control character


def assert_escaped(text: str) -> None:
    for line in text.splitlines():
        raw = [c for c in line.replace("\t", "") if CONTROL.match(c)]
        assert not raw, (line, raw)


async def test_status_result_and_jobs_escape_control_characters(master: tuple[str, Hostile]) -> None:
    url, _ = master
    status = await mapreduce("status", "--url", url, "j1")
    assert status.code == 0, status.err
    assert_escaped(status.out)
    assert f"({escaped('wordcount' + HOSTILE)})" in status.out and "\\x1b[31m" in status.out
    assert f"error: {escaped('boom' + HOSTILE + chr(10) + 'line two')}" in status.out
    assert "\\u202e" in status.out and "\\x9b" in status.out
    result = await mapreduce("result", "--url", url, "j1")
    assert result.code == 0, result.err
    assert_escaped(result.out)
    assert result.out.splitlines() == [f"3\tk{escaped(HOSTILE)}", f"2\t{escaped(HOSTILE)}", "1\tplain"]
    as_lines = await mapreduce("result", "--url", url, "--ndjson", "j1")
    assert_escaped(as_lines.out)
    assert [json.loads(line) for line in as_lines.out.splitlines()] == [[f"k{HOSTILE}", 3], [HOSTILE, 2],
                                                                       ["plain", 1]]  # still the exact data
    jobs = await mapreduce("jobs", "--url", url)
    assert jobs.code == 0, jobs.err
    assert_escaped(jobs.out)
    assert escaped(f"job{HOSTILE}") in jobs.out
    as_json = await mapreduce("jobs", "--url", url, "--json")
    assert_escaped(as_json.out)
    assert json.loads(as_json.out)[0]["id"] == f"job{HOSTILE}"


async def test_an_error_message_from_the_master_is_escaped() -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"error": "not_found", "message": f"no job{HOSTILE}"}, status=404)

    app = web.Application()
    app.router.add_get("/v1/jobs/{id}", refuse)
    async with serve_app(app, shutdown_timeout=0.1) as url:
        done = await mapreduce("status", "--url", url, "x")
    assert done.code == 1
    assert_escaped(done.err)
    assert escaped(f"no job{HOSTILE}") in done.err


def test_json_escaped_is_the_same_json() -> None:
    item = {"k": HOSTILE, "n": [1, "\u2067x\u2069"], "ok": "naïve 漢字 \t"}
    text = json_escaped(item)
    assert not CONTROL.search(text) and json.loads(text) == item and "naïve 漢字" in text


# ---------------------------------------------------------------- the master refuses control characters in names


@SHARED
@pytest.mark.parametrize("name", ["book\x1b[31m.txt", "a\nb", "x\x9b", "evil\u202etxt.exe", "tab\there"])
async def test_an_upload_name_with_a_control_character_is_refused(shared_cluster: Cluster, name: str) -> None:
    async with shared_cluster.session.post(f"{shared_cluster.url}/v1/jobs", params={"name": name},
                                           data=b"hello world",
                                           headers={"Content-Type": "application/octet-stream"}) as response:
        body = await response.json()
    assert response.status == 400, body
    assert "?name=" in body["message"] and "control character" in body["message"], body
    spec = {"input": {"text": "hello world", "name": name}}
    async with shared_cluster.session.post(f"{shared_cluster.url}/v1/jobs", json=spec) as response:
        body = await response.json()
    assert response.status == 400 and '"input.name"' in body["message"], body
    async with shared_cluster.session.post(f"{shared_cluster.url}/v1/jobs", params={"name": "naïve 漢字.txt"},
                                           data=b"hello world",
                                           headers={"Content-Type": "application/octet-stream"}) as response:
        assert response.status == 202, await response.text()
