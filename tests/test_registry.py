"""The job registry: bounded running and queued jobs started in order, idempotency claims, clean epochs."""

from __future__ import annotations

import asyncio
import time

import pytest

from actors.core.errors import Conflict, NotFound, TooManyRequests, Unprocessable
from actors.inputs.ref import SERVED, InputRef
from actors.master.keys import REGISTRY, RESULTS
from actors.master.record import CANCELLED, DONE, FINALIZING, QUEUED, RUNNING, JobRecord, JobState
from actors.master.registry import JobRegistry

from .conftest import ClusterFactory


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


async def test_expire_forgets_finished_jobs_past_the_ttl_with_their_keys_and_never_live_ones() -> None:
    now = [100.0]
    forgotten: list[str] = []
    jobs = Jobs()
    registry = JobRegistry(lambda: now[0], 60.0, 1, 2, on_end=lambda r: None,
                           on_forget=lambda r: forgotten.append(r.id))
    old, old_gate = jobs.start(registry, "old", key="k-old")
    old_gate.set()
    await settle()
    old.finished = 100.0  # the helper's runs finish at 0.0: as if at now
    cancelled, _ = jobs.start(registry, "cancelled", key="k-cancelled")
    await settle()
    registry.cancel("cancelled")
    await registry.wait_cancelled(cancelled, 1.0)
    assert (old.state, cancelled.state) == (DONE, CANCELLED)
    cancelled.finished = 100.0
    running, running_gate = jobs.start(registry, "running", key="k-running")
    queued, queued_gate = jobs.start(registry, "queued", key="k-queued")
    await settle()
    assert (running.state, queued.state) == (RUNNING, QUEUED)
    now[0] = 130.0
    young, young_gate = jobs.start(registry, "young", key="k-young")  # admission expires first: nothing is due
    await settle()
    assert young.state == QUEUED
    registry.cancel("young")
    await registry.wait_cancelled(young, 1.0)
    assert (young.state, young.finished) == (CANCELLED, 130.0)  # cancelled while queued: finished by the clock

    now[0] = 160.0  # exactly the TTL: not yet older than it
    registry.expire()
    assert forgotten == [] and set(registry.jobs) == {"old", "cancelled", "running", "queued", "young"}
    assert await registry.claim("k-old", "f", 1.0) is old  # a live key still answers its finished job

    now[0] = 160.5
    registry.expire()
    assert sorted(forgotten) == ["cancelled", "old"]  # on_forget lets go of their served inputs and results
    assert set(registry.jobs) == {"running", "queued", "young"}
    with pytest.raises(NotFound):
        registry.get("old")
    assert not {"k-old", "k-cancelled"} & set(registry.keys)
    assert await registry.claim("k-old", "another body", 1.0) is None  # released: no 422, a new job may take it
    registry.release("k-old")

    now[0] = 1e9  # however old, running and queued jobs are never forgotten
    registry.expire()
    assert set(registry.jobs) == {"running", "queued"} and sorted(forgotten) == ["cancelled", "old", "young"]
    assert registry.keys.keys() == {"k-running", "k-queued"}
    assert await registry.claim("k-running", "f", 1.0) is running
    assert await registry.claim("k-queued", "f", 1.0) is queued
    running_gate.set()
    queued_gate.set()
    young_gate.set()
    await settle()
    assert queued.state == DONE
    await close(registry, 1.0)


async def test_admission_expires_old_jobs_in_a_running_master(make_cluster: ClusterFactory) -> None:
    """Through the app: the TTL frees the old job's id, idempotency key and held result (on_forget)."""
    cluster = await make_cluster(mappers=1, reducers=1)
    registry, results = cluster.master.app[REGISTRY], cluster.master.app[RESULTS]
    key = {"Idempotency-Key": "ttl-1"}
    old = await cluster.submit({"input": {"text": "a b a"}}, headers=key)
    assert await cluster.result(old["id"]) == {"a": 2, "b": 1}
    held = results.get(old["id"])
    assert held is not None and results.held_bytes >= held.size > 0
    late = time.time() + cluster.master.settings.job_ttl + 1
    registry.clock = lambda: late
    # Another body under the expired job's key: the key is free (202, not 422); the key names the same job id.
    new = await cluster.submit({"input": {"text": "c"}}, headers=key)
    assert new["id"] == old["id"]
    assert results.get(old["id"]) is not held  # the old result was let go when its job was forgotten
    assert await cluster.result(new["id"]) == {"c": 1}
    assert (await cluster.status(new["id"]))["state"] == "done"


class Watched(JobRecord):
    """A record that counts how often its state is read."""

    reads = 0

    @property
    def state(self) -> JobState:
        Watched.reads += 1
        return super().state


async def test_admission_costs_the_same_however_many_finished_jobs_are_held() -> None:
    """expire() ran on every admission over every job held: at /compute rates (3600 s TTL) that grew without end.
    It now looks only at the oldest ended jobs, and stops at the first one not due."""
    jobs = Jobs()
    now = [100.0]
    registry = JobRegistry(lambda: now[0], 60.0, 4, 4, on_end=lambda r: None, on_forget=lambda r: None)
    for i in range(300):
        record = Watched(id=f"j{i}", epoch=1, job_name="wordcount", input=InputRef(SERVED, "http://x/", "t", 1),
                         created=0.0, split_size=1)
        jobs.run(record).set()
        registry.start(record, jobs.body)
        await settle()
        record.finished = now[0]
    assert all(r.state == DONE for r in registry.jobs.values()) and len(registry.jobs) == 300
    Watched.reads = 0
    for i in range(20):
        jobs.start(registry, f"new{i}")[1].set()
        await settle()
    assert Watched.reads <= 20, Watched.reads  # nothing due: one look at the oldest per admission, at most
    now[0] = 161.0  # all 300 past the TTL: dropped in one admission, each looked at once
    Watched.reads = 0
    jobs.start(registry, "later")[1].set()
    await settle()
    assert not any(job_id.startswith("j") for job_id in registry.jobs) and Watched.reads <= 300
    await close(registry, 1.0)
