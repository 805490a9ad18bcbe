"""The input store: uploads spooled at once stay within MR_UPLOAD_BUDGET, and a refused one leaves nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from actors.master.keys import STORE

from .conftest import ClusterFactory, eventually
from .test_master import UPLOAD, assert_error


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
