"""The event loop is never blocked by file I/O: a disk that stalls delays one request, not every actor's loop.

The actors run in this process (one loop, real servers on loopback), with a heartbeat task measuring how late the
loop wakes it. A stalling disk (a network volume, the kernel throttling dirty pages) is simulated at the world's
edge: the module's ``open`` returns files whose first reads or writes each stall STALL seconds in the calling
thread. Blocking I/O on the loop shows up as a lag of at least STALL; I/O in a thread shows up as none.

Robust on busy cores: the same work runs first on the plain disk, and the stalled run's worst lag is compared with
that baseline plus LIMIT (100 ms), not with an absolute number.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from actors.inputs import sources
from actors.master import journal, store

from .conftest import Cluster, ClusterFactory, eventually

LIMIT = 0.1  # the loop may lag this much more than in the baseline run
STALL = 0.5  # one stalled read or write: far above LIMIT, so a blocked loop cannot hide in the margin
STALLS = 2
ROUNDS = 3
UPLOAD = {"Content-Type": "application/octet-stream"}


@dataclass
class Lag:
    worst: float = 0.0
    beats: int = 0


@asynccontextmanager
async def lag_meter(interval: float = 0.005) -> AsyncIterator[Lag]:
    """How late the loop wakes a heartbeat task, at worst, while the block runs."""
    lag = Lag()
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def beat() -> None:
        nonlocal start
        while True:
            start = loop.time()
            await asyncio.sleep(interval)  # the measurement itself: how late this sleep ends is the loop's lag
            lag.worst = max(lag.worst, loop.time() - start - interval)
            lag.beats += 1

    task = asyncio.create_task(beat())
    try:
        yield lag
    finally:
        # A beat still waiting at the end counts too: a loop blocked until the work ended woke nobody since.
        lag.worst = max(lag.worst, loop.time() - start - interval)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class StallingDisk:
    """``open`` for one module: the first ``stalls`` reads or writes of its files each stall ``seconds``."""

    def __init__(self, stalls: int, seconds: float) -> None:
        self.left = stalls
        self.seconds = seconds
        self.stalled = 0
        self.finished = 0
        self._lock = threading.Lock()

    def open(self, *args: Any, **kwargs: Any) -> StallingFile:
        return StallingFile(builtins.open(*args, **kwargs), self)

    def stall(self) -> None:
        with self._lock:
            if self.left == 0:
                return
            self.left -= 1
            self.stalled += 1
        time.sleep(self.seconds)  # in whichever thread does the I/O: the loop's, if the code under test blocks
        with self._lock:
            self.finished += 1


class StallingFile:
    def __init__(self, file: Any, disk: StallingDisk) -> None:
        self.file = file
        self.disk = disk

    def read(self, size: int = -1) -> Any:
        self.disk.stall()
        return self.file.read(size)

    def write(self, data: Any) -> int:
        self.disk.stall()
        return int(self.file.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)

    def __enter__(self) -> StallingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def text(size: int) -> bytes:
    line = " ".join(f"w{i % 997}" for i in range(12)) + "\n"
    return (line * (size // len(line) + 1)).encode()[:size].rsplit(b"\n", 1)[0] + b"\n"


async def lag_of(work: Callable[[], Awaitable[None]], disk: StallingDisk | None = None) -> float:
    async with lag_meter() as lag:
        await work()
        if disk is not None:  # a write handed to a thread may stall after the work is answered: measure it too
            await eventually(lambda: disk.finished == STALLS, timeout=30.0)
    assert lag.beats >= 1  # the heartbeat really ran
    return lag.worst


async def assert_loop_free(monkeypatch: pytest.MonkeyPatch, module: ModuleType,
                           work: Callable[[], Awaitable[None]]) -> None:
    """The stalled run lags less than one stall, and at most LIMIT more than a plain run just before it.

    A blocked loop lags at least STALL in every round. Busy cores can delay any one wake-up by 100 ms or more, so
    a round that misses the margin is measured again (ROUNDS in all) before the test fails.
    """
    seen = []
    for _ in range(ROUNDS):
        baseline = await lag_of(work)
        disk = StallingDisk(STALLS, STALL)
        with monkeypatch.context() as patch:
            patch.setattr(module, "open", disk.open, raising=False)
            stalled = await lag_of(work, disk)
        assert disk.stalled == STALLS, "the simulated disk never stalled: the test would prove nothing"
        seen.append(f"{stalled * 1000:.0f} ms (baseline {baseline * 1000:.0f} ms)")
        if stalled < min(baseline + LIMIT, STALL):
            return
    raise AssertionError(f"the loop was blocked {', '.join(seen)} while a {module.__name__} read or write stalled "
                         f"{STALL * 1000:.0f} ms: file I/O runs on the event loop")


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
async def test_a_large_upload_never_blocks_the_loop(make_cluster: ClusterFactory,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, split_size=64 * 1024 * 1024)
    body = text(16 * 1024 * 1024)
    expected = dict(Counter(body.decode().split()))

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]

    async def upload() -> None:
        async with cluster.session.post(f"{cluster.url}/v1/jobs", data=pieces(), headers=UPLOAD) as response:
            assert response.status == 202, await response.text()
            job = await response.json()
        assert await cluster.result(job["id"], wait=120) == expected

    await assert_loop_free(monkeypatch, store, upload)


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
async def test_a_large_path_job_never_blocks_the_loop(make_cluster: ClusterFactory, data_root: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    body = text(8 * 1024 * 1024)
    (data_root / "big.txt").write_bytes(body)
    expected = dict(Counter(body.decode().split()))
    cluster = await make_cluster(mappers=1, reducers=1, split_size=64 * 1024 * 1024)

    async def path_job() -> None:
        job = await cluster.submit({"job": "wordcount", "input": {"path": "big.txt"}})
        assert await cluster.result(job["id"], wait=120) == expected

    await assert_loop_free(monkeypatch, sources, path_job)


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
async def test_journal_appends_never_block_the_loop(make_cluster: ClusterFactory, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, state_dir=str(tmp_path / "state"))

    async def small_jobs() -> None:
        for _ in range(2):
            assert await run(cluster) == {"a": 2, "b": 1}

    await assert_loop_free(monkeypatch, journal, small_jobs)


async def run(cluster: Cluster) -> dict[str, Any]:
    return await cluster.run_text("a b a")
