"""The Python client against real actors on loopback: every input kind, following a job, and every error class."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.api import AsyncClient, Client, JobStatus, Upload
from actors.api.bodies import ndjson_batches
from actors.api.errors import server_error
from actors.core.errors import (
    BadRequest,
    Conflict,
    Gone,
    InsufficientStorage,
    MapReduceError,
    NotFound,
    PayloadTooLarge,
    PeerError,
    Unauthorized,
    Unavailable,
)
from actors.net.actor import IDENTITY
from actors.sequential import run_sequential, run_sequential_inputs

from .conftest import Actor, ClusterFactory, actor_settings, start_actor
from .support import held_url

TEXT = "the quick brown fox jumps over the lazy dog\nthe dog barks\n" * 400 + "a lone line without a newline"
API_TOKEN = "api-secret"


def oracle(data: str | bytes, job: str = "wordcount") -> dict[str, Any]:
    return run_sequential(job, data.encode() if isinstance(data, str) else data)


@pytest.fixture
async def client(make_cluster: ClusterFactory) -> AsyncIterator[AsyncClient]:
    cluster = await make_cluster(api_token=API_TOKEN)
    async with AsyncClient(cluster.url, API_TOKEN, timeout=20.0) as api:
        yield api


async def test_text_job_status_wait_result_top_and_iterate(client: AsyncClient) -> None:
    handle = await client.submit("wordcount", TEXT, split_size=4096)
    assert handle.submitted is not None and handle.submitted.id == handle.id
    assert handle.submitted.state in {"queued", "running"}
    final = await handle.wait(30)
    assert final.state == "done" and final.finished and final.error is None
    assert final.progress.splits_done == final.progress.splits_total > 1
    assert final.progress.bytes_done == final.progress.bytes_total == len(TEXT.encode())
    status = await handle.status()
    assert status == final and status.job == "wordcount"
    expected = oracle(TEXT)
    assert await handle.result() == expected
    top = await handle.result(top=3)
    assert list(top.items()) == sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    entries = [entry async for entry in handle.iter_result()]
    assert dict(entries) == expected and len(entries) == len(expected)
    assert [job.id for job in await client.jobs()] == [handle.id]


async def test_upload_of_a_path_and_of_an_open_binary_file(client: AsyncClient, tmp_path: Path) -> None:
    book = tmp_path / "book.json"  # a guessed Content-Type would make the master read it as a job spec
    book.write_bytes(b'{"job": "nosuchjob", "input": {"text": "x"}}\n' + TEXT.encode() + b"\n\xff\xfe bytes")
    handle = await client.submit("wordcount", book, split_size=4096)
    assert handle.submitted is not None and handle.submitted.raw["input"] == {
        "kind": "served", "name": "book.json", "size": book.stat().st_size}
    await handle.wait(30)
    assert await handle.result() == oracle(book.read_bytes())
    with open(book, "rb") as file:
        again = await client.submit("inverted_index", [file])
    await again.wait(30)
    assert await again.result() == run_sequential("inverted_index", book.read_bytes(), "book.json")
    in_memory = await client.submit("wordcount", io.BytesIO(b"x y x"))
    assert (await in_memory.wait(30)).state == "done"
    assert await in_memory.result() == {"x": 2, "y": 1}


async def test_path_input_and_idempotency_key(client: AsyncClient, data_root: Path) -> None:
    (data_root / "book.txt").write_text(TEXT)
    handle = await client.submit("wordcount", {"path": "book.txt"}, idempotency_key="nightly-1")
    again = await client.submit("wordcount", {"path": "book.txt"}, idempotency_key="nightly-1")
    assert again.id == handle.id
    await handle.wait(30)
    assert await client.job(handle.id).result() == oracle(TEXT)


async def test_result_waits_on_the_server(client: AsyncClient) -> None:
    handle = await client.submit("wordcount", "b a b")
    assert await handle.result(wait=30) == {"a": 1, "b": 2}


@pytest.fixture
async def held_input() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A URL input whose every read is held until the test ends: a job on it is certainly running."""
    async with held_url(TEXT.encode()) as held:
        yield held


