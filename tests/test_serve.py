"""Serving an actor: SIGTERM drains under ONE deadline (MR_TIMEOUT_DRAIN) and exits 0 — measured on real processes.

Each test stalls the actor's work for real (a SIGSTOPped mapper, an input server that stops sending, a shuffle
stream that never commits), SIGTERMs the actor and times its exit. Kubernetes SIGKILLs a pod that outlives its
terminationGracePeriodSeconds, so "within the budget plus a small margin" is the contract, not a nicety.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from actors.core import wire
from actors.core.messages import Assignment, Data, StreamHeader, to_wire
from actors.local import LocalCluster
from actors.net.drain import Drain, drain_middleware, reserve

from .conftest import eventually

pytestmark = pytest.mark.timeout(120)

DRAIN = 4.0  # MR_TIMEOUT_DRAIN for these actors: small, so old code's 2x-3x overrun shows plainly
MARGIN = 2.5  # a process needs a moment to end after its deadline; far less than the overrun being caught
TOKEN = "serve-test-token"
# Every other wait is long, so only the drain deadline can end the stalled work.
SLOW = {"MR_TIMEOUT_DRAIN": str(DRAIN), "MR_TIMEOUT_STREAM_IDLE": "120", "MR_TIMEOUT_REQUEST": "120",
        "MR_TIMEOUT_LEASE": "120", "MR_TIMEOUT_STAGE_WAIT": "120", "MR_TIMEOUT_PEERS": "10"}


# ---------------------------------------------------------------- the budget, pure


def test_the_budget_keeps_a_reserve_for_stopping() -> None:
    assert reserve(20.0) == 4.0 and reserve(5.0) == 1.0
    assert reserve(2.0) == 0.5  # at least half a second ...
    assert reserve(0.4) == 0.2  # ... but never more than half a tiny budget
    assert reserve(100.0) == 5.0  # and never more than 5 s
    drain = Drain(20.0)
    drain.begin(1000.0)
    drain.begin(1005.0)  # a second signal does not move the deadline
    assert (drain.stop_at, drain.cancel_by, drain.deadline) == (1016.0, 1017.0, 1020.0)


# ---------------------------------------------------------------- real processes


def actor_env(role: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    env.update({"TYPE": role, "MR_NAME": f"{role}-0", "MR_HOST": "127.0.0.1", "MR_PORT": "0", "MR_TOKEN": TOKEN,
                "MR_DISCOVERY": "static", "MR_STATE_DIR": str(tmp_path / "state"),
                "MR_SPOOL_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1", **SLOW, **extra})
    return env


@contextlib.asynccontextmanager
async def actor_process(env: dict[str, str], log_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """One ``python -m actors serve`` process; yields it and its URL once it announced readiness on its pipe."""
    read_end, write_end = os.pipe()
    with open(log_path, "ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "actors", "serve", env={**env, "MR_READY_FD": str(write_end)},
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT, pass_fds=(write_end,),
            start_new_session=True)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as pipe:
            line = await asyncio.wait_for(asyncio.to_thread(pipe.readline), 30)
        assert line, f"the actor exited before it was ready:\n{log_path.read_text()}"
        yield process, json.loads(line)["url"]
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def sigterm_exit(process: asyncio.subprocess.Process) -> tuple[int, float]:
    """SIGTERM, as the kubelet sends it; the exit code and the seconds until the process was gone."""
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(process.wait(), DRAIN * 4 + 20)
    print(f"exit after SIGTERM: {time.monotonic() - began:.2f} s")
    return code, time.monotonic() - began


def events(log_path: Path) -> list[str]:
    names = []
    for text in log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            names.append(json.loads(text).get("event", ""))
    return names


async def test_master_with_a_running_job_and_a_long_poll_exits_within_the_budget(tmp_path: Path) -> None:
    async with LocalCluster(mappers=1, reducers=1, discovery="static", extra_env={**SLOW, "MR_TIMEOUT_STARTUP": "30"},
                            log_dir=str(tmp_path / "logs")) as cluster, aiohttp.ClientSession(
        base_url=cluster.master_url, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        # The launcher told every actor the reducer count and waited for the master's /readyz, not /healthz.
        assert {a.name: a.env["MR_REDUCER_COUNT"] for a in cluster.actors} == dict.fromkeys(
            ["reducer-0", "mapper-0", "master-0"], "1")
        async with session.get("/readyz") as response:
            assert response.status == 200, await response.text()
        cluster.signal("mapper-0", signal.SIGSTOP)  # the job's only mapper takes its split and never answers
        async with session.post("/v1/jobs", json={"input": {"text": "a slow job " * 1000}}) as response:
            job = await response.json()
            assert response.status == 202, job

        async def long_poll() -> tuple[int, dict[str, Any]]:
            async with session.get(f"/v1/jobs/{job['id']}/result", params={"wait": "600"}) as response:
                return response.status, await response.json()

        poll = asyncio.create_task(long_poll())
        async with session.get(f"/v1/jobs/{job['id']}") as response:
            assert (await response.json())["state"] in ("queued", "running")
        master = cluster.master.process
        assert master is not None
        exiting = asyncio.create_task(sigterm_exit(master))
        log_path = tmp_path / "logs" / "master.log"
        await eventually(lambda: "actor_draining" in events(log_path), DRAIN)  # another process's log
        # Draining: still serving, but no new job and not ready.
        async with session.get("/compute", params={"text": "too late"}) as response:
            refused = await response.json()
            assert response.status == 503 and "shutting down" in refused["message"], refused
        async with session.get("/readyz") as response:
            assert response.status == 503 and (await response.json())["status"] == "draining"
        code, seconds = await exiting
        assert code == 0, cluster.logs()
        assert seconds <= DRAIN + MARGIN, f"exit took {seconds:.1f} s for a {DRAIN:g} s budget\n{cluster.logs()}"
        # The long-poll was answered, not left hanging or cut: its job was cancelled at the deadline.
        status, body = await asyncio.wait_for(poll, 10)
        assert status == 409 and "shut down" in body["message"], body
    assert "actor_stopped" in events(tmp_path / "logs" / "master.log")


async def test_mapper_mid_split_exits_within_the_budget(tmp_path: Path) -> None:
    reading = asyncio.Event()
    release = asyncio.Event()

    async def stalling_input(request: web.Request) -> web.StreamResponse:
        """Serve the first lines of the split, then stop sending (a stalled input or network)."""
        response = web.StreamResponse(status=200)
        response.content_length = 10_000_000
        await response.prepare(request)
        await response.write(b"some words to map\n" * 1000)
        reading.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                await release.wait()
        return response

    app = web.Application()
    app.router.add_get("/input", stalling_input)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    log_path = tmp_path / "mapper.log"
    try:
        env = actor_env("mapper", tmp_path, MR_REDUCERS="http://127.0.0.1:9")
        async with actor_process(env, log_path) as (mapper, url), aiohttp.ClientSession() as session:
            assignment = Assignment(job="j1", epoch=1, split=0, attempt=1, job_name="wordcount",
                                    input_kind="served", input_location=f"http://127.0.0.1:{port}/input",
                                    input_name="input", start=0, end=10_000_000, partitions=1,
                                    only_partitions=[])

            async def assign() -> None:
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.post(f"{url}/internal/v1/assign", data=wire.encode(to_wire(assignment)),
                                            headers={"Authorization": f"Bearer {TOKEN}",
                                                     "Content-Type": "application/cbor"}) as response:
                        await response.read()

            call = asyncio.create_task(assign())
            await asyncio.wait_for(reading.wait(), 30)  # the mapper is reading its split: mid-split
            code, seconds = await sigterm_exit(mapper)
            await asyncio.wait_for(call, 10)
    finally:
        release.set()
        await runner.cleanup()
    assert code == 0, log_path.read_text()
    assert seconds <= DRAIN + MARGIN, f"exit took {seconds:.1f} s for a {DRAIN:g} s budget\n{log_path.read_text()}"
    assert "actor_stopped" in events(log_path)


async def test_reducer_mid_stream_exits_within_the_budget(tmp_path: Path) -> None:
    header = StreamHeader(job="j1", epoch=1, split=0, attempt=1, partition=0, partitions=1, job_name="wordcount",
                          size=4096)
    release = asyncio.Event()

    async def stream() -> AsyncIterator[bytes]:
        """A mapper's stream that sends its header and a frame, then stalls before COMMIT."""
        yield wire.frame(to_wire(header), 1 << 20)
        yield wire.frame(to_wire(Data(items={"hello": 3})), 1 << 20)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                await release.wait()

    log_path = tmp_path / "reducer.log"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with actor_process(actor_env("reducer", tmp_path), log_path) as (reducer, url), \
            aiohttp.ClientSession() as session:

        async def shuffle() -> None:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.post(f"{url}/internal/v1/shuffle", data=stream(),
                                        headers={**auth, "Content-Type": "application/cbor-seq"}) as response:
                    await response.read()

        call = asyncio.create_task(shuffle())
        async with asyncio.timeout(30):  # another process's state, observed until the stream is staged
            while True:
                async with session.get(f"{url}/internal/v1/state", headers=auth) as response:
                    state = await response.json()
                if "j1" in state["jobs"] and state["staged_bytes"] >= header.size:  # reserved: its decoded estimate
                    break
                await asyncio.sleep(0.02)
        code, seconds = await sigterm_exit(reducer)
        release.set()
        await asyncio.wait_for(call, 10)
    assert code == 0, log_path.read_text()
    assert seconds <= DRAIN + MARGIN, f"exit took {seconds:.1f} s for a {DRAIN:g} s budget\n{log_path.read_text()}"
    assert "drain_cut_short" in events(log_path)  # it waited for the stream, then cut it at the deadline


