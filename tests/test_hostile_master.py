"""Hostile requests against a real master: none may make it plan, hold or encode without bound."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import tracemalloc
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from actors.core.config import Settings
from actors.core.messages import Columns, MapResult, Report
from actors.jobs import get_job
from actors.jobs.wordcount.columns import unpack_columns
from actors.master.keys import REGISTRY, RESULTS, STORE
from actors.reducer import app as reducer_app
from actors.sequential import run_sequential

from .conftest import TOKEN, Cluster, ClusterFactory, eventually

DEFAULTS = Settings()


async def post_json(cluster: Cluster, spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with cluster.session.post(f"{cluster.url}/v1/jobs", json=spec) as response:
        return response.status, dict(await response.json())


async def healthz_answers(cluster: Cluster) -> None:
    async with asyncio.timeout(5):
        async with cluster.session.get(f"{cluster.url}/healthz") as response:
            assert response.status == 200


async def test_split_size_one_on_a_megabyte_plans_nothing(make_cluster: ClusterFactory) -> None:
    """The wedge: a million one-byte splits. Refused at submit, by the floor and by the split count alike."""
    cluster = await make_cluster(split_size_floor=DEFAULTS.split_size_floor, max_splits=DEFAULTS.max_splits)
    text = "word " * 200_000  # 1 MB
    status, body = await post_json(cluster, {"input": {"text": text}, "split_size": 1})
    assert status == 400, body
    assert "(MR_SPLIT_SIZE_FLOOR)" in body["message"]
    floorless = await make_cluster(split_size_floor=1, max_splits=DEFAULTS.max_splits)
    status, body = await post_json(floorless, {"input": {"text": text}, "split_size": 1})
    assert status == 400, body
    assert "plans 1000000 splits, more than the 65536 one job may have (MR_MAX_SPLITS)" in body["message"]
    for c in (cluster, floorless):
        assert c.master.app[REGISTRY].jobs == {}
        await healthz_answers(c)
    assert await cluster.run_text(text, split_size=DEFAULTS.split_size_floor) == {"word": 200_000}


async def test_a_long_input_name_cannot_amplify_the_result(make_cluster: ClusterFactory) -> None:
    """Inverted index copies the input's name into every value: 100 KB x 1,000 words would be a 100 MB result."""
    cluster = await make_cluster()
    words = " ".join(f"w{i}" for i in range(1000))
    status, body = await post_json(cluster, {"job": "inverted_index", "input": {"text": words, "name": "n" * 100_000}})
    assert status == 400, body
    assert body["message"] == '"input.name" is 100000 bytes, more than the limit of 255 bytes (MR_MAX_NAME)'
    assert cluster.master.app[REGISTRY].jobs == {}