async def test_cancel_a_running_job(make_cluster: ClusterFactory, held_input: tuple[str, asyncio.Event]) -> None:
    url, reading = held_input
    cluster = await make_cluster(allow_private_urls=True)
    async with AsyncClient(cluster.url) as api:
        handle = await api.submit("wordcount", {"url": url})
        async with asyncio.timeout(20):
            await reading.wait()
        with pytest.raises(Conflict, match=r"is running, no result"):
            await handle.result()
        with pytest.raises(TimeoutError, match="still running"):
            await handle.wait(0.2)
        answer = await handle.cancel()
        assert answer.id == handle.id and answer.state == "cancelled"
        assert (await handle.wait(10)).state == "cancelled"
        with pytest.raises(Conflict, match="is cancelled, no result") as caught:
            await handle.result()
        assert caught.value.status == 409 and caught.value.code == "conflict"


async def test_each_error_class_from_a_real_answer(make_cluster: ClusterFactory, tmp_path: Path) -> None:
    cluster = await make_cluster(api_token=API_TOKEN, max_json=4096, results_budget=64,
                                 result_max=64, upload_budget=64, max_body=8192)
    async with AsyncClient(cluster.url, API_TOKEN) as api, AsyncClient(cluster.url, "wrong") as intruder, \
            AsyncClient(cluster.url) as anonymous:
        with pytest.raises(BadRequest, match="unknown job 'nosuchjob'") as bad:
            await api.submit("nosuchjob", "a b")
        assert bad.value.status == 400
        with pytest.raises(BadRequest, match="job 'wordcount' has no parameter k"):
            await api.submit("wordcount", "a b", params={"k": "v"})
        with pytest.raises(BadRequest, match=r'"output" must be \{"path": DIR\}'):
            await api.submit("wordcount", "a b", output={"path": 5})
        with pytest.raises(BadRequest, match="output path '/out' must be relative"):  # "DIR" is {"path": DIR}
            await api.submit("wordcount", "a b", output="/out")
        with pytest.raises(BadRequest, match=r"without '\.\.'"):
            await api.submit("wordcount", {"path": "../etc/passwd"})
        with pytest.raises(NotFound, match="unknown job id 'nosuchid'"):
            await api.job("nosuchid").status()
        for sneaky in ("../cluster", "..", "a/b", "x?y=1"):  # an id never names another route
            with pytest.raises(NotFound, match="unknown job id"):
                await api.job(sneaky).status()
        for client in (intruder, anonymous):
            with pytest.raises(Unauthorized, match="requires the API token") as unauthorized:
                await client.jobs()
            assert unauthorized.value.status == 401
        with pytest.raises(PayloadTooLarge) as large:
            await api.submit("wordcount", "x " * 4096)
        assert large.value.status == 413
        huge = tmp_path / "huge.txt"  # refused from its Content-Length, before the master reads it
        huge.write_bytes(b"word " * 2000)
        with pytest.raises(PayloadTooLarge, match="MR_MAX_BODY"):
            await api.submit("wordcount", huge)
        upload = tmp_path / "big.txt"
        upload.write_bytes(b"word " * 100)
        with pytest.raises(InsufficientStorage, match="MR_UPLOAD_BUDGET"):
            await api.submit("wordcount", upload)
        # Two results pass the 64 bytes held at once: the older one is dropped, and its result is 410 Gone.
        gone = await api.submit("wordcount", "gone soon")
        assert (await gone.wait(30)).state == "done"
        assert (await (await api.submit("wordcount", "alpha beta gamma delta epsilon")).wait(30)).state == "done"
        with pytest.raises(Gone, match="MR_RESULTS_BUDGET"):
            await gone.result()
        cluster.master.app[IDENTITY].draining = True
        with pytest.raises(Unavailable, match="shutting down") as unavailable:
            await api.submit("wordcount", "a")
        assert unavailable.value.status == 503 and unavailable.value.retry_after >= 1
        cluster.master.app[IDENTITY].draining = False
    async with AsyncClient(cluster.url + "/nothing-here", API_TOKEN) as lost:
        with pytest.raises(NotFound, match="Not Found"):
            await lost.jobs()


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
async def test_client_side_refusals_and_an_unreachable_master(client: AsyncClient, tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="a list of 2 inputs must be all"):
        await client.submit("wordcount", ["a", "b"])
    with pytest.raises(BadRequest, match="a list of 0 inputs must be all"):
        await client.submit("wordcount", [])
    with pytest.raises(BadRequest, match="a list of 2 inputs must be all"):
        await client.submit("wordcount", [{"path": "a.txt"}, {"url": "http://example.org/b"}])
    upload = tmp_path / "f.txt"
    upload.write_text("a")
    with pytest.raises(BadRequest, match='output must be a directory under the data root: "DIR" or'):
        await client.submit("wordcount", upload, output={"dir": "out"})
    with pytest.raises(BadRequest, match="a list of 2 inputs must be all local files"):
        await client.submit("wordcount", [upload, {"path": "a.txt"}])
    with pytest.raises(TypeError, match="not int"):
        await client.submit("wordcount", 42)  # type: ignore[arg-type]
    with open(upload) as text_file, pytest.raises(TypeError, match="binary mode"):
        await client.submit("wordcount", text_file)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        client.job("")
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # a master that takes the request and never answers
        writer.close()

    stalled = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = stalled.sockets[0].getsockname()[1]
    async with stalled, AsyncClient(f"http://127.0.0.1:{port}", timeout=0.5) as silent:
        with pytest.raises(PeerError, match=r"no answer from the master .*timed out"):
            await silent.jobs()
        with pytest.raises(PeerError, match="timed out"):
            await silent.job("x").wait(5)
        with pytest.raises(PeerError, match="timed out"):
            _ = [entry async for entry in silent.job("x").iter_result()]
        with pytest.raises(PeerError, match="timed out"):
            await silent.submit("wordcount", upload)
        stalled.close()
    async with AsyncClient("http://127.0.0.1:1", timeout=2.0) as nobody:
        with pytest.raises(PeerError, match="no answer from the master") as refused:
            await nobody.jobs()
        assert isinstance(refused.value, MapReduceError)


