"""The master's public API: every bad input gets a 4xx naming the problem, and the next good job is still exact."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .conftest import Cluster, ClusterFactory, HeldInputFactory

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
    ({"json": {"input": {"text": "a"}, "extra": 1}}, 400, "unknown fields"),
    ({"json": {"input": {"path": "../secret.txt"}}}, 400, "without '..'"),
    ({"json": {"input": {"path": "/etc/passwd"}}}, 400, "relative to the data root"),
    ({"json": {"input": {"path": "missing.txt"}}}, 400, "not a readable file"),
    ({"json": {"input": {"path": "escape"}}}, 400, "leaves the data root"),
    ({"json": {"input": {"url": "file:///etc/passwd"}}}, 400, "must be an absolute http(s) URL"),
    ({"json": {"input": {"url": "http://127.0.0.1:1/x"}}}, 400, "non-public address"),
    ({"json": {"input": {"url": "http://169.254.169.254/latest"}}}, 400, "non-public address"),
]


@pytest.mark.parametrize(("kwargs", "status", "message"), BAD_SUBMISSIONS,
                         ids=[case[2] for case in BAD_SUBMISSIONS])
async def test_bad_submissions_are_refused_clearly(
    make_cluster: ClusterFactory, data_root: Path, kwargs: dict[str, Any], status: int, message: str
) -> None:
    outside = data_root.parent / "secret.txt"
    outside.write_text("secret words")
    os.symlink(outside, data_root / "escape")
    cluster = await make_cluster()
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
async def test_unknown_job_ids_get_404(make_cluster: ClusterFactory, method: str, suffix: str) -> None:
    cluster = await make_cluster()
    await assert_error(cluster, method, f"/v1/jobs/nosuchjob{suffix}", 404, "unknown job id 'nosuchjob'")
    assert await cluster.run_text(GOOD_TEXT) == GOOD_RESULT


async def test_bad_query_parameters(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster()
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


async def test_idempotency_key_returns_the_same_job(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster()
    headers = {"Idempotency-Key": "nightly-42"}
    first = await cluster.submit({"input": {"text": GOOD_TEXT}}, headers=headers)
    async with cluster.session.post(f"{cluster.url}/v1/jobs", json={"input": {"text": GOOD_TEXT}},
                                    headers=headers) as response:
        again = await response.json()
    assert response.status == 200
    assert again["id"] == first["id"]
    assert await cluster.result(first["id"]) == GOOD_RESULT


async def test_internal_routes_need_the_cluster_token(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster()
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
