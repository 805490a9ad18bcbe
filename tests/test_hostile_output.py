"""Hostile timing and paths against outputs on real actors: a stale writer, a slow claim, paths that used to 500."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from actors.inputs.outdir import SUCCESS, commit_staged, write_part
from actors.master.outputs import JobOutput
from actors.sequential import run_sequential

from .conftest import Cluster, ClusterFactory, eventually
from .heldinput import HeldInput
from .support import serve_app
from .test_output import read_output

TEXT_A = " ".join(f"alpha{i}" for i in range(400)) + "\n"
TEXT_B = " ".join(f"beta{i}" for i in range(300)) + "\n"
WritePart = Callable[..., Any]


async def post_json(cluster: Cluster, spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with cluster.session.post(f"{cluster.url}/v1/jobs", json=spec) as response:
        return response.status, dict(await response.json())


class WriteGate:
    """Holds the first ``count`` part writes of any reducer at the last moment before they publish: the part's
    temporary file is written, its rename is next. A fixed point in the race, not a sleep."""

    def __init__(self, count: int, loop: asyncio.AbstractEventLoop) -> None:
        self.count = count
        self.loop = loop
        self.arrived = asyncio.Event()  # every held write is at the gate
        self.left = asyncio.Event()  # every held write has ended, published or refused
        self.errors: list[str] = []
        self._open = threading.Event()
        self._lock = threading.Lock()
        self._taken = self._at_gate = self._done = 0

    def wrap(self, real: WritePart) -> WritePart:
        def write_part(directory: Path, partition: int, tag: str, lines: Iterator[bytes]) -> Any:
            with self._lock:
                held, self._taken = self._taken < self.count, self._taken + 1
            if not held:
                return real(directory, partition, tag, lines)
            try:
                return real(directory, partition, tag, self._held(lines))
            except Exception as error:
                self.errors.append(str(error))
                raise
            finally:
                self._count("_done", self.left)

        return write_part

    def _held(self, lines: Iterator[bytes]) -> Iterator[bytes]:
        yield from lines
        self._count("_at_gate", self.arrived)
        assert self._open.wait(timeout=60), "the gate was never opened"

    def _count(self, name: str, event: asyncio.Event) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)
            reached = getattr(self, name) == self.count
        if reached:
            self.loop.call_soon_threadsafe(event.set)

    def open(self) -> None:
        self._open.set()


@pytest.fixture
async def write_gate(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[WriteGate]:
    """Two part writes (a job's on 2 reducers) held at the gate; the reducers run in this process."""
    gate = WriteGate(2, asyncio.get_running_loop())
    monkeypatch.setattr("actors.reducer.output.write_part", gate.wrap(write_part))
    yield gate
    gate.open()  # never leave a reducer thread at the gate


async def test_a_stale_writer_of_a_cancelled_job_never_lands_over_the_next_jobs_output(
    make_cluster: ClusterFactory, data_root: Path, write_gate: WriteGate
) -> None:
    """Job A is cancelled while both its reducers are about to publish their parts; job B is then admitted to
    the same directory and finishes. When A's writers go on, B's parts must still be B's, whole, as its _SUCCESS
    says; A's writes must have been refused."""
    cluster = await make_cluster(mappers=2, reducers=2)
    a = await cluster.submit({"input": {"text": TEXT_A}, "output": {"path": "out"}})
    async with asyncio.timeout(30):
        await write_gate.arrived.wait()
    assert (await cluster.status(a["id"]))["state"] == "finalizing"
    async with cluster.session.delete(f"{cluster.url}/v1/jobs/{a['id']}") as response:
        cancelled = await response.json()
    assert response.status == 200 and cancelled["state"] == "cancelled", cancelled

    b = await cluster.submit({"input": {"text": TEXT_B}, "output": {"path": "out"}})
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{b['id']}/result", params={"wait": "30"}) as response:
        assert response.status == 200, await response.text()
    write_gate.open()
    async with asyncio.timeout(30):
        await write_gate.left.wait()

    assert read_output(data_root / "out", 2) == run_sequential("wordcount", TEXT_B.encode())
    success = json.loads((data_root / "out" / SUCCESS).read_text())
    assert success["job"] == b["id"]
    assert not any("alpha" in (data_root / "out" / name).read_text() for name in success["parts"])
    assert len(write_gate.errors) == 2, write_gate.errors  # both of A's writes were refused
    assert all("staging directory is gone" in e or "No such file" in e for e in write_gate.errors), write_gate.errors


class SlowHead(HeldInput):
    """A URL input whose first HEAD (the master's size probe at submit) waits until the test lets it answer."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.head_asked = asyncio.Event()
        self.answer_head = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            self.head_asked.set()
            await self.answer_head.wait()
        return await super().handle(request)


async def test_two_submissions_cannot_both_take_a_directory_while_the_first_resolves_its_input(
    make_cluster: ClusterFactory, data_root: Path
) -> None:
    cluster = await make_cluster(mappers=1, reducers=2, allow_private_urls=True)
    slow = SlowHead(TEXT_A.encode())
    app = web.Application()
    app.router.add_route("*", "/{name}", slow.handle)
    async with serve_app(app, shutdown_timeout=1.0) as base:
        spec = {"input": {"url": f"{base}/input.txt"}, "output": {"path": "out"}}
        first = asyncio.create_task(post_json(cluster, spec))
        try:
            async with asyncio.timeout(30):
                await slow.head_asked.wait()  # the first submission is resolving its input, not admitted yet
            for spelling in ("out", "./out/", "out/."):
                status, refusal = await post_json(cluster, {"input": {"text": TEXT_B}, "output": {"path": spelling}})
                assert status == 409, refusal
                assert f"{spelling!r} is claimed by another submission being admitted" in refusal["message"], refusal
        finally:
            slow.answer_head.set()
            status, job = await first
        assert status == 202, job
        async with cluster.session.get(f"{cluster.url}/v1/jobs") as response:
            assert [j["id"] for j in (await response.json())["jobs"]] == [job["id"]]  # exactly one admitted
        async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result",
                                       params={"wait": "30"}) as response:
            assert response.status == 200, await response.text()
    assert read_output(data_root / "out", 2) == run_sequential("wordcount", TEXT_A.encode(), "input.txt")
    status, refusal = await post_json(cluster, {"input": {"text": TEXT_B}, "output": {"path": "out"}})
    assert status == 409 and "already holds a job's output" in refusal["message"], refusal


async def test_a_symlink_loop_in_the_output_path_is_a_400_naming_it(
    make_cluster: ClusterFactory, data_root: Path
) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    (data_root / "loop").symlink_to("loop")
    (data_root / "ping").symlink_to("pong")
    (data_root / "pong").symlink_to("ping")
    for path in ("loop/out", "ping/out", "loop"):
        status, body = await post_json(cluster, {"input": {"text": "a b"}, "output": {"path": path}})
        assert status == 400, body
        assert f"output path '{path}' cannot be used: a symlink loop" == body["message"], body
    assert sorted(os.listdir(data_root)) == ["loop", "ping", "pong"]


async def test_an_output_path_2000_levels_deep_is_a_400_naming_the_limit(
    make_cluster: ClusterFactory, data_root: Path
) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    deep = "/".join(["d"] * 2000)
    status, body = await post_json(cluster, {"input": {"text": "a b"}, "output": {"path": deep}})
    assert status == 400, body
    assert "has 2000 directory levels, more than the 32 an output may have (MR_MAX_OUTPUT_DEPTH)" in body["message"]
    assert os.listdir(data_root) == []
    # The limit is the limit, not a cliff below it: 32 levels are created when the job starts, and written.
    at_limit = "/".join(["e"] * 32)
    job = await cluster.submit({"input": {"text": "a b a"}, "output": {"path": at_limit}})
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "30"}) as response:
        assert response.status == 200, await response.text()
    assert read_output(data_root / at_limit, 1) == {"a": 2, "b": 1}


async def test_refused_submissions_create_no_directories(make_cluster: ClusterFactory, data_root: Path) -> None:
    """Each is refused after its output was checked (and claimed): none may leave a directory, nor the claim."""
    cluster = await make_cluster(mappers=1, reducers=2, max_splits=4)
    (data_root / "big.txt").write_text("word " * 2000)
    refused = [
        ({"path": "missing.txt"}, 400, "missing.txt"),
        ({"url": "http://127.0.0.1:9/x"}, 400, "127.0.0.1"),
        ({"path": "big.txt"}, 400, "MR_MAX_SPLITS"),
    ]
    for round_number in range(5):
        for source, code, named in refused:
            output = {"path": f"made/by/a/refused/job{round_number}"}
            status, body = await post_json(cluster, {"input": source, "output": output, "split_size": 512})
            assert status == code and named in body["message"], body
    assert sorted(os.listdir(data_root)) == ["big.txt"]
    # Every claim was let go with its refusal: the same directory takes a job at once.
    job = await cluster.submit({"input": {"text": TEXT_B}, "output": {"path": "made/by/a/refused/job0"}})
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "30"}) as response:
        assert response.status == 200, await response.text()
    assert read_output(data_root / "made/by/a/refused/job0", 2) == run_sequential("wordcount", TEXT_B.encode())


async def test_an_output_inside_another_jobs_staging_directory_is_refused(
    make_cluster: ClusterFactory, data_root: Path, write_gate: WriteGate
) -> None:
    """Job A's reducers are about to publish into its staging directory. Job B asking for that directory (by name,
    through a symlinked parent, or through a symlink to it) as its output would say done, then lose its output to
    A's commit, which removes the staging directory (or B's commit would replace A's staged parts): refused."""
    cluster = await make_cluster(mappers=2, reducers=2)
    a = await cluster.submit({"input": {"text": TEXT_A}, "output": {"path": "out"}})
    async with asyncio.timeout(30):
        await write_gate.arrived.wait()
    staging = f".staging-{a['id']}-{(await cluster.status(a['id']))['epoch']}"
    assert (data_root / "out" / staging).is_dir()
    (data_root / "alias").symlink_to("out")
    (data_root / "straight").symlink_to(f"out/{staging}")
    for path in (f"out/{staging}", f"alias/{staging}/sub", "straight", "out/.discarded-x"):
        status, body = await post_json(cluster, {"input": {"text": TEXT_B}, "output": {"path": path}})
        assert status == 400, body
        assert f"output path {path!r} is inside a job's staging directory" in body["message"], body
    write_gate.open()
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{a['id']}/result", params={"wait": "30"}) as response:
        assert response.status == 200, await response.text()
    assert read_output(data_root / "out", 2) == run_sequential("wordcount", TEXT_A.encode())