def _serve_cluster(data_root: Path, ready: threading.Event, box: dict[str, Any], **overrides: Any) -> None:
    """A master, 2 mappers and 2 reducers on their own event loop in this thread, until box['stop'] is set."""

    async def main() -> None:
        actors: list[Actor] = []
        try:
            for i in range(2):
                actors.append(await start_actor(actor_settings("reducer", i, data_root, **overrides)))
            reducers = tuple(a.url for a in actors)
            for i in range(2):
                actors.append(await start_actor(actor_settings("mapper", i, data_root, reducer_urls=reducers,
                                                               **overrides)))
            master = await start_actor(actor_settings("master", 0, data_root, reducer_urls=reducers,
                                                      mapper_urls=tuple(a.url for a in actors[2:]), **overrides))
            actors.append(master)
            stop = asyncio.Event()
            box.update(url=master.url, loop=asyncio.get_running_loop(), stop=stop)
            ready.set()
            await stop.wait()
        finally:
            ready.set()
            for actor in reversed(actors):
                await actor.runner.cleanup()

    asyncio.run(main())


@pytest.fixture
def threaded_master(data_root: Path) -> Iterator[str]:
    """A real cluster served from another thread, so a plain (blocking) test can call it."""
    ready, box = threading.Event(), dict[str, Any]()
    thread = threading.Thread(target=_serve_cluster, args=(data_root, ready, box), kwargs={"api_token": API_TOKEN})
    thread.start()
    try:
        assert ready.wait(30) and "url" in box, "the cluster did not start"
        yield str(box["url"])
    finally:
        if "stop" in box:
            box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)
        assert not thread.is_alive()


