"""The master's public API: every bad input gets a 4xx naming the problem, and the next good job is still exact."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from actors.inputs.ref import URL, InputRef
from actors.jobs import get_job
from actors.master.app import REGISTRY, RESULTS, STORE
from actors.master.record import DONE, FINALIZING, RUNNING, JobRecord
from actors.master.store import clip_name

from .conftest import SHARED, Cluster, ClusterFactory, HeldInputFactory, eventually
from .support import serve_app

GOOD_TEXT = "to be or not to be"
GOOD_RESULT = {"to": 2, "be": 2, "or": 1, "not": 1}


async def assert_error(cluster: Cluster, method: str, path: str, status: int, message_part: str,
                       **kwargs: Any) -> dict[str, Any]:
    async with cluster.session.request(method, f"{cluster.url}{path}", **kwargs) as response:
        body = await response.json()
    assert response.status == status, body
    assert "error" in body
    assert message_part in body["message"], body
    return dict(body)


BAD_SUBMISSIONS = [
    ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "malformed JSON"),
    ({"json": ["a", "list"]}, 400, "must be an object"),
    ({"json": {"job": "nosuchjob", "input": {"text": "a"}}}, 400, "unknown job 'nosuchjob'"),
    ({"json": {"job": 7, "input": {"text": "a"}}}, 400, '"job" must be'),
    ({"json": {"job": "wordcount"}}, 400, 'missing "input"'),
    ({"json": {"job": "wordcount", "input": {}}}, 400, '"input" must be an object with one of'),
    ({"json": {"job": "wordcount", "input": "text"}}, 400, '"input" must be an object'),
    ({"json": {"input": {"text": "a", "path": "b"}}}, 400, "exactly one of"),
    ({"json": {"input": {"text": 5}}}, 400, '"input.text" must be a string'),
    ({"json": {"input": {"colour": "red"}}}, 400, "unknown input fields"),
    ({"json": {"input": {"text": "a"}, "split_size": 0}}, 400, "split_size must be a positive integer"),
    ({"json": {"input": {"text": "a"}, "split_size": True}}, 400, "split_size must be a positive integer"),
    ({"json": {"input": {"text": "a"}, "split_size": 1.9}}, 400, "split_size must be a positive integer"),
    ({"json": {"input": {"text": "a"}, "split_size": "65536"}}, 400, "split_size must be a positive integer"),
    ({"json": {"input": {"text": "a"}, "split_size": 65536.0}}, 400, "split_size must be a positive integer"),
    ({"json": {"input": {"text": "a"}, "split_size": None}}, 400, "split_size must be a positive integer"),
    ({"json": {"input": {"text": "a"}, "split_size": 1}}, 400, "(MR_SPLIT_SIZE_FLOOR)"),
    ({"json": {"input": {"text": "a", "name": "n" * 256}}}, 400, "256 bytes, more than the limit of 255 bytes "
                                                                 "(MR_MAX_NAME)"),
    ({"json": {"input": {"text": "a", "name": "é" * 128}}}, 400, "(MR_MAX_NAME)"),  # 256 bytes of UTF-8
    ({"json": {"input": {"text": "a"}, "extra": 1}}, 400, "unknown fields"),
    ({"json": {"input": {"path": "../secret.txt"}}}, 400, "without '..'"),
    ({"json": {"input": {"path": "/etc/passwd"}}}, 400, "relative to the data root"),
    ({"json": {"input": {"path": "missing.txt"}}}, 400, "not a readable file"),
    ({"json": {"input": {"path": "escape"}}}, 400, "leaves the data root"),
    ({"json": {"input": {"url": "file:///etc/passwd"}}}, 400, "must be an absolute http(s) URL"),
    ({"json": {"input": {"url": "http://127.0.0.1:1/x"}}}, 400, "non-public address"),
    ({"json": {"input": {"url": "http://169.254.169.254/latest"}}}, 400, "non-public address"),
]


@pytest.fixture(scope="module")
def escaping_root(shared_cluster: Cluster) -> Path:
    """The shared cluster's data root, with a symlink ``escape`` to a file outside it."""
    data_root = Path(shared_cluster.master.settings.data_root)
    outside = data_root.parent / "secret.txt"
    outside.write_text("secret words")
    os.symlink(outside, data_root / "escape")
    return data_root


