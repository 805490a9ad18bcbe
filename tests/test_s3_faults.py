"""A reducer killed in the middle of uploading its part to s3://, restarted, and its partition redone: the output is
still exactly the oracle's, published once, and the killed upload left nothing. Real processes (a local cluster),
a real S3 server (moto's), and between them a proxy on loopback that holds the first upload of partition 1 open
until the reducer making it is killed."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from actors.local import LocalCluster
from actors.sequential import run_sequential_inputs
from tests.s3server import S3Server
from tests.support import DRILL_ENV
from tests.test_inputs import document
from tests.test_s3_outputs import read_output

BUCKET = "faults"
_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection", "content-encoding"})


class HoldingProxy:
    """Forwards every request to the S3 server, except the first PUT whose path holds ``hold``: that one is read
    whole and never answered (the upload is in flight when its client dies)."""

    def __init__(self, target: str, hold: str) -> None:
        self.target = target
        self.hold = hold
        self.held = asyncio.Event()
        self.forwarded: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.method == "PUT" and self.hold in request.path and not self.held.is_set():
            self.held.set()
            await asyncio.Event().wait()  # ends when the client's connection drops (its handler is cancelled)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with aiohttp.ClientSession(auto_decompress=False) as session, session.request(
                request.method, self.target + request.path_qs, headers=headers, data=body,
                allow_redirects=False) as answer:
            data = await answer.read()
            self.forwarded.append(f"{request.method} {request.path}")
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
            if request.method == "HEAD":  # no body, but the object's length, which a HEAD exists to tell
                kept["Content-Length"] = answer.headers.get("Content-Length", "0")
                return web.Response(status=answer.status, headers=kept)
            return web.Response(status=answer.status, body=data, headers=kept)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3faults")) as server:
        yield server


async def test_a_reducer_killed_mid_upload_is_redone_and_its_upload_leaves_nothing(s3: S3Server,
                                                                                  tmp_path: Path) -> None:
    texts = {f"in/{i}.txt": document(60 + i, 400) for i in range(3)}
    for key, data in texts.items():
        s3.put(BUCKET, key, data)
    proxy = HoldingProxy(s3.endpoint, "/part-00001-")
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    env = {**DRILL_ENV, **s3.environment(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "MR_MAX_ATTEMPTS": "3",
           "MR_REDUCER_COUNT": "2", "MR_TIMEOUT_RECOVERY": "60", "MR_BACKUP_TASKS": "false"}
    try:
        async with LocalCluster(mappers=2, reducers=2, discovery="static", data_root=str(tmp_path), extra_env=env,
                                log_dir=f"{tmp_path}/logs", restarts=None) as cluster, \
                aiohttp.ClientSession(base_url=cluster.master_url,
                                      timeout=aiohttp.ClientTimeout(total=120)) as http:
            spec = {"input": {"uris": [f"s3://{BUCKET}/in/"]}, "output": {"path": f"s3://{BUCKET}/out/"}}
            async with http.post("/v1/jobs", json=spec) as response:
                job = await response.json()
                assert response.status == 202, job
            async with asyncio.timeout(60):
                await proxy.held.wait()  # reducer 1 is uploading its part, and will never hear back
            cluster.signal("reducer-1", signal.SIGKILL)
            await cluster.restart("reducer-1")
            async with http.get(f"/v1/jobs/{job['id']}/result", params={"wait": "90"}) as response:
                body = await response.json()
            assert response.status == 200, body["message"]
            async with http.get(f"/v1/jobs/{job['id']}") as response:
                status = await response.json()
        assert {r["partition"] for r in status["recoveries"]} == {1}  # the restarted reducer's partition, redone
        manifest, entries = read_output(s3, "out/", BUCKET)
        assert entries == run_sequential_inputs("wordcount", sorted(texts.items()))
        assert manifest["parts"] == ["part-00000.jsonl", "part-00001.jsonl"]
        # The killed upload never reached the store, the redone one was published, and no attempt is left.
        assert sorted(s3.keys(BUCKET, "out/")) == ["out/_SUCCESS", "out/part-00000.jsonl", "out/part-00001.jsonl"]
        assert sum("/part-00001-" in line and line.startswith("PUT") for line in proxy.forwarded) == 1
    finally:
        await runner.cleanup()
