"""Hostile URL inputs against real actors: a public host that redirects to a loopback secret (SSRF), and servers
that lie about byte ranges or change the object between the master's probe and the mappers' reads.

The scenario runs in a network namespace the test makes itself (``unshare --net``), whose only interface is ``lo``:
nothing can leave it. ``lo`` there also carries 192.0.0.9, an address the IANA registry calls globally reachable,
so a server on it is a "public" host to the address policy while everything stays inside the namespace.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from actors.inputs.urls import refusal

from .conftest import ClusterFactory
from .objectstore import ObjectStore
from .support import serve_app

PUBLIC = "192.0.0.9"
SECRET_WORD = "hunter2secret"
LEGIT_TEXT = ("the quick brown fox jumps over the lazy dog\n" * 700 + "über straße\n" * 300).encode()
SECRET_TEXT = (f"{SECRET_WORD} internal-only\n" * 2000).encode()
ROOT = Path(__file__).resolve().parent.parent


def _namespace_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to make a network namespace (unshare --net); CI runs as root"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is missing: cannot make an isolated network namespace"
    return None


def run_in_namespace() -> dict[str, Any]:
    """Run this module's scenario in a fresh network namespace; return what it observed."""
    setup = f"ip link set lo up && ip addr add {PUBLIC}/32 dev lo && exec {sys.executable} -m tests.test_hostile_urls"
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", setup], cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )
    assert done.returncode == 0, f"scenario failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def observed() -> dict[str, Any]:
    reason = _namespace_unavailable()
    if reason:
        pytest.skip(reason)
    return run_in_namespace()


def test_the_namespace_address_counts_as_public() -> None:
    # The scenario is only meaningful if the policy would let the "public" server through.
    assert refusal(ipaddress.ip_address(PUBLIC)) is None


def test_redirect_to_loopback_never_reaches_the_secret(observed: dict[str, Any]) -> None:
    redirect = observed["redirect"]
    assert observed["secret_hits"] == 0, "a mapper connected to the loopback service behind the redirect"
    assert SECRET_WORD not in json.dumps(redirect)
    assert redirect["state"] == "failed"
    assert "not a public address" in redirect["error"] and "MR_ALLOW_PRIVATE_URLS" in redirect["error"]


def test_redirect_on_the_size_probe_is_refused(observed: dict[str, Any]) -> None:
    probe = observed["head_redirect"]
    assert probe["status"] == 400, probe
    assert probe["body"]["error"] == "bad_input" and "answered HEAD with 302" in probe["body"]["message"]


def test_loopback_url_is_refused_at_submit(observed: dict[str, Any]) -> None:
    direct = observed["direct"]
    assert direct["status"] == 400, direct
    assert "not a public address" in direct["body"]["message"]


def test_public_url_still_counts_exactly(observed: dict[str, Any]) -> None:
    from actors.sequential import run_sequential

    legit = observed["legit"]
    assert legit["state"] == "done", legit
    assert legit["result"] == run_sequential("wordcount", LEGIT_TEXT)


# Servers that lie about ranges or change the object mid-job, on loopback (MR_ALLOW_PRIVATE_URLS=true: what is
# tested is the reads' pinning, not the address policy). Every one must fail the job naming the URL, never `done`.

PINNED_TEXT = b"".join(b"word%d shared%d common\n" % (i, i % 13) for i in range(4000))
EDITED_TEXT = PINNED_TEXT.replace(b"common", b"edited")  # the same size: only the version tells them apart


async def _run_url_job(make_cluster: ClusterFactory, store: ObjectStore) -> tuple[str, dict[str, Any]]:
    async with serve_app(store.app()) as base:
        url = f"{base}/object.txt"
        cluster = await make_cluster(allow_private_urls=True)
        job = await cluster.submit({"job": "wordcount", "input": {"url": url}, "split_size": 8192})
        async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "60"}) as r:
            body = await r.json()
        status = await cluster.status(job["id"])
    return url, {"state": status["state"], "error": status.get("error") or "", "result": body.get("result")}