async def test_an_idle_actor_exits_at_once_not_at_the_deadline(tmp_path: Path) -> None:
    log_path = tmp_path / "mapper.log"
    async with actor_process(actor_env("mapper", tmp_path, MR_TIMEOUT_DRAIN="30"), log_path) as (mapper, url):
        async with aiohttp.ClientSession() as session, session.get(f"{url}/readyz") as response:
            assert response.status == 200
        code, seconds = await sigterm_exit(mapper)
    assert code == 0 and seconds < 10, (code, seconds, log_path.read_text())


async def test_the_drain_waits_for_operations_not_reads_and_cuts_what_is_left() -> None:
    """In one process: a POST in flight holds the drain, a long GET does not, and stop_handlers cancels the GET."""
    drain = Drain(10.0)
    release_post, release_get = asyncio.Event(), asyncio.Event()
    entered = {"GET": asyncio.Event(), "POST": asyncio.Event()}
    cancelled: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        entered[request.method].set()
        try:
            await (release_post if request.method == "POST" else release_get).wait()
        except asyncio.CancelledError:
            cancelled.append(request.method)
            raise
        return web.json_response({"ok": request.method})

    app = web.Application(middlewares=[drain_middleware(drain)])
    app.router.add_route("*", "/work", handler)
    app.router.add_get("/readyz", handler)  # a probe: never tracked
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/work"
    try:
        # One session per call: aiohttp retries a cut GET once, and would retry it on the POST's idle connection.
        async with aiohttp.ClientSession() as posting, aiohttp.ClientSession() as getting:

            async def call(method: str) -> int | str:
                session = posting if method == "POST" else getting
                try:
                    async with session.request(method, url) as response:
                        return response.status
                except aiohttp.ClientError as error:
                    return type(error).__name__

            post, get = asyncio.create_task(call("POST")), asyncio.create_task(call("GET"))
            await asyncio.wait_for(asyncio.gather(entered["POST"].wait(), entered["GET"].wait()), 10)
            assert drain.operations == 1
            waiting = asyncio.create_task(drain.wait_for_operations())
            await asyncio.sleep(0)
            assert not waiting.done()  # the POST holds it ...
            release_post.set()
            await asyncio.wait_for(waiting, 10)  # ... the GET (a long-poll) does not
            assert await post == 200
            await site.stop()  # as serve does: the listener first, so a client's retry of the cut GET is refused
            assert await drain.stop_handlers(0.1) == 1
            assert cancelled == ["GET"]
            assert isinstance(await asyncio.wait_for(get, 10), str)  # cut: the connection closed, no answer
    finally:
        await runner.cleanup()
