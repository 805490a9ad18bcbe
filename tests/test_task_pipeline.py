"""The pipelined map conversation with a task process (actors.tasks.calls.MapTask): at most two chunks unanswered,
frames in the order a chunk at a time gives them, a worker that dies, raises or hangs with two chunks in flight, and
exact results against the sequential oracle."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from actors.core import wire
from actors.core.config import Settings
from actors.core.errors import TaskFailed
from actors.core.messages import Data, from_wire
from actors.jobs import load_catalog
from actors.sdk import JobCodeError
from actors.sequential import run_sequential
from actors.tasks import protocol
from actors.tasks.calls import MapTask
from actors.tasks.pool import TaskPool
from actors.tasks.process import PIPE_SIZE, TaskProcess
from actors.tasks.protocol import JobSpec, MapDone, MapStart

from .conftest import ClusterFactory
from .test_tasks import outcome, sample, submit

PIPE_JOBS = '''
import os
import time

from actors.sdk import MapReduceJob


class Piped(MapReduceJob):
    """Each word with the line it came from (a list per key, no combiner: the frames' order shows in the values).
    A line "slow" takes 0.3 s, "die" ends the process, "raise" raises, "hang" sleeps without a word."""

    name = "piped"

    def mapper(self, line):
        if line == "slow":
            time.sleep(0.3)
        elif line == "die":
            os._exit(1)
        elif line == "raise":
            raise ValueError("a bad line")
        elif line == "hang":
            time.sleep(60)
        for word in line.split():
            yield word, line

    def reducer(self, key, values):
        return list(values)
'''

pytestmark = pytest.mark.process  # every test here starts task processes


@pytest.fixture
def pipe_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The job above, in a module on sys.path (a task worker gets the actor's path) under a unique name."""
    name = f"pipejobs_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "pipepkg"
    root.mkdir()
    (root / f"{name}.py").write_text(PIPE_JOBS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
    yield name
    sys.modules.pop(name, None)
    load_catalog.cache_clear()


@pytest.fixture
async def pool() -> AsyncIterator[TaskPool]:
    made = TaskPool.of(Settings().replace(task_workers=1))
    try:
        yield made
    finally:
        await made.close()


class Watched(MapTask):
    """A MapTask that records how many chunks were unanswered at each change, and every frame block in order."""

    def __init__(self, *args: object, window: int = MapTask.WINDOW, **kwargs: object) -> None:
        self.seen: list[int] = []
        self.blocks: list[tuple[int, bytes, int]] = []
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.WINDOW = window

    def _count(self, change: int) -> None:
        super()._count(change)
        self.seen.append(self.chunks)


def start(module: str, key_budget: int = 1_000_000) -> MapStart:
    s = Settings()
    return MapStart(JobSpec("piped", module, "Piped", {}), "input", 3, key_budget, s.frame_cap, s.frame_keys,
                    s.max_key, 1, s.max_counters, s.max_counter_name, 0)


async def feed(task: MapTask, chunk: bytes) -> None:
    """One chunk to the task (where the MapTask interface meets these tests, with :func:`start`)."""
    await task.feed(chunk, 0)


def chunks_of(text: str, lines: int) -> list[bytes]:
    rows = text.splitlines(keepends=True)
    return ["".join(rows[at:at + lines]).encode() for at in range(0, len(rows), lines)]


async def conversation(pool: TaskPool, module: str, chunks: list[bytes], *, window: int = MapTask.WINDOW,
                       silence: float = 30.0, key_budget: int = 1_000_000) -> tuple[Watched, MapDone]:
    blocks: list[tuple[int, bytes, int]] = []
    async with pool.worker() as process:
        task = Watched(process, start(module, key_budget), silence, lambda *block: blocks.append(block),
                       lambda done: None, window=window)
        task.blocks = blocks
        async with task:
            await task.open()
            for chunk in chunks:
                await feed(task, chunk)
            return task, await task.finish()


def decoded(blocks: list[tuple[int, bytes, int]]) -> dict[str, list[str]]:
    """The frames' DATA as one map of lists, in the order they came (what a reducer without a combiner keeps)."""
    merged: dict[str, list[str]] = {}
    for _, blob, _ in blocks:
        at = 0
        while at < len(blob):
            size = wire.frame_length(blob[at:at + wire.PREFIX], len(blob))
            frame = from_wire(wire.decode(blob[at + wire.PREFIX:at + wire.PREFIX + size], len(blob)), Data)
            for key, values in frame.items.items():
                merged.setdefault(key, []).extend(values)
            at += wire.PREFIX + size
    return merged


async def test_frames_come_in_the_order_one_chunk_at_a_time_gives_them(pool: TaskPool, pipe_module: str) -> None:
    """Pipelined (two chunks unanswered) and one chunk at a time give the same frame blocks in the same order, and
    the values in them are the sequential oracle's, in input order."""
    text = sample(11, 3000)
    chunks = chunks_of(text, 97)  # 31 chunks; a small key budget flushes frames within chunks too
    piped, piped_done = await conversation(pool, pipe_module, chunks, key_budget=40)
    single, single_done = await conversation(pool, pipe_module, chunks, window=1, key_budget=40)
    assert max(piped.seen) == 2 and max(single.seen) == 1
    assert len(piped.blocks) > len(chunks)  # frames came back while later chunks were already sent
    assert piped.blocks == single.blocks and piped_done == single_done
    oracle = run_sequential("piped", text.encode(), "input", {}, (pipe_module,))
    assert decoded(piped.blocks) == oracle


async def test_the_next_chunk_is_sent_while_the_worker_maps_and_never_more_than_two(pool: TaskPool,
                                                                                     pipe_module: str) -> None:
    """Slow chunks (0.3 s each): the second is sent while the first is mapped; the third waits for room."""
    chunks = [b"slow\n", b"slow\n", b"slow\n", b"slow\n"]
    async with pool.worker() as process:
        task = Watched(process, start(pipe_module), 30.0, lambda *block: None, lambda done: None)
        async with task:
            await task.open()
            began = time.monotonic()
            await feed(task, chunks[0])
            await feed(task, chunks[1])
            assert task.chunks == 2 and time.monotonic() - began < 0.25  # the first is still being mapped
            await feed(task, chunks[2])
            assert time.monotonic() - began >= 0.25  # it waited for the first chunk's answer
            await feed(task, chunks[3])
            await task.finish()
    assert max(task.seen) == 2 and task.seen[-1] == 0
    assert process.alive  # every answer read: the worker serves the next conversation


async def test_a_worker_that_dies_with_two_chunks_in_flight_fails_the_attempt(pool: TaskPool,
                                                                              pipe_module: str) -> None:
    with pytest.raises(TaskFailed, match=r"mapper of job 'piped' exited with status 1"):
        await conversation(pool, pipe_module, [b"slow\ndie\n", b"a b\n", b"c d\n"])
    assert pool.started == 1
    text = sample(5, 400)  # the pool starts another worker, which maps exactly
    _, done = await conversation(pool, pipe_module, chunks_of(text, 50))
    assert pool.started == 2 and sum(done.frames) > 0


@pytest.mark.parametrize("chunks", [[b"slow\nraise\n", b"a b\n", b"c d\n"], [b"a b\n", b"slow\nraise\n"]],
                         ids=["two-in-flight", "last-chunk"])
async def test_a_user_exception_with_chunks_in_flight_leaves_no_answer_for_the_next_split(
        pool: TaskPool, pipe_module: str, chunks: list[bytes]) -> None:
    """The job's exception is its own error (not retried); answers owed for what was sent after the failed chunk
    (chunks, the split's end) never reach the next conversation: the worker that owes them is replaced."""
    with pytest.raises(JobCodeError, match="a bad line"):
        await conversation(pool, pipe_module, chunks)
    text = sample(6, 500)
    task, _ = await conversation(pool, pipe_module, chunks_of(text, 40))
    assert decoded(task.blocks) == run_sequential("piped", text.encode(), "input", {}, (pipe_module,))
    assert pool.started == 2


async def test_a_worker_that_hangs_with_two_chunks_in_flight_is_killed_after_its_silence(pool: TaskPool,
                                                                                         pipe_module: str) -> None:
    began = time.monotonic()
    with pytest.raises(TaskFailed, match=r"made no progress for 1 s \(MR_TIMEOUT_LEASE\); killed"):
        await conversation(pool, pipe_module, [b"hang\n", b"a b\n", b"c d\n"], silence=1.0)
    assert time.monotonic() - began < 10
    assert not pool.pids  # killed and reaped


async def test_a_worker_is_not_a_stall_while_the_mapper_is_still_reading(pool: TaskPool, pipe_module: str) -> None:
    """The silence bound runs only while the worker owes an answer: a slow input is not the worker's stall."""
    async with pool.worker() as process:
        task = MapTask(process, start(pipe_module), 0.5, lambda *block: None, lambda done: None)
        async with task:
            await task.open()
            await feed(task, b"a b\n")
            await asyncio.sleep(1.2)  # the input is slow to read (longer than the worker's silence bound)
            await feed(task, b"c d\n")
            done = await task.finish()
    assert sum(done.keys) == 4 and process.alive


def test_a_large_chunk_is_framed_in_pieces_that_make_the_same_frame() -> None:
    for size in (0, 100, 65535, 65536, 4 * 1024 * 1024 + 7):
        message = protocol.MapChunk(bytes(range(256)) * (size // 256) + b"x" * (size % 256), offset=0)
        parts = protocol.encode_parts(message)
        assert len(b"".join(parts)) == len(protocol.encode(message))
        assert (parts[-1] is message.data) == (size >= 65536)  # the chunk's bytes themselves: not copied
        assert protocol.decode(b"".join(parts)[protocol.PREFIX:], 8 << 20) == message


@pytest.mark.parametrize("job", ["line_wordcount", "batch_wordcount"])
async def test_user_jobs_through_many_pipelined_chunks_are_exact(make_cluster: ClusterFactory, job: str) -> None:
    """Two mappers, chunks of 1 KiB and a small key budget (many chunks in flight, frames flushed mid-split): the
    result is the sequential oracle's."""
    text = sample(7, 6000)
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=("actors.jobs.examples",), chunk_size=1024,
                                 key_budget=64, split_size=64 * 1024)
    job_id = await submit(cluster, {"job": job, "input": {"text": text}})
    state, result = await outcome(cluster, job_id)
    assert state["state"] == "done", state
    assert result == run_sequential(job, text.encode(), "input", {}, ("actors.jobs.examples",))


async def test_the_pipe_to_a_worker_holds_a_mebibyte_where_the_kernel_allows() -> None:
    """A 4 MiB chunk passes in four writes of the actor's loop, not sixty-four (each a wake-up the worker waits for)."""
    fcntl = pytest.importorskip("fcntl")
    if not hasattr(fcntl, "F_GETPIPE_SZ"):
        pytest.skip("no F_GETPIPE_SZ here (not Linux)")
    if int(Path("/proc/sys/fs/pipe-max-size").read_text()) < PIPE_SIZE:
        pytest.skip("the kernel allows smaller pipes here")
    process = await TaskProcess.start(1 << 20, 0, 30.0)
    try:
        assert process.proc.stdin is not None
        pipe = process.proc.stdin.transport.get_extra_info("pipe")
        assert fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_SIZE
    finally:
        await process.kill()