@pytest.mark.parametrize(("kwargs", "status", "message"), BAD_SUBMISSIONS,
                         ids=[case[2] for case in BAD_SUBMISSIONS])
@SHARED
async def test_bad_submissions_are_refused_clearly(
    shared_cluster: Cluster, escaping_root: Path, kwargs: dict[str, Any], status: int, message: str
) -> None:
    # A refused submission leaves nothing behind, so one cluster serves every case (and a good job after each).
    cluster = shared_cluster
    await assert_error(cluster, "POST", "/v1/jobs", status, message, **kwargs)
    assert await cluster.run_text(GOOD_TEXT) == GOOD_RESULT


async def test_oversized_bodies_get_413(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(max_json=2048, max_body=4096)
    await assert_error(cluster, "POST", "/v1/jobs", 413, "too large",
                       json={"input": {"text": "x " * 5000}})
    await assert_error(cluster, "POST", "/v1/jobs", 413, "exceeds the cap of 4096 bytes",
                       data=b"word " * 2000, headers={"Content-Type": "application/octet-stream"})
    assert await cluster.run_text(GOOD_TEXT) == GOOD_RESULT


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("GET", "/result"), ("DELETE", "")])
@SHARED
async def test_unknown_job_ids_get_404(shared_cluster: Cluster, method: str, suffix: str) -> None:
    cluster = shared_cluster
    await assert_error(cluster, method, f"/v1/jobs/nosuchjob{suffix}", 404, "unknown job id 'nosuchjob'")
    assert await cluster.run_text(GOOD_TEXT) == GOOD_RESULT


