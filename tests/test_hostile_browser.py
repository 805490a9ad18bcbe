"""Hostile web pages: a cross-origin page in a real (headless) browser, and DNS rebinding, against a master without
MR_API_TOKEN (the default of ``mapreduce local``). No job may be planted; the page and the API's own clients work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from actors.core.config import Settings
from actors.net.metrics import METRICS
from actors.net.origin import HostPolicy, host_name, host_policy

from .cdp import chromium, find_chromium
from .conftest import SHARED, Cluster, ClusterFactory, eventually
from .support import serve_app

OCTETS = {"Content-Type": "application/octet-stream"}
API_TOKEN = "browser-secret-51d0"


@pytest.fixture
def browser_path() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("chromium is missing: scripts/test.sh installs it (apt-get install chromium) when run as root")
    return path


async def job_ids(cluster: Cluster) -> list[str]:
    async with cluster.session.get(f"{cluster.url}/v1/jobs") as response:
        assert response.status == 200
        return [job["id"] for job in (await response.json())["jobs"]]


def refused_posts(cluster: Cluster) -> float:
    """How many POST /v1/jobs the master answered 403 (its metrics count every request by route and status)."""
    sample = cluster.master.app[METRICS].registry.get_sample_value(
        "mapreduce_http_requests_total", {"route": "/v1/jobs", "status": "403"})
    return sample or 0.0


async def post(cluster: Cluster, path: str = "/v1/jobs", **kwargs: Any) -> tuple[int, dict[str, Any]]:
    async with cluster.session.post(f"{cluster.url}{path}", **kwargs) as response:
        assert response.content_type == "application/json", await response.text()
        return response.status, await response.json()


# ---------------------------------------------------------------- a cross-origin page in a real browser


ATTACKER_PAGE = """<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="form" method="POST" target="sink" enctype="text/plain" action="{master}/v1/jobs?name=form">
<input name="hello world hello" value="world"></form>
<script>
fetch("{master}/v1/jobs?name=fetch", {{method: "POST", mode: "no-cors", body: "hello world"}})
  .then(() => {{ window.__fetched = "answered"; }}, () => {{ window.__fetched = "failed"; }})
  .finally(() => {{ document.getElementById("form").submit(); window.__submitted = true; }});
