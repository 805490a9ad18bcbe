"""The status page: served without a token, its cluster view, and the page itself driven in headless Chromium."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from actors import __version__
from actors.discovery import Peer
from actors.master.page import FILES, STATIC, probe
from actors.net.actor import IDENTITY

from .cdp import chromium, find_chromium
from .conftest import Cluster, ClusterFactory, HeldInputFactory

API_TOKEN = "page-secret-9c1e77a4"
BEARER = {"Authorization": f"Bearer {API_TOKEN}"}
NONE = "\u2013"  # the page's "nothing here" dash
HOSTILE_NAME = '<img src=x onerror="window.__xss=1">&amp;'
TEXT = (Path(__file__).parents[1] / "data" / "genesis-kjv.txt").read_text(encoding="utf-8")
RESULT_MAX = 200_000  # Genesis's word counts fit; 20,000 distinct words do not, and fail their job


@pytest.fixture
def browser_path() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("chromium is missing: scripts/test.sh installs it (apt-get install chromium) when run as root")
    return path


# ---------------------------------------------------------------- served without a token, API still guarded


async def test_page_and_static_files_need_no_token_and_the_api_still_does(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(api_token=API_TOKEN)
    async with cluster.session.get(f"{cluster.url}/") as response:
        page = await response.text()
        assert response.status == 200
        assert response.content_type == "text/html"
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "form-action 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert 'src="static/page.js"' in page and API_TOKEN not in page
    for name, kind in FILES.items():
        async with cluster.session.get(f"{cluster.url}/static/{name}") as response:
            assert response.status == 200, name
            assert response.content_type == kind
            assert API_TOKEN not in await response.text()
    for path in ("/v1/jobs", "/v1/cluster", "/v1/cluster/actors"):
        async with cluster.session.get(f"{cluster.url}{path}") as response:
            assert response.status == 401, path
    async with cluster.session.get(f"{cluster.url}/v1/cluster/actors", headers=BEARER) as response:
        assert response.status == 200


@pytest.mark.parametrize("path", ["/static/../v1/jobs", "/static/%2e%2e/v1/jobs", "/static/..%2fv1%2fjobs",
                                  "/static/page.js/../../v1/jobs", "/static//v1/jobs", "/static/index.html",
                                  "/static/../page.py", "/static/%2e%2e%2fpage.py", "/static/"])
async def test_static_paths_never_open_the_api_or_other_files(make_cluster: ClusterFactory, path: str) -> None:
    cluster = await make_cluster(api_token=API_TOKEN)
    async with cluster.session.get(f"{cluster.url}{path}", allow_redirects=False) as response:
        body = await response.text()
        assert response.status in (401, 404), (path, response.status, body[:200])
        assert '"jobs"' not in body and "add_status_page" not in body
        assert json.loads(body)["error"] in ("unauthorized", "not_found")


def test_every_served_file_is_in_the_package() -> None:
    for name in [*FILES, "index.html"]:
        assert (STATIC / name).is_file(), name
    setup = (Path(__file__).parents[1] / "setup.cfg").read_text()
    assert "actors.master = static/*.html, static/*.js, static/*.css" in setup  # shipped as package data


@pytest.mark.parametrize("name", [name for name in FILES if name.endswith(".js")])
def test_the_scripts_never_write_markup(name: str) -> None:
    script = (STATIC / name).read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert "localStorage" not in script  # the token stays in this tab's sessionStorage


# ---------------------------------------------------------------- the cluster view


async def test_cluster_actors_shows_every_actor_ready_with_its_version(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster()
    async with cluster.session.get(f"{cluster.url}/v1/cluster/actors") as response:
        view = await response.json()
    assert view["version"] == __version__
    rows = {(a["role"], a["name"]): a for a in view["actors"]}
    assert set(rows) == {("master", "master-0"), ("mapper", "mapper-0"), ("mapper", "mapper-1"),
                         ("reducer", "reducer-0"), ("reducer", "reducer-1")}
    for actor in rows.values():
        assert actor["ready"] is True and actor["status"] == "ready" and actor["version"] == __version__, actor
    incarnations = {a["incarnation"] for a in rows.values()}
    assert len(incarnations) == 5
    assert {a["restarts"] for a in rows.values()} == {0}
    assert rows["reducer", "reducer-1"]["incarnation"] == cluster.reducers[1].app[IDENTITY].incarnation


async def test_the_page_shows_how_often_an_actor_was_restarted(
        make_cluster: ClusterFactory, browser_path: str, tmp_path: Path) -> None:
    cluster = await make_cluster()
    # What MR_RESTARTS, set by the local cluster's supervisor, gives a restarted actor.
    cluster.mappers[1].app[IDENTITY].restarts = 2
    cluster.reducers[0].app[IDENTITY].restarts = 1
    async with cluster.session.get(f"{cluster.url}/v1/cluster/actors") as response:
        shown = {a["name"]: a["restarts"] for a in (await response.json())["actors"]}
    assert shown == {"master-0": 0, "mapper-0": 0, "mapper-1": 2, "reducer-0": 1, "reducer-1": 0}
    async with chromium(browser_path, tmp_path) as page:
        await page.goto(f"{cluster.url}/")
        await page.wait_for("document.getElementById('cluster').textContent.includes('reducer-1')")
        items = await page.evaluate("Object.fromEntries([...document.querySelectorAll('#cluster li')]"
                                    ".map(li => [li.childNodes[1].textContent, li.textContent]))")
        assert items["mapper-1"].endswith(" restarted 2 times"), items
        assert items["reducer-0"].endswith(" restarted once"), items
        assert [name for name, text in items.items() if "restarted" in text] == ["mapper-1", "reducer-0"], items
        shot = await page.screenshot(tmp_path / "restarts.png")
        print(f"status page screenshot: {shot}")
        assert page.script_errors() == []


async def test_cluster_actors_reports_a_stopped_and_a_draining_peer_as_not_ready(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster()
    cluster.mappers[0].app[IDENTITY].draining = True
    await cluster.reducers[1].runner.cleanup()
    async with cluster.session.get(f"{cluster.url}/v1/cluster/actors") as response:
        assert response.status == 200
        rows = {a["name"]: a for a in (await response.json())["actors"]}
    assert rows["mapper-0"]["ready"] is False and rows["mapper-0"]["status"] == "draining"
    assert rows["reducer-1"]["ready"] is False and rows["reducer-1"]["status"].startswith("unreachable: ")
    assert rows["reducer-0"]["ready"] is True and rows["mapper-1"]["ready"] is True


async def test_a_peer_that_answers_nonsense_or_never_is_not_ready(aiohttp_server: Any) -> None:
    never = asyncio.Event()

    async def huge(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"[" * 100_000)  # deeper than any JSON decoder goes, and past the read cap

    async def text(request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    async def listed(request: web.Request) -> web.StreamResponse:
        return web.json_response(["ready"])

    async def draining(request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "draining"}, status=503)

    async def slow(request: web.Request) -> web.StreamResponse:
        await never.wait()  # never answers: the probe's own timeout must end the wait
        return web.Response()

    app = web.Application()
    app.router.add_get("/huge/readyz", huge)
    app.router.add_get("/text/readyz", text)
    app.router.add_get("/list/readyz", listed)
    app.router.add_get("/draining/readyz", draining)
    app.router.add_get("/slow/readyz", slow)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    timeout = aiohttp.ClientTimeout(total=0.5)
    async with aiohttp.ClientSession() as session:
        rows = {path: await probe(session, Peer(0, "mapper", "mapper-0", f"{base}/{path}"), timeout)
                for path in ("huge", "text", "list", "draining", "slow")}
        closed = await probe(session, Peer(1, "reducer", "reducer-1", "http://127.0.0.1:9"), timeout)
    for path in ("huge", "text", "list"):
        assert rows[path]["ready"] is False and "not an actor's /readyz answer" in rows[path]["status"], rows[path]
    assert rows["draining"]["ready"] is False and rows["draining"]["status"] == "draining"
    assert rows["slow"]["ready"] is False and rows["slow"]["status"].startswith("unreachable: ")
    assert closed["ready"] is False and closed["status"].startswith("unreachable: ")
    assert closed["name"] == "reducer-1" and closed["role"] == "reducer"


# ---------------------------------------------------------------- per-reducer partitions in the job status


async def test_status_lists_each_partition_with_its_reducer(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=2, reducers=3)
    job = await cluster.submit({"input": {"text": TEXT}})
    assert job["partition_status"] == [] or all(p["state"] in ("waiting", "receiving") for p in
                                                job["partition_status"])
    await cluster.result(job["id"])
    status = await cluster.status(job["id"])
    assert status["partition_status"] == [
        {"partition": i, "reducer": f"reducer-{i}", "state": "reported", "recoveries": 0} for i in range(3)]


# ---------------------------------------------------------------- the page in a real browser


async def _submit_upload(cluster: Cluster, text: str, name: str, headers: dict[str, str] | None = None,
                         split_size: int = 16384) -> str:
    params = {"name": name, "split_size": str(split_size)}
    headers = {"Content-Type": "application/octet-stream", **(headers or {})}
    async with cluster.session.post(f"{cluster.url}/v1/jobs", params=params, data=text.encode(),
                                    headers=headers) as response:
        body = await response.json()
        assert response.status == 202, body
        return str(body["id"])


def _row(job_id: str) -> str:
    return f"document.querySelector('tr[data-job-id=\"{job_id}\"]')"


async def test_the_page_follows_a_job_to_done_and_shows_a_failed_jobs_error(
        make_cluster: ClusterFactory, browser_path: str, tmp_path: Path) -> None:
    cluster = await make_cluster(result_max=RESULT_MAX)  # a larger result fails its job: a real failure to show
    async with chromium(browser_path, tmp_path) as page:
        await page.goto(f"{cluster.url}/")
        await page.wait_for("document.getElementById('cluster').textContent.includes('reducer-1')")
        cluster_text = await page.text("#cluster")
        assert "Mappers 2/2 ready" in cluster_text and "Reducers 2/2 ready" in cluster_text
        assert f"v{__version__}" in cluster_text
        assert await page.evaluate("!document.getElementById('no-jobs').hidden")

        done_id = await _submit_upload(cluster, TEXT, HOSTILE_NAME)
        await page.wait_for(f"{_row(done_id)} !== null")  # the submitted job appears
        await page.evaluate(f"{_row(done_id)}.click()")
        await page.wait_for("document.getElementById('detail-state').textContent === 'done'", timeout=60)
        await page.wait_for("document.getElementById('top-words') !== null")
        expected = Counter(TEXT.split()).most_common(3)
        top_rows = await page.evaluate(
            "[...document.querySelectorAll('#top-words tbody tr')].map(r => [...r.cells].map(c => c.textContent))")
        assert [(key, int(value)) for _, key, value in top_rows[:3]] == expected
        await page.wait_for(f"{_row(done_id)}.textContent.includes('done')")  # the list may be a tick behind
        row_text = await page.evaluate(f"{_row(done_id)}.textContent")
        status = await cluster.status(done_id)
        total = status["progress"]["splits_total"]
        assert total > 3 and f"{total}/{total} splits" in row_text and "done" in row_text
        assert HOSTILE_NAME in row_text  # shown as text ...
        assert await page.evaluate("window.__xss === undefined && document.querySelectorAll('main img').length === 0")
        counts = await page.text("#split-counts")
        assert f"done {total}" in counts and "failed 0" in counts
        partitions = await page.evaluate(
            "[...document.querySelectorAll('#partitions tbody tr')].map(r => [...r.cells].map(c => c.textContent))")
        assert partitions == [["0", "reducer-0", "reported", NONE], ["1", "reducer-1", "reported", NONE]]

        failed_id = await _submit_upload(cluster, " ".join(f"distinct{i}" for i in range(20_000)), "big.txt",
                                        split_size=65536)
        await page.wait_for(f"{_row(failed_id)} !== null && {_row(failed_id)}.textContent.includes('failed')",
                            timeout=60)
        error = (await cluster.status(failed_id))["error"]
        assert "(MR_RESULT_MAX)" in error
        assert error[:100] in await page.evaluate(f"{_row(failed_id)}.textContent")
        await page.evaluate(f"{_row(failed_id)}.click()")
        await page.wait_for(f"(document.getElementById('detail-error') || {{}}).textContent === {json.dumps(error)}")
        assert await page.text("#detail-state") == "failed"

        await page.evaluate(f"{_row(done_id)}.click()")
        await page.wait_for("document.getElementById('top-words') !== null")
        shot = await page.screenshot(tmp_path / "status-page.png")
        print(f"status page screenshot: {shot}")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        polled = [u for u in page.requested_urls() if f"/v1/jobs/{done_id}" in u and "/result" not in u]
        # A finished job stops being polled: a few fetches while it ran and once done, not one per tick since.
        updated = json.dumps(await page.text("#updated"))
        await page.wait_for(f"document.getElementById('updated').textContent !== {updated}", timeout=10)
        again = [u for u in page.requested_urls() if f"/v1/jobs/{done_id}" in u and "/result" not in u]
        assert len(again) == len(polled)
        assert page.script_errors() == []


async def test_with_an_api_token_the_page_asks_for_it_and_never_puts_it_in_a_url(
        make_cluster: ClusterFactory, browser_path: str, tmp_path: Path) -> None:
    cluster = await make_cluster(api_token=API_TOKEN)
    job_id = await _submit_upload(cluster, TEXT, "tokened.txt", BEARER)
    async with chromium(browser_path, tmp_path) as page:
        await page.goto(f"{cluster.url}/")
        await page.wait_for("!document.getElementById('login').hidden")
        assert await page.evaluate("document.getElementById('content').hidden")
        assert job_id not in await page.evaluate("document.body.innerText")

        async def enter(token: str) -> None:
            await page.evaluate("document.getElementById('token-input').focus()")
            await page.call("Input.insertText", text=token)  # typed, as a person would
            await page.evaluate("document.querySelector('#token-form button').click()")

        await enter("not-the-token")
        await page.wait_for("document.getElementById('login-error').textContent.includes('refused')")
        await enter(API_TOKEN)
        await page.wait_for(f"{_row(job_id)} !== null && {_row(job_id)}.textContent.includes('done')", timeout=60)
        assert await page.evaluate(f"sessionStorage.getItem('mapreduce-api-token') === {json.dumps(API_TOKEN)}")
        assert await page.evaluate("localStorage.length") == 0
        assert await page.evaluate("location.href") == f"{cluster.url}/"
        urls = page.requested_urls()
        assert any("/v1/jobs" in u for u in urls)
        assert not [u for u in urls if API_TOKEN in u or "not-the-token" in u]
        sent = [h.get("Authorization") for u, h in page.request_headers() if "/v1/" in u]
        assert f"Bearer {API_TOKEN}" in sent
        static = [h for u, h in page.request_headers() if "/static/" in u]
        assert static and not any("Authorization" in h for h in static)  # the page's own files go without it
        assert page.script_errors() == []


# ---------------------------------------------------------------- the timeline, and a failed split's cause


def _bars(selector: str = "#timeline rect.attempt") -> str:
    return (f"[...document.querySelectorAll({json.dumps(selector)})].map(r => ({{split: +r.dataset.split, "
            "attempt: +r.dataset.attempt, mapper: r.dataset.mapper, outcome: r.dataset.outcome, "
            "backup: r.dataset.backup === 'true', straggler: r.dataset.straggler === 'true', "
            "x: +r.getAttribute('x'), width: +r.getAttribute('width')}))")


async def test_the_timeline_draws_every_attempt_per_mapper_with_backups_stragglers_and_failures(
        make_cluster: ClusterFactory, held_input: HeldInputFactory, browser_path: str, tmp_path: Path) -> None:
    cluster = await make_cluster(mappers=3, reducers=2, allow_private_urls=True, backup_tasks=True,
                                 backup_after=0.5)
    source = await held_input(TEXT.encode())
    source.hold_next_read(0, 0)  # split 0's first reader stalls: a straggler, raced by a backup on the other mapper
    job = await cluster.submit({"input": {"url": source.url}, "split_size": 16384})
    await cluster.result(job["id"])
    source.release_all()
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}", params={"splits": "all",
                                                                                "limit": "1000"}) as response:
        listing = (await response.json())["splits"]
    attempts = [(s["split"], a) for s in listing["items"] for a in s["attempts"]]
    (backup,) = [(split, a) for split, a in attempts if a["backup"]]
    assert backup[0] == 0 and backup[1]["outcome"] == "ok", attempts
    original = next(a for split, a in attempts if split == 0 and a["attempt"] == 1)
    assert original["outcome"] == "superseded" and original["straggler"] and original["mapper"] != backup[1]["mapper"]
    assert original["seconds"] > listing["straggler_after"] >= 0.5

    packed = gzip.compress(os.urandom(20_000))
    async with cluster.session.post(f"{cluster.url}/v1/jobs", params={"name": "cut.gz"}, data=packed[:len(packed) // 2],
                                    headers={"Content-Type": "application/octet-stream"}) as response:
        failed_id = (await response.json())["id"]

    async with chromium(browser_path, tmp_path, width=1280, height=1000) as page:
        await page.goto(f"{cluster.url}/#job={job['id']}")
        await page.wait_for(f"document.querySelectorAll('#timeline rect.attempt').length === {len(attempts)}",
                            timeout=60)
        bars = await page.evaluate(_bars())
        lanes = await page.evaluate("[...document.querySelectorAll('#timeline .lane-name')].map(t => t.textContent)")
        assert lanes == ["mapper-0", "mapper-1", "mapper-2"]
        assert sorted((b["split"], b["attempt"], b["mapper"], b["outcome"], b["backup"], b["straggler"])
                      for b in bars) == sorted((split, a["attempt"], a["mapper"], a["outcome"], a["backup"],
                                                a["straggler"]) for split, a in attempts)
        drawn = {(b["split"], b["attempt"]): b for b in bars}
        first, raced = drawn[0, 1], drawn[0, backup[1]["attempt"]]
        assert raced["x"] > first["x"] and first["x"] + first["width"] >= raced["x"] + raced["width"] - 1
        flags = await page.evaluate("[...document.querySelectorAll('#timeline .straggler-flag')]"
                                    ".map(f => [+f.dataset.split, +f.dataset.attempt])")
        assert [0, 1] in flags and len(flags) == sum(1 for _, a in attempts if a["straggler"])
        assert await page.evaluate("document.querySelector('#timeline rect.backup').dataset.split") == "0"
        legend = await page.text(".timeline-legend")
        assert "backup attempt" in legend and "straggler" in legend and "superseded" in legend
        await page.evaluate("document.getElementById('timeline').scrollIntoView()")
        shot = await page.screenshot(tmp_path / "timeline.png", selector="#timeline-section")  # docs/timeline.png
        print(f"timeline screenshot: {shot}")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        await page.wait_for(f"{_row(failed_id)} !== null && {_row(failed_id)}.textContent.includes('failed')",
                            timeout=60)
        await page.evaluate(f"{_row(failed_id)}.click()")
        await page.wait_for("(document.getElementById('failed-splits') || {}).textContent !== undefined", timeout=30)
        counts = await page.text("#split-counts")
        assert "failed 1" in counts and "running 0" in counts, counts
        causes = await page.evaluate("[...document.querySelectorAll('#failed-splits .cause')].map(c => c.textContent)")
        # On a loaded machine a backup of the slow split may have started: the job's end cuts it short, and it
        # is listed as such, never as a second cause of its own.
        refused = [cause for cause in causes if "gzip input 'cut.gz' is truncated" in cause]
        assert len(refused) == 1 and all(c in refused or "the job ended while it ran" in c for c in causes), causes
        await page.wait_for("document.querySelector('#timeline rect.attempt') !== null")
        outcomes = [b["outcome"] for b in await page.evaluate(_bars())]
        assert outcomes.count("failed") == 1 and len(outcomes) == len(causes), (outcomes, causes)
        shot = await page.screenshot(tmp_path / "failed-split.png", selector="#detail-section")
        print(f"failed split screenshot: {shot}")
        assert page.script_errors() == []
