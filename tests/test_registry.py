"""The job registry: bounded running and queued jobs started in order, idempotency claims, clean epochs."""

from __future__ import annotations

import asyncio

import pytest

from actors.core.errors import Conflict, TooManyRequests, Unprocessable
from actors.inputs.ref import SERVED, InputRef
from actors.master.record import CANCELLED, DONE, FINALIZING, QUEUED, RUNNING, JobRecord
from actors.master.registry import JobRegistry


async def close(registry: JobRegistry, grace: float) -> None:
    """Close with a drain's deadlines: ``grace`` seconds for running jobs, as long again for cancelled ones."""
    now = asyncio.get_running_loop().time()
    await registry.close(now + grace, now + 2 * grace)


class Jobs:
    """Jobs whose runs the test finishes by hand: each run waits on its own gate."""

    def __init__(self) -> None:
        self.gates: dict[tuple[str, int], asyncio.Event] = {}
        self.started: list[str] = []
        self.ended: list[tuple[str, int, str]] = []

    def record(self, job_id: str, epoch: int = 1) -> JobRecord:
        ref = InputRef(SERVED, "http://x/", "t", 1, served_id=job_id)
        return JobRecord(id=job_id, epoch=epoch, job_name="wordcount", input=ref, created=0.0, split_size=1)

    def run(self, record: JobRecord) -> asyncio.Event:
        gate = self.gates.setdefault((record.id, record.epoch), asyncio.Event())

        async def body() -> None:
            self.started.append(record.id)
            record.transition(RUNNING)
            try:
                await gate.wait()
                record.transition(FINALIZING)
                record.transition(DONE)
            except asyncio.CancelledError:
                record.transition(CANCELLED)
                raise
            finally:
                record.finished = 0.0
                record.done.set()

        self.body = body
        return gate

    def registry(self, running: int = 2, queued: int = 2) -> JobRegistry:
        return JobRegistry(lambda: 100.0, 3600.0, running, queued,
                           on_end=lambda r: self.ended.append((r.id, r.epoch, r.state)), on_forget=lambda r: None)

    def start(self, registry: JobRegistry, job_id: str, epoch: int = 1, key: str = "",
              interactive: bool = False) -> tuple[JobRecord, asyncio.Event]:
        record = self.record(job_id, epoch)
        gate = self.run(record)
        registry.start(record, self.body, key, interactive)
        return record, gate


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)  # let just-woken tasks take their next step (not a wait for a condition)


async def test_bounded_running_then_queued_then_429_naming_the_settings() -> None:
    jobs = Jobs()
    registry = jobs.registry(running=2, queued=2)
    started = [jobs.start(registry, f"j{i}") for i in range(4)]
    await settle()
    assert jobs.started == ["j0", "j1"]
    assert (registry.running, registry.queued) == (2, 2)
    assert started[2][0].state == QUEUED
    with pytest.raises(TooManyRequests) as refused:
        jobs.start(registry, "j4")
    assert "MR_MAX_QUEUED_JOBS" in refused.value.message and "MR_MAX_RUNNING_JOBS" in refused.value.message
    assert refused.value.status == 429 and refused.value.retry_after >= 1
    assert "j4" not in registry.jobs
    # Queued jobs start in arrival order as running ones finish.
    started[1][1].set()
    await settle()
    assert jobs.started == ["j0", "j1", "j2"]
    started[0][1].set()
    await settle()
    assert jobs.started == ["j0", "j1", "j2", "j3"]
    for _, gate in started:
        gate.set()
    await close(registry, 1.0)
    assert sorted(e[0] for e in jobs.ended) == ["j0", "j1", "j2", "j3"]
    assert all(state == DONE for _, _, state in jobs.ended)


async def test_interactive_jobs_wait_ahead_of_submitted_ones_in_their_own_lane() -> None:
    jobs = Jobs()
    registry = jobs.registry(running=1, queued=1)
    first = jobs.start(registry, "busy")
    jobs.start(registry, "batch")
    with pytest.raises(TooManyRequests):
        jobs.start(registry, "batch2")
    jobs.start(registry, "compute", interactive=True)  # the batch lane is full, its own lane is not
    first[1].set()
    await settle()
    assert jobs.started == ["busy", "compute"]
    jobs.gates[("compute", 1)].set()
    await settle()
    assert jobs.started == ["busy", "compute", "batch"]
    jobs.gates[("batch", 1)].set()
    await close(registry, 1.0)