async def test_concurrent_result_gets_are_served_from_one_encoding(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster()
    name = "n" * 255  # the longest name allowed
    words = " ".join(f"w{i}" for i in range(1000))
    job = await cluster.submit({"job": "inverted_index", "input": {"text": words, "name": name}})
    expected = run_sequential("inverted_index", words.encode(), source=name)
    url = f"{cluster.url}/v1/jobs/{job['id']}/result"

    async def get(params: dict[str, str]) -> tuple[int, bytes, int | None]:
        async with cluster.session.get(url, params={"wait": "30", **params}) as response:
            return response.status, await response.read(), response.content_length

    answers = await asyncio.gather(*(get({}) for _ in range(10)), *(get({"top": "3"}) for _ in range(5)))
    results = cluster.master.app[RESULTS]
    assert results.encodes == 1  # not once per request
    held = results.get(job["id"])
    assert held is not None
    assert held.size < 1000 * (255 + 16)  # the bounded name bounds the result
    whole = [a for a in answers[:10]]
    assert {a[1] for a in whole} == {whole[0][1]} and all(a[0] == 200 for a in answers)
    body = json.loads(whole[0][1])
    assert body["result"] == expected and body["keys"] == 1000 and body["state"] == "done"
    assert whole[0][2] == len(whole[0][1]) < held.size + 200  # Content-Length: the held bytes and a short head
    top = json.loads(answers[10][1])["top"]
    assert len(top) == 3 and all(value == [name] for _, value in top)
    status, everything, _ = await get({"top": "999999999999"})  # the whole result, streamed a batch at a time
    assert status == 200
    order = get_job("inverted_index").top(expected, len(expected))
    assert json.loads(everything)["top"] == [[key, value] for key, value in order]
    assert results.encodes == 1 and results.held_bytes == held.size


async def test_held_results_stay_within_the_budget_and_the_oldest_answer_410(make_cluster: ClusterFactory) -> None:
    budget = 40_000
    cluster = await make_cluster(results_budget=budget, result_max=budget)
    results = cluster.master.app[RESULTS]
    jobs = []
    for j in range(4):
        text = " ".join(f"job{j}-word{i}" for i in range(800))  # about 16 KB of JSON each
        job = await cluster.submit({"input": {"text": text}})
        assert len(await cluster.result(job["id"])) == 800
        jobs.append(job["id"])
        assert results.held_bytes <= budget
    assert results.encodes == 4
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{jobs[0]}/result") as response:
        body = await response.json()
    assert response.status == 410, body
    assert body["error"] == "gone"
    assert "expired for memory" in body["message"] and f"within {budget} bytes (MR_RESULTS_BUDGET)" in body["message"]
    assert (await cluster.status(jobs[0]))["state"] == "done"  # the job did finish; only its result is gone
    assert len(await cluster.result(jobs[-1])) == 800


async def test_a_result_over_the_per_job_cap_fails_its_job(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(result_max=4096)
    text = " ".join(f"distinct{i}" for i in range(1000))  # about 15 KB of JSON
    job = await cluster.submit({"input": {"text": text}})
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "30"}) as response:
        body = await response.json()
    assert response.status == 409, body
    assert "more than the 4096 bytes one job may hold (MR_RESULT_MAX)" in body["message"]
    status = await cluster.status(job["id"])
    assert status["state"] == "failed" and "(MR_RESULT_MAX)" in status["error"]
    assert cluster.master.app[RESULTS].held_bytes == 0
    assert await cluster.run_text("small text small") == {"small": 2, "text": 1}


async def test_compute_answers_once_encoded_and_forgets_its_job(make_cluster: ClusterFactory,
                                                                  tmp_path: Path) -> None:
    """A /compute job is answered on its own request: encoded once, never held among the results, never journaled
    (its id is never handed out), and forgotten once answered, so a flood of them holds nothing on the master."""
    cluster = await make_cluster(state_dir=str(tmp_path / "state"))
    registry, results = cluster.master.app[REGISTRY], cluster.master.app[RESULTS]
    for _ in range(3):
        async with cluster.session.get(f"{cluster.url}/compute", params={"text": "a b a c a b"}) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json; charset=utf-8"
            assert await response.read() == b'{"a": 3, "b": 2, "c": 1}'  # top order, json.dumps' own spacing
    assert registry.jobs == {}
    assert (results.encodes, results.held_bytes) == (0, 0)
    job = await cluster.submit({"input": {"text": "x y x"}})  # a submitted job is still journaled and held
    assert await cluster.result(job["id"]) == {"x": 2, "y": 1}
    await registry.wait_cancelled(registry.get(job["id"]), timeout=10.0)  # its task ended: "ended" is queued
    journal = tmp_path / "state" / "jobs.journal"
    await eventually(lambda: journal.exists() and journal.read_text().count("\n") >= 2)
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [(entry["event"], entry["id"]) for entry in lines] == [("started", job["id"]), ("ended", job["id"])]
    assert results.encodes == 1


async def test_strings_with_lone_surrogates_are_refused_at_submit(make_cluster: ClusterFactory) -> None:
    """A name of "\\ud800" was accepted (202), then failed all 4 attempts with "cannot encode message"."""
    cluster = await make_cluster()
    for spec, what in [({"input": {"text": "a b", "name": "\ud800"}}, '"input.name"'),
                       ({"input": {"path": "x\ud800.txt"}}, '"input.path"'),
                       ({"input": {"url": "http://127.0.0.1:9/\udfff"}}, '"input.url"')]:
        status, body = await post_json(cluster, spec)
        assert status == 400, body
        assert f"{what} is not valid Unicode text" in body["message"], body
    # A parameter travels in every assignment: it was accepted, then failed all 4 attempts the same way.
    for params in [{"pattern": "a\ud800"}, {"\udfff": "a"}]:
        status, body = await post_json(cluster, {"job": "grep", "params": params, "input": {"text": "a b"}})
        assert status == 400, body
        assert "has a lone surrogate, which has no UTF-8 form" in body["message"], body
    assert cluster.master.app[REGISTRY].jobs == {}
    # A text travels as bytes: a lone surrogate in it counts as the oracle counts those bytes.
    text = "a \ud800 b a"
    expected = run_sequential("wordcount", text.encode("utf-8", "surrogatepass"))
    assert await cluster.run_text(text) == expected