def test_blocking_client_from_plain_code(threaded_master: str, tmp_path: Path) -> None:
    book = tmp_path / "book.txt"
    book.write_text(TEXT)
    with Client(threaded_master, token=API_TOKEN, timeout=20.0) as client:
        handle = client.submit("wordcount", book, split_size=4096)
        final = handle.wait(30)
        assert isinstance(final, JobStatus) and final.state == "done"
        assert handle.status().progress.splits_total > 1
        expected = oracle(TEXT)
        assert handle.result() == expected
        assert handle.result(top=1) == {"the": expected["the"]}
        entries = handle.iter_result()
        first = next(entries)
        entries.close()  # stopping early releases the streamed answer
        assert first in expected.items()
        assert dict(handle.iter_result()) == expected
        with pytest.raises(NotFound, match="unknown job id"):
            client.job("nosuchid").cancel()
        with pytest.raises(BadRequest, match="unknown job"):
            client.submit("nosuchjob", "a")
        assert "wordcount" in {kind["name"] for kind in client.kinds()}
        assert len(client.cluster()["mappers"]) == 2
        seen: list[JobStatus] = []
        assert client.submit("wordcount", book, split_size=4096).wait(30, progress=seen.append).state == "done"
        assert seen and seen[-1].state == "done"
        assert not hasattr(client, "run")  # the coroutine runner is the client's own business (Client._run)
    with pytest.raises(RuntimeError, match="closed"):
        client.jobs()
    with Client(threaded_master) as anonymous, pytest.raises(Unauthorized):
        anonymous.submit("wordcount", "a")


@pytest.mark.parametrize(("status", "body", "headers", "cls", "code"), [
    (429, b'{"error": "too_many_requests", "message": "queue full (MR_MAX_QUEUED)"}', {"Retry-After": "7"},
     Unavailable, "too_many_requests"),
    (503, b'{"error": "unavailable", "message": "queue full"}', {"Retry-After": "soon"}, Unavailable, "unavailable"),
    (408, b'{"error": "request_timeout", "message": "body too slow"}', {}, MapReduceError, "request_timeout"),
    (422, b'{"error": "unprocessable", "message": "key reused"}', {}, MapReduceError, "unprocessable"),
    (400, b'{"error": "bad_input", "message": "outside the root"}', {}, BadRequest, "bad_input"),
    (404, b'{"error": "bad_input", "message": "a code that disagrees with its status"}', {}, NotFound, "bad_input"),
    (502, b"<html>bad gateway</html>", {}, PeerError, "peer"),
])
def test_error_mapping_for_answers_this_server_may_not_send(status: int, body: bytes, headers: dict[str, str],
                                                           cls: type[MapReduceError], code: str) -> None:
    """Statuses and codes a newer server or a proxy answers map by code, then by status; the status is kept."""
    error = server_error(status, body, headers, "POST /v1/jobs")
    assert isinstance(error, cls) and error.status == status and error.code == code
    if body.startswith(b"{"):
        assert error.message == json.loads(body)["message"]
    else:
        assert error.message == "POST /v1/jobs answered HTTP 502: <html>bad gateway</html>"
    if isinstance(error, Unavailable):
        assert error.retry_after == (7.0 if status == 429 else 1.0)


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_ndjson_lines_split_across_chunks() -> None:
    stream = _chunks(b'["a", 1]\n["b"', b', {"x": [2]}]\n\n["c', b'", 3]')
    batches = [batch async for batch in ndjson_batches(stream, "/r")]
    assert [entry for batch in batches for entry in batch] == [("a", 1), ("b", {"x": [2]}), ("c", 3)]
    failed_late = b'["a", 1]\n{"error": "conflict", "message": "job failed late"}\n'
    with pytest.raises(Conflict, match="job failed late"):
        _ = [b async for b in ndjson_batches(_chunks(failed_late), "/r")]
    typed = [b async for b in ndjson_batches(_chunks(b'[-15, 1]\n[["a", 3], 2]\n'), "/r")]  # keys typed
    assert [entry for batch in typed for entry in batch] == [(-15, 1), (["a", 3], 2)]
    # An OutputKey (an mrjob job's output key) may be any JSON value: null, a float, a bool, an object.
    output_keys = b'[null, 2]\n[1.5, 2]\n[true, "t"]\n[{"k": [1]}, null]\n'
    records = [b async for b in ndjson_batches(_chunks(output_keys), "/r")]
    assert [entry for batch in records for entry in batch] == [(None, 2), (1.5, 2), (True, "t"), ({"k": [1]}, None)]
    for bad in (b"not json\n", b'["a", 1, 2]\n', b'["a"]\n', b'{"a": 1}\n', b'"a"\n', b"3\n"):
        with pytest.raises(PeerError, match="result line"):
            _ = [b async for b in ndjson_batches(_chunks(bad), "/r")]