async def test_a_correct_range_server_gives_the_exact_result_with_pinned_reads(make_cluster: ClusterFactory) -> None:
    from actors.sequential import run_sequential

    store = ObjectStore(PINNED_TEXT)
    _, outcome = await _run_url_job(make_cluster, store)
    assert outcome["state"] == "done", outcome
    assert outcome["result"] == run_sequential("wordcount", PINNED_TEXT)
    assert len(store.gets) > 2 and all(get.get("If-Match") == '"v1"' for get in store.gets)


async def test_a_server_answering_every_range_from_byte_0_fails_the_job(make_cluster: ClusterFactory) -> None:
    # Every split but the first would otherwise count the object's start again and skip its own lines: a result
    # of nearly the right size, reported as done.
    url, outcome = await _run_url_job(make_cluster, ObjectStore(PINNED_TEXT, lie_about_ranges=True))
    assert outcome["state"] == "failed", outcome
    assert f"input url {url} answered a read of bytes" in outcome["error"]
    assert "with Content-Range 'bytes 0-" in outcome["error"]


@pytest.mark.parametrize(("etag", "ignore_conditions", "new_version", "cause"), [
    ('"v1"', False, (EDITED_TEXT, '"v2"', ""), "answered 412 Precondition Failed"),
    ('"v1"', True, (EDITED_TEXT, '"v2"', ""), 'ETag "v1" then, "v2" now'),
    ("", True, (PINNED_TEXT + b"appended\n", "", ""), "answered a read of bytes"),  # no validator: the size tells
], ids=["conditional", "ignores-conditions", "no-validator"])
async def test_an_object_changing_after_the_probe_fails_the_job(
    make_cluster: ClusterFactory, etag: str, ignore_conditions: bool, new_version: tuple[bytes, str, str], cause: str,
) -> None:
    # The first mapper read gets the probed version, every later one the new version: a mix of two objects.
    store = ObjectStore(PINNED_TEXT, etag=etag, ignore_conditions=ignore_conditions, next_version=new_version,
                        change_after=1)
    url, outcome = await _run_url_job(make_cluster, store)
    assert outcome["state"] == "failed", outcome
    assert f"input url {url}" in outcome["error"] and cause in outcome["error"], outcome["error"]


async def test_an_object_stored_gzip_encoded_is_read_as_gzip(make_cluster: ClusterFactory) -> None:
    """An object store keeps an object uploaded with ``Content-Encoding: gzip`` as its gzip bytes and sends them
    with that header, whatever the client accepts; HEAD's length and every Content-Range count those bytes. The
    mappers decode no content coding, so they counted the gzip bytes as the text and the job said done."""
    from actors.sequential import run_sequential

    _, outcome = await _run_url_job(make_cluster, ObjectStore(gzip.compress(PINNED_TEXT), encoding="gzip"))
    assert outcome["state"] == "done", outcome
    assert outcome["result"] == run_sequential("wordcount", PINNED_TEXT)


async def test_an_object_in_a_content_coding_the_mappers_cannot_read_is_refused(make_cluster: ClusterFactory) -> None:
    store = ObjectStore(PINNED_TEXT, encoding="br")
    async with serve_app(store.app()) as base:
        cluster = await make_cluster(allow_private_urls=True)
        async with cluster.session.post(f"{cluster.url}/v1/jobs", json={"input": {"url": f"{base}/o.txt"}}) as r:
            body = await r.json()
    assert r.status == 400, body
    assert f"input url {base}/o.txt is sent with Content-Encoding 'br'" in body["message"], body
    assert not store.gets  # refused at the probe: no mapper read it


# The scenario itself, run as ``python -m tests.test_hostile_urls`` inside the namespace.


