"""The master's public API: every bad input gets a 4xx naming the problem, and the next good job is still exact."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import SHARED, Cluster, ClusterFactory

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