async def test_a_job_with_an_output_directory_answers_where_it_went(client: AsyncClient, data_root: Path) -> None:
    (data_root / "book.txt").write_text("to be or not to be\n")
    handle = await client.submit("wordcount", {"path": "book.txt"}, output={"path": "out"})
    assert (await handle.wait(timeout=60)).state == "done"
    output = await handle.output()
    assert output["path"] == "out" and output["keys"] == 4 and output["success"] == "_SUCCESS"
    parts = [(data_root / "out" / part).read_text() for part in output["parts"]]
    lines = [json.loads(line) for text in parts for line in text.splitlines()]
    assert dict(lines) == oracle("to be or not to be\n")
    with pytest.raises(Conflict, match="read it with output"):
        await handle.result()
    text = await client.submit("wordcount", "a b a")
    await text.wait(timeout=60)
    with pytest.raises(Conflict, match="held by the master"):
        await text.output()



async def test_a_list_of_path_references_is_one_job_over_them_all(client: AsyncClient, data_root: Path) -> None:
    (data_root / "a.txt").write_text("to be or\n")
    (data_root / "b.txt").write_text("not to be\n")
    handle = await client.submit("inverted_index", [{"path": "a.txt"}, {"path": "b.txt"}])
    assert (await handle.wait(timeout=60)).state == "done"
    assert await handle.result() == {"to": ["a.txt", "b.txt"], "be": ["a.txt", "b.txt"], "or": ["a.txt"],
                                     "not": ["b.txt"]}


async def test_several_files_with_params_and_output_are_one_job_as_their_paths_are(
        client: AsyncClient, data_root: Path, tmp_path: Path) -> None:
    """Uploaded together (one multipart body), under the caller's names, with params and an output: the same
    output as the same files read from the data root by a {"paths": [...]} job."""
    texts = {"logs/a.txt": "To be, or not\n", "logs/b.txt": "to BE\n" * 50, "c.txt": "Not!\n"}
    for name, text in texts.items():
        for root in (tmp_path / "local", data_root):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
    params = {"lower": "true", "strip_punctuation": "true"}
    uploads = [Upload(name, path=tmp_path / "local" / name) for name in texts]
    uploaded = await client.submit("wordcount", uploads, params, "up", split_size=512)
    assert uploaded.submitted is not None and uploaded.submitted.raw["inputs"]["first"] == list(texts)
    by_path = await client.submit("wordcount", [{"path": "logs"}, {"path": "c.txt"}], params, "by-path",
                                  split_size=512)
    for handle in (uploaded, by_path):
        assert (await handle.wait(60)).state == "done"
    parts = [sorted((data_root / out).glob("part-*.jsonl")) for out in ("up", "by-path")]
    assert [p.name for p in parts[0]] == [p.name for p in parts[1]] == ["part-00000.jsonl", "part-00001.jsonl"]
    assert [p.read_bytes() for p in parts[0]] == [p.read_bytes() for p in parts[1]]  # the same parts, byte for byte
    assert (await uploaded.output())["keys"] == len(run_sequential("wordcount", "".join(texts.values()).encode(),
                                                                   params=params))
    with open(tmp_path / "local" / "c.txt", "rb") as held:  # a file the caller holds and a Path, by their names
        index = await client.submit("inverted_index", [tmp_path / "local" / "logs" / "a.txt", held])
        assert (await index.wait(60)).state == "done"
    named = [("a.txt", texts["logs/a.txt"].encode()), ("c.txt", texts["c.txt"].encode())]
    assert await index.result() == run_sequential_inputs("inverted_index", named)


async def test_kinds_cluster_and_a_progress_callback(client: AsyncClient) -> None:
    kinds = {kind["name"]: kind for kind in await client.kinds()}
    assert set(kinds) >= {"wordcount", "grep", "inverted_index"} and "pattern" in kinds["grep"]["parameters"]
    peers = await client.cluster()
    assert len(peers["mappers"]) == len(peers["reducers"]) == 2
    seen: list[JobStatus] = []
    handle = await client.submit("wordcount", TEXT * 20, split_size=4096)
    final = await handle.wait(60, progress=seen.append)
    assert final.state == "done" and seen[-1] == final and seen[0].id == handle.id
    assert all(a.progress.splits_done <= b.progress.splits_done for a, b in itertools.pairwise(seen))