@SHARED
async def test_bad_query_parameters(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    job = await cluster.submit({"input": {"text": GOOD_TEXT}})
    await assert_error(cluster, "GET", f"/v1/jobs/{job['id']}/result?top=-3", 400, "top must be a positive")
    await assert_error(cluster, "GET", f"/v1/jobs/{job['id']}/result?wait=soon", 400, "wait must be a number")
    await assert_error(cluster, "GET", "/compute", 400, "missing query parameter 'text'")
    await assert_error(cluster, "GET", "/no/such/route", 404, "Not Found")
    assert await cluster.result(job["id"]) == GOOD_RESULT


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


@SHARED
async def test_idempotency_key_returns_the_same_job(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    headers = {"Idempotency-Key": "nightly-42"}
    first = await cluster.submit({"input": {"text": GOOD_TEXT}}, headers=headers)
    async with cluster.session.post(f"{cluster.url}/v1/jobs", json={"input": {"text": GOOD_TEXT}},
                                    headers=headers) as response:
        again = await response.json()
    assert response.status == 200
    assert again["id"] == first["id"]
    assert await cluster.result(first["id"]) == GOOD_RESULT


@SHARED
async def test_internal_routes_need_the_cluster_token(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    for actor, path in [(cluster.master, "/internal/v1/inputs/x"), (cluster.mappers[0], "/internal/v1/assign"),
                        (cluster.reducers[0], "/internal/v1/shuffle"), (cluster.reducers[0], "/internal/v1/finalize")]:
        method = "GET" if "inputs" in path else "POST"
        async with cluster.session.request(method, actor.url + path, data=b"x") as response:
            assert response.status == 401
            assert "requires the cluster token" in (await response.json())["message"]
        async with cluster.session.request(method, actor.url + path, data=b"x",
                                           headers={"Authorization": "Bearer wrong"}) as response:
            assert response.status == 401
    async with cluster.session.get(cluster.mappers[0].url + "/healthz") as response:
        assert response.status == 200
        assert (await response.json())["role"] == "mapper"
    assert await cluster.run_text(GOOD_TEXT) == GOOD_RESULT


async def test_api_token_protects_the_public_api_when_set(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(api_token="public-secret")
    await assert_error(cluster, "POST", "/v1/jobs", 401, "requires the API token", json={"input": {"text": "a"}})
    job = await cluster.submit({"input": {"text": GOOD_TEXT}}, headers={"Authorization": "Bearer public-secret"})
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "30"},
                                   headers={"Authorization": "Bearer public-secret"}) as response:
        assert (await response.json())["result"] == GOOD_RESULT


UPLOAD = {"Content-Type": "application/octet-stream"}


@pytest.mark.parametrize("query", ["split_size=1e5", "split_size=+65536", "split_size=%2065536", "split_size=65536.0",
                                   "split_size=%D9%A3%D9%A3%D9%A3%D9%A3%D9%A3", "split_size=0", "split_size=",
                                   "split_size=0x10000", "split_size=99999999999999999999999"])
@SHARED
async def test_upload_split_size_must_be_plain_decimal_digits(shared_cluster: Cluster, query: str) -> None:
    cluster = shared_cluster
    await assert_error(cluster, "POST", f"/v1/jobs?{query}", 400, "split_size must be a positive integer",
                       data=GOOD_TEXT.encode(), headers=UPLOAD)
    assert cluster.master.app[STORE].spooled == 0
    assert await cluster.run_text(GOOD_TEXT) == GOOD_RESULT


@SHARED
async def test_upload_names_and_tiny_splits_are_refused(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    await assert_error(cluster, "POST", "/v1/jobs?name=" + "x" * 300, 400, "?name= is 300 bytes, more than the "
                       "limit of 255 bytes (MR_MAX_NAME)", data=GOOD_TEXT.encode(), headers=UPLOAD)
    await assert_error(cluster, "POST", "/v1/jobs?split_size=100", 400, "below the smallest split size a request "
                       "may ask for, 512 bytes (MR_SPLIT_SIZE_FLOOR)", data=GOOD_TEXT.encode(), headers=UPLOAD)
    async with cluster.session.post(f"{cluster.url}/v1/jobs?name=" + "x" * 255, data=GOOD_TEXT.encode(),
                                    headers=UPLOAD) as response:
        job = await response.json()
    assert response.status == 202, job
    assert job["input"]["name"] == "x" * 255
    assert await cluster.result(job["id"]) == GOOD_RESULT


async def test_a_plan_past_max_splits_is_refused_at_submit_for_every_input_kind(
    make_cluster: ClusterFactory, data_root: Path
) -> None:
    cluster = await make_cluster(max_splits=16)
    text = "word " * 4000  # 20 000 bytes: 40 splits of 512 bytes
    message = "plans 40 splits, more than the 16 one job may have (MR_MAX_SPLITS); use a split_size of at least 1250"
    await assert_error(cluster, "POST", "/v1/jobs", 400, message, json={"input": {"text": text}, "split_size": 512})
    (data_root / "book.txt").write_text(text)
    await assert_error(cluster, "POST", "/v1/jobs", 400, message, json={"input": {"path": "book.txt"},
                                                                         "split_size": 512})
    await assert_error(cluster, "POST", "/v1/jobs?split_size=512", 400, message, data=text.encode(), headers=UPLOAD)

    async def chunked() -> Any:  # no Content-Length: refused after spooling, and the spooled file is removed
        for _ in range(4):
            yield text.encode()[:5000]

    await assert_error(cluster, "POST", "/v1/jobs?split_size=512", 400, "(MR_MAX_SPLITS)", data=chunked(),
                       headers=UPLOAD)
    store = cluster.master.app[STORE]
    assert store.spooled == 0 and not store._files and not store._texts
    assert not list(Path(store._dir.name).iterdir())
    assert cluster.master.app[REGISTRY].jobs == {}
    job = await cluster.submit({"input": {"path": "book.txt"}, "split_size": 1250})
    assert await cluster.result(job["id"]) == {"word": 4000}
    assert (await cluster.status(job["id"]))["progress"]["splits_total"] <= 16


async def test_a_huge_path_input_at_the_default_split_size_is_refused(make_cluster: ClusterFactory,
                                                                      data_root: Path) -> None:
    cluster = await make_cluster(split_size=64 * 1024 * 1024, max_splits=65536)
    with open(data_root / "huge.bin", "wb") as sparse:
        sparse.truncate(5 << 40)  # 5 TiB, sparse: past 4 TiB at 64 MiB
    await assert_error(cluster, "POST", "/v1/jobs", 400, "plans 81920 splits, more than the 65536 one job may have "
                       "(MR_MAX_SPLITS)", json={"input": {"path": "huge.bin"}})
    assert cluster.master.app[REGISTRY].jobs == {}


async def test_uploads_spooled_at_once_stay_within_the_upload_budget(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(upload_budget=8192)
    store = cluster.master.app[STORE]
    first_half = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_upload() -> Any:
        yield b"alpha " * 1000  # 6000 bytes now, the rest later
        first_half.set()
        await go_on.wait()
        yield b"beta\n"

    first = asyncio.create_task(cluster.session.post(f"{cluster.url}/v1/jobs", data=slow_upload(), headers=UPLOAD))
    async with asyncio.timeout(20):
        await first_half.wait()
    await eventually(lambda: store.spooled >= 6000)  # the master has spooled what the client wrote
    body = await assert_error(cluster, "POST", "/v1/jobs", 507, "would pass the 8192 bytes all uploads may spool "
                              "at once (MR_UPLOAD_BUDGET", data=b"gamma " * 1000, headers=UPLOAD)
    assert body["error"] == "insufficient_storage"

    async def unsized() -> Any:  # no Content-Length: refused mid-stream, its partial file removed
        for _ in range(10):
            yield b"delta " * 200

    await assert_error(cluster, "POST", "/v1/jobs", 507, "(MR_UPLOAD_BUDGET", data=unsized(), headers=UPLOAD)
    assert store.spooled == 6000 and len(list(Path(store._dir.name).iterdir())) == 1
    go_on.set()
    async with await first as response:
        job = await response.json()
        assert response.status == 202, job
    assert await cluster.result(job["id"]) == {"alpha": 1000, "beta": 1}
    await eventually(lambda: store.spooled == 0)  # the finished job let its upload go
    job = await cluster.submit(data=b"gamma " * 1000, headers=UPLOAD)
    assert await cluster.result(job["id"]) == {"gamma": 1000}


def test_derived_names_are_cut_to_max_name_on_a_character_boundary() -> None:
    ref = InputRef(URL, "http://example.org/x", "é" * 200, 10)
    assert clip_name(ref, 255).name == "é" * 127  # 254 bytes: half of the 128th character would pass the limit
    assert clip_name(ref, 400) is ref


async def test_a_url_input_with_a_long_path_gets_a_bounded_name(make_cluster: ClusterFactory, tmp_path: Path) -> None:
    (tmp_path / "book.txt").write_text(GOOD_TEXT)

    async def serve(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(tmp_path / "book.txt")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    async with serve_app(app) as base:
        cluster = await make_cluster(allow_private_urls=True)
        job = await cluster.submit({"job": "inverted_index", "input": {"url": f"{base}/{'p' * 2000}"}})
        assert job["input"]["name"] == "p" * 255
        result = await cluster.result(job["id"])
        assert result == {word: ["p" * 255] for word in GOOD_RESULT}


@SHARED
async def test_status_summarises_splits_and_pages_them_on_request(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    job = await cluster.submit({"input": {"text": "a b c\n" * 2000}, "split_size": 512})
    assert await cluster.result(job["id"]) == {"a": 2000, "b": 2000, "c": 2000}
    status = await cluster.status(job["id"])
    total = status["progress"]["splits_total"]
    assert total > 10
    assert status["splits"]["counts"] == {"total": total, "pending": 0, "running": 0, "done": total, "failed": 0}
    assert status["splits"]["failed"] == [] and status["splits"]["running"] == []
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}",
                                   params={"splits": "all", "offset": "2", "limit": "3"}) as response:
        page = (await response.json())["splits"]
    assert response.status == 200
    assert [s["split"] for s in page["items"]] == [2, 3, 4] and page["matching"] == total
    assert all(s["done"] and s["attempts"][-1]["state"] == "done" for s in page["items"])
    for params, message in [
        ({"splits": "some"}, "splits must be one of all, failed or running"),
        ({"splits": "all", "limit": "100000"}, "limit must be a whole number from 0 to 1000"),
        ({"splits": "all", "offset": "-3"}, "offset must be a whole number"),
        ({"splits": "running", "limit": "inf"}, "limit must be a whole number"),
        ({"offset": "3"}, "add splits=all"),
    ]:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        await assert_error(cluster, "GET", f"/v1/jobs/{job['id']}?{query}", 400, message)


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