async def test_compute_answers_503_when_its_job_fails(make_cluster: ClusterFactory) -> None:
    """A failed /compute job was a 500; the cluster could not serve it now: 503 with Retry-After and the error."""
    cluster = await make_cluster(result_max=1024)
    text = " ".join(f"w{i}" for i in range(300))  # a result of ~3.6 KB of JSON: the job fails (MR_RESULT_MAX)
    async with cluster.session.get(f"{cluster.url}/compute", params={"text": text}) as response:
        body = await response.json()
        assert response.status == 503, body
        assert body["error"] == "unavailable" and int(response.headers["Retry-After"]) >= 1
        assert "failed" in body["message"] and "(MR_RESULT_MAX)" in body["message"], body
    async with cluster.session.get(f"{cluster.url}/compute", params={"text": "a b a"}) as response:
        assert response.status == 200 and await response.json() == {"a": 2, "b": 1}


async def json_post(cluster: Cluster, body: bytes | io.BytesIO) -> tuple[int, dict[str, str], dict[str, Any]]:
    async with cluster.session.post(f"{cluster.url}/v1/jobs", data=body,
                                    headers={"Content-Type": "application/json"}) as response:
        return response.status, dict(response.headers), dict(await response.json())


async def test_json_text_is_held_within_the_text_budget(make_cluster: ClusterFactory) -> None:
    """/tmp/r1/json_mem.py: six 60 MB JSON texts of 4-byte characters took the master past its 1 GiB limit.

    A JSON body reserves what parsing it holds (4x its bytes for ASCII, 10x for 4-byte characters) in
    MR_TEXT_BUDGET before it is read; a held text keeps its bytes reserved until its job's input is dropped.
    """
    budget = 500_000
    cluster = await make_cluster(text_budget=budget, max_json=1 << 20)
    store = cluster.master.app[STORE]
    ascii_text = "word " * 20_000  # 100 KB: 400 KB to parse, within the budget
    status, _, body = await json_post(cluster, json.dumps({"input": {"text": ascii_text}}).encode())
    assert status == 202, body
    assert await cluster.result(body["id"]) == {"word": 20_000}
    wide = json.dumps({"input": {"text": "\U0001F600\U0001F600 " * 11_000}}, ensure_ascii=False).encode()
    status, _, body = await json_post(cluster, wide)  # 99 KB of 4-byte characters: 10x is past the budget
    assert status == 413, body
    assert "more than the 500000 bytes text inputs and JSON bodies may take (MR_TEXT_BUDGET)" in body["message"]
    # A body being received holds its reservation: a second one that does not fit now is told to come back.
    parts = urlsplit(cluster.url)
    _, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(f"POST /v1/jobs HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
                     f"Authorization: Bearer {TOKEN}\r\nContent-Length: 100000\r\n\r\n{{".encode())
        await writer.drain()
        await eventually(lambda: store.text_budget.used == 400_000)
        status, headers, body = await json_post(cluster, json.dumps({"input": {"text": "x " * 20_000}}).encode())
        assert status == 429, body
        assert "(MR_TEXT_BUDGET)" in body["message"] and int(headers["Retry-After"]) >= 1
    finally:
        writer.close()
    await eventually(lambda: store.text_budget.used == 0)
    assert await cluster.run_text("x " * 20_000) == {"x": 20_000}
    await eventually(lambda: store.text_budget.used == 0)  # the finished job's text is let go


@pytest.mark.parametrize("text", ["\U0001F600" * 1_000_000, "word " * 800_000 + "\U0001F600"],
                         ids=["4-byte-characters", "ascii-and-one-emoji"])