</script></body></html>"""


async def test_a_cross_origin_page_cannot_plant_a_job(make_cluster: ClusterFactory, browser_path: str,
                                                     tmp_path: Path) -> None:
    cluster = await make_cluster()
    page_app = web.Application()

    async def attacker(request: web.Request) -> web.Response:
        return web.Response(text=ATTACKER_PAGE.format(master=cluster.url), content_type="text/html")

    page_app.router.add_get("/", attacker)
    # 127.0.0.2 is loopback too, but another site to the browser: the page of any web server the user visits.
    async with serve_app(page_app, host="127.0.0.2") as attacker_url, chromium(browser_path, tmp_path) as page:
        await page.goto(f"{attacker_url}/")
        await page.wait_for("window.__submitted === true")
        # Both requests reached the master (a no-cors fetch and a form post) and were refused there.
        await eventually(lambda: refused_posts(cluster) >= 2, timeout=20)
    assert await job_ids(cluster) == []
    # The master itself is fine: its own API still takes a job.
    assert await cluster.run_text("to be or not to be") == {"to": 2, "be": 2, "or": 1, "not": 1}


# ---------------------------------------------------------------- the rules, request by request


@SHARED
async def test_dns_rebinding_host_is_misdirected_and_the_real_host_works(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    port = cluster.url.rsplit(":", 1)[1]
    for path in ("/", "/v1/jobs", "/v1/cluster"):
        async with cluster.session.get(f"{cluster.url}{path}", headers={"Host": f"attacker.example:{port}"}) as r:
            assert r.status == 421, path
            body = await r.json()
            assert body["error"] == "misdirected_request" and "MR_ALLOWED_HOSTS" in body["message"], body
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}", "master:8080"):
        async with cluster.session.get(f"{cluster.url}/v1/jobs", headers={"Host": host}) as r:
            assert r.status == 200, host


@SHARED
async def test_simple_writes_are_refused_and_say_what_to_send(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    before = await job_ids(cluster)
    # What a page can send with no preflight: no type, text/plain, a form (curl --data-binary sends a form type).
    for headers in ({}, {"Content-Type": "text/plain;charset=UTF-8"},
                    {"Content-Type": "application/x-www-form-urlencoded"},
                    {"Content-Type": "multipart/form-data; boundary=x"}):
        status, body = await post(cluster, data=b"hello world", headers={"Content-Type": "", **headers})
        assert status == 403, headers
        assert body["error"] == "forbidden" and "application/octet-stream" in body["message"], body
    assert await job_ids(cluster) == before
    status, body = await post(cluster, data=b"hello world", headers=OCTETS)
    assert status == 202, body
    # A bearer header cannot come from a page without a preflight either: it makes the write non-simple.
    status, body = await post(cluster, data=b"hello world",
                              headers={"Content-Type": "text/plain", "Authorization": "Bearer anything"})
    assert status == 202, body


@SHARED
async def test_cross_site_and_foreign_origin_writes_are_refused(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    before = await job_ids(cluster)
    spec = json.dumps({"input": {"text": "hello world"}})
    json_type = {"Content-Type": "application/json"}
    for headers in ({"Origin": "http://attacker.example"}, {"Origin": "null"},
                    {"Origin": "http://127.0.0.1:1"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"}):
        status, body = await post(cluster, data=spec, headers={**json_type, **headers})
        assert status == 403 and body["error"] == "forbidden", (headers, body)
    assert await job_ids(cluster) == before
    async with cluster.session.delete(f"{cluster.url}/v1/jobs/any", headers={"Origin": "http://x.example"}) as r:
        assert r.status == 403
    # A cross-site <img> or fetch to /compute plants work too; a person following a link is let through.
    async with cluster.session.get(f"{cluster.url}/compute", params={"text": "a"},
                                   headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}) as r:
        assert r.status == 403
    async with cluster.session.get(f"{cluster.url}/", headers={"Sec-Fetch-Site": "cross-site",
                                                               "Sec-Fetch-Mode": "navigate"}) as r:
        assert r.status == 200
    # The page's own origin, and a same-origin browser request, may write.
    own = {"Origin": cluster.url, "Sec-Fetch-Site": "same-origin"}
    status, body = await post(cluster, data=spec, headers={**json_type, **own})
    assert status == 202, body


async def test_a_valid_api_token_is_no_cross_site_request(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(api_token=API_TOKEN)
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    status, body = await post(cluster, data=b"hello world",
                              headers={"Content-Type": "text/plain", "Origin": "http://tool.example", **bearer})
    assert status == 202, body
    status, body = await post(cluster, data=b"hello world",
                              headers={"Content-Type": "text/plain", "Origin": "http://tool.example"})
    assert status == 403, body  # without the token the rules hold (and the token check would refuse it after)


def test_host_policy_defaults_and_setting() -> None:
    policy = host_policy(Settings(name="master-0", advertise_url="http://10.1.2.3:8080"))
    for name in ("127.0.0.1", "[::1]", "10.9.9.9", "localhost", "app.localhost", "master", "master-0",
                 "master.mapreduce.svc", "master.mapreduce.svc.cluster.local"):
        assert policy.allows(name), name
    for name in ("attacker.example", "127.0.0.1.nip.io", "localhost.attacker.example", "svc.attacker.example",
                 "master.default"):
        assert not policy.allows(name), name
    in_cluster = host_policy(Settings(discovery="dns", namespace="mapreduce"))
    assert in_cluster.allows("master.mapreduce") and not in_cluster.allows("master.other")
    given = host_policy(Settings(allowed_hosts=("mr.example.com", ".corp.example")))
    assert given.allows("mr.example.com") and given.allows("x.corp.example") and not given.allows("example.com")
    assert host_policy(Settings(allowed_hosts=("*",))).allows("anything.example")
    assert HostPolicy(frozenset(), ()).allows("8.8.8.8")
    assert [host_name(h) for h in ("A.Example.:80", "[::1]:8080", "x")] == ["a.example", "[::1]", "x"]