async def test_a_second_cancel_during_the_commit_keeps_the_directory_claimed_until_the_commit_ends(
    make_cluster: ClusterFactory, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Job A's commit is under way in its thread (a slow volume) when A is cancelled twice: the second cancel ends
    A's task while the commit still publishes. Its claim used to go with the task, so job B was admitted to the
    same directory, could say done, and then have A's parts and _SUCCESS land over its own."""
    entered, release = threading.Event(), threading.Event()
    real = commit_staged

    def slow_commit(*args: Any) -> Any:
        entered.set()
        assert release.wait(30), "the commit was never let go on"
        return real(*args)

    fencing = asyncio.Event()
    real_fence = JobOutput.fence

    async def fence(self: JobOutput) -> None:
        fencing.set()
        await real_fence(self)

    monkeypatch.setattr("actors.master.outputs.commit_staged", slow_commit)
    monkeypatch.setattr(JobOutput, "fence", fence)
    cluster = await make_cluster(mappers=2, reducers=2)
    a = await cluster.submit({"input": {"text": TEXT_A}, "output": {"path": "out"}})
    try:
        assert await asyncio.to_thread(entered.wait, 30)
        async def cancel() -> int:
            async with cluster.session.delete(f"{cluster.url}/v1/jobs/{a['id']}") as response:
                return response.status

        first = asyncio.create_task(cancel())  # answers once A's task ends, which its fence holds up
        async with asyncio.timeout(30):
            await fencing.wait()  # A's task is in its fence, which waits for the commit
        assert await cancel() == 200 and await first == 200  # the second cancel interrupts the fence's await
        status, refusal = await post_json(cluster, {"input": {"text": TEXT_B}, "output": {"path": "out"}})
        assert status == 409, refusal
        assert f"is still held by job {a['id']} (cancelled) until its writers are fenced" in refusal["message"]
    finally:
        release.set()

    await eventually(lambda: (data_root / "out" / SUCCESS).exists(), timeout=30)
    status, refusal = await post_json(cluster, {"input": {"text": TEXT_B}, "output": {"path": "out"}})
    assert status == 409 and "already holds a job's output" in refusal["message"], refusal
    assert json.loads((data_root / "out" / SUCCESS).read_text())["job"] == a["id"]  # the commit it began, whole
    assert read_output(data_root / "out", 2) == run_sequential("wordcount", TEXT_A.encode())