def _ranged(data: bytes, request: web.Request) -> web.Response:
    headers = {"Accept-Ranges": "bytes"}
    if request.method == "HEAD":
        return web.Response(headers={**headers, "Content-Length": str(len(data))})
    start, stop, _ = request.http_range.indices(len(data))
    if "Range" not in request.headers:
        return web.Response(body=data, headers=headers)
    if start >= len(data):
        return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
    return web.Response(body=data[start:stop], status=206,
                        headers={**headers, "Content-Range": f"bytes {start}-{stop - 1}/{len(data)}"})


async def _serve(app: web.Application, host: str) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    return runner, server.sockets[0].getsockname()[1]


async def scenario() -> dict[str, Any]:
    from tests.conftest import TOKEN, actor_settings, start_actor

    hits = 0

    async def secret(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return _ranged(SECRET_TEXT, request)

    secret_app = web.Application()
    secret_app.router.add_route("*", "/secret.txt", secret)
    secret_runner, secret_port = await _serve(secret_app, "127.0.0.1")
    inside = f"http://127.0.0.1:{secret_port}/secret.txt"

    async def redirecting(request: web.Request) -> web.Response:
        if request.method == "HEAD":  # looks like a fine ranged input to the master's size probe
            return _ranged(SECRET_TEXT, request)
        raise web.HTTPFound(inside)

    async def head_redirecting(request: web.Request) -> web.Response:
        raise web.HTTPFound(inside)

    async def legit(request: web.Request) -> web.Response:
        return _ranged(LEGIT_TEXT, request)

    public_app = web.Application()
    public_app.router.add_route("*", "/redirect.txt", redirecting)
    public_app.router.add_route("*", "/head-redirect.txt", head_redirecting)
    public_app.router.add_route("*", "/legit.txt", legit)
    public_runner, public_port = await _serve(public_app, PUBLIC)
    public = f"http://{PUBLIC}:{public_port}"

    actors = []
    observed: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as data_root:
        # Small splits so both mappers read the input; the policy is the default one (no MR_ALLOW_PRIVATE_URLS).
        common = {"split_size": 4096, "max_attempts": 2}
        try:
            reducers = [await start_actor(actor_settings("reducer", i, Path(data_root), **common)) for i in range(2)]
            reducer_urls = tuple(r.url for r in reducers)
            mappers = [await start_actor(actor_settings("mapper", i, Path(data_root), reducer_urls=reducer_urls,
                                                        **common)) for i in range(2)]
            master = await start_actor(actor_settings(
                "master", 0, Path(data_root), reducer_urls=reducer_urls, mapper_urls=tuple(m.url for m in mappers),
                **common))
            actors = [*reducers, *mappers, master]
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as client:

                async def submit(url: str) -> tuple[int, dict[str, Any]]:
                    spec = {"job": "wordcount", "input": {"url": url}}
                    async with client.post(f"{master.url}/v1/jobs", json=spec) as response:
                        return response.status, dict(await response.json())

                async def outcome(job_id: str) -> dict[str, Any]:
                    async with client.get(f"{master.url}/v1/jobs/{job_id}/result", params={"wait": "60"}) as r:
                        body = await r.json()
                    async with client.get(f"{master.url}/v1/jobs/{job_id}") as r:
                        state = await r.json()
                    return {"state": state["state"], "error": state.get("error") or "",
                            "result": body.get("result")}

                for name, url in (("legit", f"{public}/legit.txt"), ("redirect", f"{public}/redirect.txt")):
                    status, body = await submit(url)
                    assert status == 202, body
                    observed[name] = await outcome(body["id"])
                for name, url in (("head_redirect", f"{public}/head-redirect.txt"), ("direct", inside)):
                    status, body = await submit(url)
                    observed[name] = {"status": status, "body": body}
        finally:
            for actor in reversed(actors):
                await actor.runner.cleanup()
            await public_runner.cleanup()
            await secret_runner.cleanup()
    observed["secret_hits"] = hits
    return observed


if __name__ == "__main__":
    print(json.dumps(asyncio.run(scenario())))