async def test_parsing_a_json_text_holds_no_more_than_it_reserves(make_cluster: ClusterFactory, text: str) -> None:
    """The fingerprint re-encoded the text as escaped JSON (12 bytes per 4-byte character) and its UTF-8 copy."""
    cluster = await make_cluster(split_size_floor=DEFAULTS.split_size_floor)
    # 4 MB, refused after it is parsed and fingerprinted (split_size 1), so no job runs beside the measurement.
    body = json.dumps({"input": {"text": text}, "split_size": 1}, ensure_ascii=False).encode()
    stream = io.BytesIO(body)  # sent in slices, not copied
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        status, _, answer = await json_post(cluster, stream)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert status == 400 and "(MR_SPLIT_SIZE_FLOOR)" in answer["message"], answer
    # What MR_TEXT_BUDGET reserved for it (parse_cost: (2 + 2 x 4) x its size) is what it held, with a little
    # slack for aiohttp's buffers.
    assert peak < 10 * len(body) + (1 << 20), (peak / len(body), len(body))
    assert cluster.master.app[STORE].text_budget.used == 0


@pytest.mark.parametrize("other", ["map", "run"])
async def test_a_report_whose_offsets_lie_fails_its_job_and_the_master_stays_up(
        make_cluster: ClusterFactory, monkeypatch: pytest.MonkeyPatch, other: str) -> None:
    """Lying peer offsets: reducer 0's run has a middle key ending past its key bytes (its last offset right).

    With reducer 1 reporting a map, the collector unpacked that run natively and read past the blob (a segfault
    for an offset near 2**32); with runs only, the merge refuses it. Either way the job fails naming the reducer,
    never ``done``, and the master goes on serving."""
    honest = reducer_app._reported

    def lying(ledger: Any, partition: Any, report: Report) -> Any:
        run = report.payload
        if report.partition == 0 and isinstance(run, Columns):
            ends = (2**32 - 16).to_bytes(4, "little") + run.ends[4:]
            report = replace(report, payload=replace(run, ends=ends))
        elif report.partition == 1 and isinstance(run, Columns) and other == "map":  # a reducer without the extension
            report = replace(report, payload=MapResult(dict(unpack_columns(run))))
        return honest(ledger, partition, report)

    monkeypatch.setattr(reducer_app, "_reported", lying)
    cluster = await make_cluster()
    text = " ".join(f"w{i}" for i in range(200))  # enough keys that each partition holds several
    job = await cluster.submit({"input": {"text": text}})
    await eventually(lambda: cluster.master.app[REGISTRY].get(job["id"]).state in ("done", "failed"))
    status = await cluster.status(job["id"])
    assert status["state"] == "failed", status
    if other == "map":
        assert "reducer 0 sent a malformed report: columns frame: key 0 ends at 4294967280" in status["error"], status
    else:
        assert "columns frame" in status["error"], status
    await healthz_answers(cluster)
    monkeypatch.setattr(reducer_app, "_reported", honest)
    assert await cluster.run_text(text) == run_sequential("wordcount", text.encode())


async def test_huge_unknown_names_are_not_echoed_whole(make_cluster: ClusterFactory,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A 4 MB unknown job, parameter or field name came back whole in the 400, and went whole into the log."""
    cluster = await make_cluster()
    huge = "n" * (4 * 1024 * 1024)
    specs = [
        ({"job": huge, "input": {"text": "a"}}, "unknown job 'nnnn"),
        ({"job": "wordcount", "params": {huge: "v"}, "input": {"text": "a"}}, "has no parameter nnnn"),
        ({"job": "wordcount", "params": {"lowercase": [huge]}, "input": {"text": "a"}}, "parameters are strings"),
        ({huge: 1, "input": {"text": "a"}}, "unknown fields 'nnnn"),
        ({"input": {"text": "a", huge: 1}}, "unknown input fields 'nnnn"),
        ({"input": {"paths": ["a"], huge: 1}}, "takes nothing else"),
    ]
    with caplog.at_level(logging.DEBUG):
        for spec, message in specs:
            status, _, body = await json_post(cluster, io.BytesIO(json.dumps(spec).encode()))
            assert status == 400, body["message"][:300]
            assert message in body["message"] and len(body["message"]) < 1000, body["message"][:300]
            if "characters)" in body["message"]:
                assert f"... ({len(huge)} characters)" in body["message"]
    longest = max(len(str(getattr(r, "fields", ""))) + len(r.getMessage()) for r in caplog.records)
    assert longest < 2000
    assert cluster.master.app[REGISTRY].jobs == {}
