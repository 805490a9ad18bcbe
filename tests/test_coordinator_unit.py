"""The coordinator on a fake transport, a fake discovery and the injected clock: retries, stalled and dead mappers,
backups, reducer loss, cancel, reducers not visible yet, and a seeded simulation of many jobs under faults."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from actors.core.config import Settings, Timeouts
from actors.core.messages import Assignment, PartFile, Report
from actors.inputs.ref import SERVED, InputRef
from actors.jobs.result import Result, as_mapping
from actors.master.coordinator import Coordinator
from actors.master.record import JobRecord
from actors.master.splitview import entry
from actors.master.workers import MapperSlots
from actors.sequential import run_sequential

from .fakes import FakeClock, FakeDiscovery, FakeReducer, FakeTransport, Faults
from .support import make_text

TIMEOUTS = Timeouts(connect=0.5, request=1.0, lease=0.3, stream_idle=0.5, stage_wait=0.2, finalize=1.0,
                    discovery=0.2, peers=0.5, drain=0.5, startup=1.0, recovery=2.0)
WORDS = ["alpha", "beta", "γάμμα", "日本語", "😀", "naïve", "The", "the", "x"]


def make_settings(**changes: Any) -> Settings:
    base = Settings(reducer_count=2, max_attempts=4, min_split_size=1, backup_after=5.0, timeouts=TIMEOUTS)
    return base.replace(**changes)


def random_text(rng: random.Random, lines: int) -> bytes:
    """About ``lines`` short lines (0, 1, 3 or 7 words) of unicode and case-variant words."""
    return make_text(rng, 3 * lines, WORDS, (0, 1, 3, 7))


TEXT = random_text(random.Random(5), 200)


@dataclass
class Job:
    coordinator: Coordinator
    record: JobRecord
    data: bytes
    kept: list[dict[str, Any]]  # what the coordinator handed its ``keep`` (the master holds it; here a list)

    @property
    def result(self) -> dict[str, Any] | None:
        assert len(self.kept) <= 1, "a result was kept twice"
        return self.kept[0] if self.kept else None

    @property
    def oracle(self) -> dict[str, Any]:
        return run_sequential(self.record.job_name, self.data, self.record.input.name)

    async def run(self, timeout: float = 10.0) -> JobRecord:
        async with asyncio.timeout(timeout):
            await self.coordinator.run()
        return self.record


def make_job(
    transport: FakeTransport,
    discovery: FakeDiscovery,
    data: bytes = TEXT,
    *,
    settings: Settings | None = None,
    clock: Callable[[], float] | None = None,
    slots: MapperSlots | None = None,
    split_size: int = 200,
    job_name: str = "wordcount",
    job_id: str = "job",
) -> Job:
    settings = settings or make_settings()
    location = f"mem://{job_id}"
    transport.inputs[location] = data
    record = JobRecord(id=job_id, epoch=7, job_name=job_name, input=InputRef(SERVED, location, "book.txt", len(data)),
                       created=0.0, split_size=split_size)
    kept: list[dict[str, Any]] = []

    async def keep(result: Result) -> None:  # the master keeps a result as an awaited call (a task may encode it)
        kept.append(dict(as_mapping(result)))

    coordinator = Coordinator(record, settings, transport, discovery, slots or MapperSlots(settings.mapper_slots),
                              clock or FakeClock(), keep=keep)
    return Job(coordinator, record, data, kept)


def attempts_of(record: JobRecord, split: int) -> list[dict[str, Any]]:
    assert record.table is not None
    table = record.table
    state = next(s for s in map(table.split_at, range(table.total)) if s.split.index == split)
    return list(entry(state, table)["attempts"])


def assert_committed_once(transport: FakeTransport) -> None:
    """The exactly-once rule held: no reducer incarnation merged any split twice."""
    assert transport.commits and set(transport.commits.values()) == {1}, transport.commits


async def test_a_clean_run_maps_each_split_once_and_equals_the_oracle() -> None:
    transport = FakeTransport.with_reducers({}, 2)
    job = make_job(transport, FakeDiscovery(2, 2))
    record = await job.run()
    assert (record.state, record.error) == ("done", "")
    assert job.result == job.oracle
    assert len(record.splits) >= 4 and record.partitions == 2
    assert len(transport.assignments) == len(record.splits)
    assert sum(transport.commits.values()) == 2 * len(record.splits)
    assert_committed_once(transport)
    # Each reducer forgot the job when it reported it: no Release round trip, no state left behind.
    assert transport.released == []
    assert all(not r.ledger.jobs for r in transport.reducers.values())


async def test_a_lost_finalize_answer_is_answered_again_exactly_without_a_re_map() -> None:
    """A reducer reports and forgets the job; its answer is lost on the way; the master asks again and gets the
    same report from what the reducer kept, so nothing is re-mapped and nothing is released."""
    transport = FakeTransport.with_reducers({}, 2, lose_answers=2)
    job = make_job(transport, FakeDiscovery(2, 2))
    record = await job.run()
    assert (record.state, record.error) == ("done", "")
    assert job.result == job.oracle
    assert record.recoveries == [] and len(transport.assignments) == len(record.splits)
    assert transport.lost_answers == 2 and len(transport.answers) == 4
    for partition in (0, 1):
        first, again = [answer for _, p, answer in transport.answers if p == partition]
        assert isinstance(first, Report) and again == first
    assert transport.released == []
    assert all(not r.ledger.jobs for r in transport.reducers.values())


async def test_a_lost_report_is_retried_and_its_committed_partitions_answer_duplicate() -> None:
    transport = FakeTransport.with_reducers({}, 2)
    transport.script = lambda mapper, a: "cut" if (a.split, a.attempt) == (1, 1) else None
    job = make_job(transport, FakeDiscovery(2, 2))
    record = await job.run()
    assert record.state == "done" and job.result == job.oracle
    assert [a["state"] for a in attempts_of(record, 1)] == ["failed", "done"]
    assert record.duplicate_streams == 2  # both partitions had the first attempt's streams already
    assert record.status()["attempts"]["retries"] == 1
    assert_committed_once(transport)


async def test_an_assignment_stream_ending_without_a_report_fails_that_attempt() -> None:
    transport = FakeTransport.with_reducers({}, 2)
    transport.script = lambda mapper, a: "eof" if (a.split, a.attempt) == (0, 1) else None
    job = make_job(transport, FakeDiscovery(2, 2))
    record = await job.run()
    assert record.state == "done" and job.result == job.oracle
    first, second = attempts_of(record, 0)
    assert first["state"] == "failed" and "closed the assignment without a report" in first["cause"]
    assert second["state"] == "done"


async def test_a_split_failing_every_attempt_fails_the_job_naming_it() -> None:
    transport = FakeTransport.with_reducers({}, 2)
    transport.script = lambda mapper, a: "fail" if a.split == 2 else None
    job = make_job(transport, FakeDiscovery(2, 2), settings=make_settings(max_attempts=3))
    record = await job.run()
    assert record.state == "failed"
    assert "split 2 failed 3 attempts" in record.error and "reducer 0 refused" in record.error
    assert len([a for _, a in transport.assignments if a.split == 2]) == 3


async def test_a_slow_then_dead_mapper_loses_its_split_and_is_retired() -> None:
    clock = FakeClock()
    calls: list[str] = []
    transport = FakeTransport.with_reducers({}, 2)

    def script(mapper: str, a: Assignment) -> str | None:
        if mapper == "mapper-1":
            return "gated"  # busy (heartbeating) until mapper-0 is dealt with
        calls.append("silent" if not calls else "dead")
        if calls[-1] == "dead":
            clock.advance(1.0)  # each refused connection comes a second later than the one before
        if len(calls) == 3:
            transport.gate.set()
        return calls[-1]

    transport.script = script
    job = make_job(transport, FakeDiscovery(2, 2), clock=clock, split_size=50)
    record = await job.run()
    assert record.state == "done" and job.result == job.oracle
    attempts = [a for s in range(len(record.splits)) for a in attempts_of(record, s)]
    # The silent attempt lost its lease, was closed, and its split ran again on mapper-1.
    stalled = [(s, a) for s in range(len(record.splits)) for a in attempts_of(record, s) if a["state"] == "failed"]
    assert len(stalled) == 1 and "stalled" in stalled[0][1]["cause"] and stalled[0][1]["mapper"] == "mapper-0"
    assert attempts_of(record, stalled[0][0])[-1]["mapper"] == "mapper-1"
    assert transport.closed_early == 1
    # Unreachable for longer than MR_TIMEOUT_PEERS (by the injected clock): retired after its second refusal,
    # although many splits were still to do; the splits it was handed went back without counting as failures.
    assert calls == ["silent", "dead", "dead"]
    refused = [a for a in attempts if a["state"] == "abandoned" and "unreachable" in a["cause"]]
    assert len(refused) == 2 and len(record.splits) > 8
    assert {a["mapper"] for a in attempts if a["state"] == "done"} == {"mapper-1"}


async def test_no_reachable_mapper_fails_the_job_naming_the_last_failure() -> None:
    clock = FakeClock()

    def script(mapper: str, a: Assignment) -> str:
        clock.advance(1.0)  # every refusal a second later: both mappers retire after MR_TIMEOUT_PEERS
        return "dead"

    transport = FakeTransport.with_reducers({}, 2, script=script)
    record = await make_job(transport, FakeDiscovery(2, 2), clock=clock).run()
    assert record.state == "failed"
    assert record.error.startswith("no mapper could be reached;") and "splits unfinished" in record.error
    assert {m for m, _ in transport.assignments} == {"mapper-0", "mapper-1"}


async def test_a_straggler_gets_a_backup_that_wins_and_no_longer_holds_the_job() -> None:
    clock = FakeClock()

    def script(mapper: str, a: Assignment) -> str | None:
        if mapper == "mapper-0" and a.attempt == 1 and a.split == 0:
            clock.advance(10.0)  # the attempt started long ago by the job's clock
            return "hang"  # heartbeats forever: the lease never expires
        return None

    transport = FakeTransport.with_reducers({}, 2, script=script)
    job = make_job(transport, FakeDiscovery(2, 2), clock=clock, settings=make_settings(backup_after=0.2))
    record = await job.run()
    assert record.state == "done" and job.result == job.oracle
    first, backup = attempts_of(record, 0)
    assert (first["mapper"], first["state"], first["backup"]) == ("mapper-0", "abandoned", False)
    assert (backup["mapper"], backup["state"], backup["backup"]) == ("mapper-1", "done", True)
    assert transport.closed_early == 1  # the straggler's stream was closed, not left running
    assert_committed_once(transport)


async def test_a_reducer_lost_before_finalize_has_only_its_partition_remapped() -> None:
    transport = FakeTransport.with_reducers({}, 3)
    lost: list[int] = []

    def before_finalize(partition: int) -> None:
        if partition == 1 and not lost:
            transport.reducers[1].restart()
            lost.append(1)

    transport.before_finalize = before_finalize
    job = make_job(transport, FakeDiscovery(2, 3), settings=make_settings(reducer_count=3))
    record = await job.run()
    assert record.state == "done" and job.result == job.oracle
    splits = len(record.splits)
    assert record.recoveries == [{"round": 1, "partition": 1, "splits": splits, "step": 0}]
    redone = [a for _, a in transport.assignments if a.only_partitions]
    assert len(redone) == splits and {tuple(a.only_partitions) for a in redone} == {(1,)}
    # Partitions 0 and 2 were each sent every split exactly once; partition 1 twice (two incarnations).
    per_partition = {p: sum(n for key, n in transport.commits.items() if key[2] == p) for p in range(3)}
    assert per_partition == {0: splits, 1: 2 * splits, 2: splits}
    assert_committed_once(transport)


async def test_cancel_closes_the_running_assignments_and_releases_the_reducers() -> None:
    transport = FakeTransport.with_reducers({}, 2, modes={"mapper-0": "hang", "mapper-1": "hang"})
    job = make_job(transport, FakeDiscovery(2, 2))
    task = asyncio.create_task(job.coordinator.run())
    await assigned(transport, lambda: len(transport.assignments) == 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert job.record.state == "cancelled" and job.record.done.is_set()
    assert transport.closed_early == 2
    assert sorted(name for _, name in transport.released) == ["reducer-0", "reducer-1"]


async def assigned(transport: FakeTransport, check: Callable[[], bool]) -> None:
    """Wait (bounded) until the assignments made so far satisfy ``check``; woken by each new assignment."""
    async with asyncio.timeout(5):
        while not check():
            await transport.started.wait()
            transport.started.clear()


async def test_a_finished_job_does_not_wait_for_a_mapper_slot_another_job_holds() -> None:
    transport = FakeTransport.with_reducers({}, 2)
    transport.script = lambda mapper, a: "gated" if (a.job, mapper) == ("busy", "mapper-1") else None
    discovery = FakeDiscovery(2, 2)
    slots = MapperSlots(1)  # shared by both jobs, as on one master
    busy = make_job(transport, discovery, slots=slots, job_id="busy")
    busy_task = asyncio.create_task(busy.run())
    # "busy" holds mapper-1's only slot, heartbeating, until the gate opens.
    await assigned(transport, lambda: any(m == "mapper-1" for m, _ in transport.assignments))
    quick = make_job(transport, discovery, slots=slots, job_id="quick")
    record = await quick.run(timeout=5.0)  # its mapper-1 worker is queued for the slot; mapper-0 does it all
    assert record.state == "done" and quick.result == quick.oracle
    assert {m for m, a in transport.assignments if a.job == "quick"} == {"mapper-0"}
    transport.gate.set()
    assert (await busy_task).state == "done"


async def test_partitions_come_from_the_configured_count_and_a_missing_ordinal_is_waited_for() -> None:
    # reducer-1 is not Ready yet: the job must neither run with one partition nor fail; it waits for it.
    discovery = FakeDiscovery(2, 2, hidden=["reducer-1"])
    transport = FakeTransport.with_reducers({}, 2)
    job = make_job(transport, discovery)
    task = asyncio.create_task(job.run())
    async with asyncio.timeout(5):
        await discovery.waiting.wait()
    assert transport.assignments == [] and job.record.state == "queued"
    await discovery.show("reducer-1")
    record = await task
    assert record.state == "done" and job.result == job.oracle
    assert record.partitions == 2 and record.reducers == ["reducer-0", "reducer-1"]
    assert {a.partitions for _, a in transport.assignments} == {2}


async def test_a_reducer_that_never_appears_fails_the_job_naming_its_ordinal() -> None:
    transport = FakeTransport.with_reducers({}, 3)
    job = make_job(transport, FakeDiscovery(2, 3, hidden=["reducer-2"]),
                   settings=make_settings(reducer_count=3, timeouts=replace(TIMEOUTS, recovery=0.2)))
    record = await job.run()
    assert record.state == "failed"
    assert "reducer 2 of 3 (MR_REDUCER_COUNT)" in record.error
    assert "reducer-2 not visible within 0.2 s (MR_TIMEOUT_RECOVERY)" in record.error
    assert transport.assignments == []


async def test_an_unset_reducer_count_fails_clearly_instead_of_guessing() -> None:
    transport = FakeTransport.with_reducers({}, 2)
    record = await make_job(transport, FakeDiscovery(2, 2), settings=make_settings(reducer_count=0)).run()
    assert record.state == "failed" and "set MR_REDUCER_COUNT" in record.error
    assert transport.assignments == []


# --- the seeded simulation -------------------------------------------------------------------------------------


PRELUDE = ["silent", "slow", "dead", "blip", "restart"]  # every kind of fault at least once, early
DRAWS = [("dead", 0.02), ("silent", 0.015), ("slow", 0.025), ("restart", 0.006), ("blip", 0.024)]


class Chaos:
    """Per assignment, by the seed: a mapper goes silent, straggles, dies for a while; a reducer blips or restarts."""

    def __init__(self, rng: random.Random, reducers: dict[int, FakeReducer]) -> None:
        self.rng = rng
        self.reducers = reducers
        self.dead: dict[str, int] = {}  # mapper -> assignments it still refuses
        self.modes: Counter[str] = Counter()
        self.restarts = self.blips = self.finalizes = 0

    def script(self, mapper: str, a: Assignment) -> str | None:
        mode = self._mode(mapper)
        self.modes[mode or "ok"] += 1
        return mode

    def _mode(self, mapper: str) -> str | None:
        if self.dead.get(mapper, 0) > 0:
            self.dead[mapper] -= 1
            return "dead"
        step = sum(self.modes.values())
        fault = PRELUDE[step] if step < len(PRELUDE) else self._draw()
        if fault == "dead":
            self.dead[mapper] = 2  # refuses its next two assignments too
        if fault in ("dead", "silent", "slow"):
            return fault
        reducer = self.reducers[self.rng.randrange(len(self.reducers))]
        if fault == "restart":
            reducer.restart()  # its committed state is gone: finalize finds splits missing
            self.restarts += 1
        elif fault == "blip" and reducer.up:
            reducer.down()  # down for a moment: mappers and finalize wait for it
            self.blips += 1
            asyncio.get_running_loop().call_later(self.rng.uniform(0.005, 0.05), reducer.resume)
        return None

    def _draw(self) -> str:
        roll = self.rng.random()
        for fault, chance in DRAWS:
            if roll < chance:
                return fault
            roll -= chance
        return "ok"

    def before_finalize(self, partition: int) -> None:
        self.finalizes += 1
        # By chance, and surely once: the draws interleave with the event loop's schedule, so the chance alone
        # could miss every finalize of a run on a busy machine, and the invariants would go unchecked under loss.
        if self.rng.random() < 0.05 or (self.restarts == 0 and self.finalizes == 10):
            self.reducers[partition].restart()
            self.restarts += 1


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
@pytest.mark.parametrize("seed", [1, 2])
async def test_a_seeded_simulation_of_many_jobs_keeps_every_invariant(seed: int) -> None:
    rng = random.Random(seed)
    reducers = rng.choice([2, 3])
    faults = Faults(drop_stream=0.03, drop_ack=0.03, drop_report=0.02, duplicate_stream=0.1, stale_message=0.05,
                    delay=0.002, drop_answer=0.05)
    # lose_answers: one finalize answer is surely lost, whatever the draws meet in the loop's schedule.
    transport = FakeTransport.with_reducers({}, reducers, faults=faults, rng=rng, heartbeat=0.02, lose_answers=1)
    chaos = Chaos(rng, transport.reducers)
    transport.script, transport.before_finalize = chaos.script, chaos.before_finalize
    discovery = FakeDiscovery(3, reducers)
    settings = make_settings(reducer_count=reducers, max_attempts=8, backup_after=0.05,
                             timeouts=replace(TIMEOUTS, peers=5.0))
    slots = MapperSlots(settings.mapper_slots)
    clock = FakeClock(tick=0.001)  # time moves with every look at the clock: deterministic, and backups happen
    jobs = [
        make_job(transport, discovery, random_text(rng, rng.randint(0, 100)), settings=settings, clock=clock,
                 slots=slots, split_size=rng.choice([60, 150, 400]),
                 job_name=rng.choice(["wordcount", "inverted_index"]), job_id=f"job{i}")
        for i in range(20)
    ]
    gate = asyncio.Semaphore(4)

    async def run(job: Job) -> JobRecord:
        async with gate:
            return await job.run(timeout=15.0)

    records = await asyncio.gather(*(run(job) for job in jobs))
    for job, record in zip(jobs, records, strict=True):
        assert (record.id, record.state, record.error) == (job.record.id, "done", ""), record.status()
        assert job.result == job.oracle, record.id
        assert record.partitions == reducers
    assert_committed_once(transport)
    # A re-map after a reducer loss names only the partitions that lost splits in that round.
    for job in jobs:
        lost = {r["partition"] for r in job.record.recoveries}
        for _, a in transport.assignments:
            if a.job == job.record.id and a.only_partitions:
                assert set(a.only_partitions) <= lost
    # The faults really happened (the invariants were not checked on a calm run).
    statuses = [r.status()["attempts"] for r in records]
    assert sum(s["retries"] for s in statuses) > 0
    assert sum(s["duplicate_streams"] for s in statuses) > 0
    assert sum(s["stale_dropped"] for s in statuses) > 0
    assert chaos.restarts > 0 and any(r.recoveries for r in records)
    assert chaos.modes["dead"] and chaos.modes["silent"] and chaos.modes["slow"] and chaos.blips
    assert transport.closed_early > 0  # silent attempts lost their lease, or stragglers lost to a backup
    assert transport.lost_answers > 0  # reports given, answers lost, finalize asked again


async def test_a_part_file_reported_for_a_job_without_an_output_fails_the_job() -> None:
    """A lying reducer answers a part file where its totals were asked for: the job fails, naming the partition."""
    transport = FakeTransport.with_reducers({}, 2)
    reducer = transport.reducers[0]
    honest = reducer.finalize

    def part(message: Any) -> Any:
        report = honest(message)
        if isinstance(report, Report):
            return replace(report, payload=PartFile("part-00000", 0, 0, ""))
        return report

    reducer.finalize = part  # type: ignore[method-assign]
    record = await make_job(transport, FakeDiscovery(2, 2)).run()
    assert record.state == "failed"
    assert "partitions [0] reported part files for a job without an output" in record.error