async def test_cancelling_a_queued_job_ends_it_and_frees_its_place() -> None:
    jobs = Jobs()
    registry = jobs.registry(running=1, queued=1)
    _, gate = jobs.start(registry, "a")
    queued, _ = jobs.start(registry, "b")
    await settle()
    registry.cancel("b")
    await registry.wait_cancelled(queued, 1.0)
    assert queued.state == CANCELLED and queued.done.is_set() and "queued" in queued.error
    assert ("b", 1, CANCELLED) in jobs.ended
    assert (registry.running, registry.queued) == (1, 0)
    jobs.start(registry, "c")  # its place is free again
    gate.set()
    await settle()
    assert jobs.started == ["a", "c"]
    for g in jobs.gates.values():
        g.set()
    await close(registry, 1.0)


async def test_close_cancels_queued_jobs_rather_than_starting_them() -> None:
    jobs = Jobs()
    registry = jobs.registry(running=1, queued=3)
    _, gate = jobs.start(registry, "a")
    queued = [jobs.start(registry, name)[0] for name in ("b", "c")]
    await settle()
    gate.set()
    await close(registry, 1.0)
    assert jobs.started == ["a"]
    assert [r.state for r in queued] == [CANCELLED, CANCELLED]


async def test_claims_make_check_and_insert_one_step() -> None:
    jobs = Jobs()
    registry = jobs.registry()
    assert await registry.claim("k", "body-1", 1.0) is None
    # A second request with the same key and body waits for the first one's outcome ...
    waiter = asyncio.ensure_future(registry.claim("k", "body-1", 5.0))
    await settle()
    assert not waiter.done()
    # ... a different body is refused at once ...
    with pytest.raises(Unprocessable, match="different request body"):
        await registry.claim("k", "body-2", 1.0)
    record, gate = jobs.start(registry, "kjob", key="k")
    # ... and the waiter gets the job the first one started.
    assert await waiter is record
    with pytest.raises(Unprocessable):
        await registry.claim("k", "body-2", 1.0)
    gate.set()
    await close(registry, 1.0)


async def test_a_released_claim_lets_the_next_request_take_the_key() -> None:
    registry = Jobs().registry()
    assert await registry.claim("k", "f", 1.0) is None
    waiter = asyncio.ensure_future(registry.claim("k", "f", 5.0))
    await settle()
    registry.release("k")  # the first request failed (say, a bad path) before starting a job
    assert await waiter is None  # now this one holds the key
    with pytest.raises(Conflict, match="still being admitted"):
        await registry.claim("k", "f", 0.05)


async def test_resubmitting_while_the_cancelled_epoch_cleans_up_keeps_the_new_epoch_tracked() -> None:
    jobs = Jobs()
    registry = jobs.registry(running=4, queued=0)
    cleanup = asyncio.Event()
    old = jobs.record("kjob", epoch=1)

    async def slow_to_cancel() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            old.transition(CANCELLED)
            await cleanup.wait()  # e.g. releasing reducers' state
            raise

    assert await registry.claim("k", "f", 1.0) is None
    registry.start(old, slow_to_cancel, "k")
    await settle()
    registry.cancel("kjob")
    await settle()
    assert await registry.claim("k", "f", 1.0) is None  # cancelled: the key may start a new epoch
    new, gate = jobs.start(registry, "kjob", epoch=2, key="k")
    await settle()
    cleanup.set()  # the old epoch finishes cleaning up only now
    await settle()
    assert registry.jobs["kjob"] is new and registry.running == 1
    registry.cancel("kjob")  # cancels the new epoch, not the finished old one
    await registry.wait_cancelled(new, 1.0)
    assert new.state == CANCELLED and registry.running == 0
    assert await registry.claim("k", "f", 1.0) is None
    gate.set()
    await close(registry, 1.0)


async def test_an_epoch_that_is_not_newer_is_refused() -> None:
    jobs = Jobs()
    registry = jobs.registry()
    _, gate = jobs.start(registry, "x", epoch=5)
    with pytest.raises(Conflict, match="not newer"):
        jobs.start(registry, "x", epoch=5)
    gate.set()
    await close(registry, 1.0)
