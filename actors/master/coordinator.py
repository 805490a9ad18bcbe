"""The coordinator: drives one job through planning, the map phase, finalize and assembling the result."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..core.config import Settings
from ..core.counters import CounterLimit
from ..core.errors import (
    DiscoveryError,
    JobFailed,
    MapReduceError,
    PeerError,
    describe,
    first_error,
)
from ..core.logs import EventLog
from ..core.messages import Assignment, Progress, SplitDone, SplitRecords
from ..core.splits import Split, plan_inputs
from ..core.workfiles import step_dir
from ..discovery import Discovery, Peer
from ..inputs.ref import InputRef
from ..jobs.records import LINES
from ..jobs.result import Result
from ..net.metrics import MasterMetrics
from ..net.ordinals import OrdinalMissing, wait_for_ordinals
from ..net.transport import PeerUnreachable, Transport
from .attempts import AttemptOutcome
from .collector import Collector
from .directparts import DirectParts, records_size
from .outputs import JobOutput
from .record import JobRecord, JobState
from .sampler import TOTAL_ORDER
from .sampling import Sampling
from .splittable import SplitTable, Ticket
from .stepflow import StepRun, make_step_dir, next_inputs, remove_job_files
from .workers import MapperSlots, Outcome, WorkerPolicy

log = EventLog(__name__)


class MapperReported(PeerError):
    """The mapper itself reported the attempt failed (e.g. a reducer was down): not the mapper's fault."""


class Unmappable(PeerError):
    """The mapper reported the split can never be mapped (e.g. its input is corrupt): no retry can do better."""


class Superseded(MapReduceError):
    """Another attempt of the split won while this one still ran: stop listening, it changes nothing."""


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class Coordinator:
    """Runs one JobRecord to a finished state; owns nothing beyond the job's own tasks."""

    def __init__(
        self,
        record: JobRecord,
        settings: Settings,
        transport: Transport,
        discovery: Discovery,
        slots: MapperSlots,
        clock: Callable[[], float],
        keep: Callable[[Result], Awaitable[object]],
        metrics: MasterMetrics | None = None,
        policy: WorkerPolicy | None = None,
        inline: bytes = b"",
        output: JobOutput | None = None,
    ) -> None:
        self.record = record
        self.settings = settings  # for planning and the collector; the map phase reads only ``policy``
        self.policy = policy if policy is not None else WorkerPolicy.of(settings)
        self.transport = transport
        self.keep = keep  # holds the finished result (the master encodes it once); raises JobFailed past its cap
        self.discovery = discovery
        self.slots = slots
        self.clock = clock
        self.metrics = metrics or MasterMetrics()
        self.changed = asyncio.Condition()
        if output is None and record.output:
            output = JobOutput(record, settings)
        self.output = output  # with record.output: opened at the start, committed or fenced at the end
        self.collector = Collector(record, settings, transport, discovery, self.output)
        self.version = 0  # bumped on every split-table change; idle workers wait for it to move
        self.inline = inline  # a small single text input, sent inside every assignment (MR_INLINE_INPUT)
        # A later step's inputs: the previous step's intermediate files (stepflow.py); empty for the first step.
        self.step_inputs: list[InputRef] = []
        record.step_runs = [StepRun(step) for step in range(record.steps)]
        self.direct = DirectParts(record, settings, self.output)  # a map-only job's parts, kept until it ends
        self.sampling = Sampling(record, settings, clock)  # a total-order job's sample, while it runs

    @property
    def fields(self) -> dict[str, Any]:
        return {"job": self.record.id, "epoch": self.record.epoch}

    async def run(self) -> None:
        record = self.record
        began, started = time.time(), self.clock()  # wall time against ``created``; the clock for durations
        try:
            if self.output is not None:
                await self.output.open()  # created now, not at submission: a refused job creates nothing
            await self._prepare()
            mapped = started
            for step in range(record.steps - 1):  # every step but the last writes records for the next one
                await self._run_step(step)
                await self._intermediate(step)
            await self._run_step(record.steps - 1)
            mapped = self.clock()
            record.phases["map_ms"] = _ms(mapped - started) - record.phases.get("sample_ms", 0.0)
            record.transition(JobState.FINALIZING)
            run = record.step_runs[-1]
            run.state = "finalizing"
            if self.direct.at(record.steps - 1):  # a map-only job: its mappers' parts, no reducer asked
                result = await self.direct.publish()
            else:
                result = await self.collector.collect(self._recover, step=record.steps - 1)
            collected = self.clock()
            run.state, run.finalize_ms = "done", _ms(collected - mapped)
            record.phases["finalize_ms"] = _ms(collected - mapped)
            await self.keep(result)  # before DONE: a result too large to hold fails the job, it is never "done"
            record.transition(JobState.DONE)
            splits = record.table.total if record.table else 0
            # The one INFO line of a finished job, with where its time went (per split and stream: DEBUG).
            log.info("job_done", **self.fields, name=record.job_name, keys=len(result), splits=splits,
                     steps=record.steps,
                     partitions=record.partitions, bytes=record.input.size,
                     queued_ms=_ms(began - record.created), **record.phases, ms=_ms(time.time() - record.created))
        except asyncio.CancelledError:
            record.transition(JobState.CANCELLED)
            record.error = record.error or "cancelled"
            log.info("job_cancelled", **self.fields)
            raise
        except MapReduceError as error:
            record.transition(JobState.FAILED)
            record.error = error.message
            log.warning("job_failed", **self.fields, error=error.message)
        except Exception as error:  # a bug: fail the job loudly rather than leave it "running" forever
            record.transition(JobState.FAILED)
            record.error = f"internal error: {error!r}"
            log.error("job_crashed", exc=True, **self.fields)
        finally:
            record.finished = time.time()  # wall clock, like ``created``; the injected clock is for durations
            try:
                if self.output is not None:  # before anyone sees the job end: then no writer of it can publish
                    await asyncio.shield(self.output.fence())
                if record.steps > 1:  # the records between steps: gone once anyone sees the job end
                    await asyncio.shield(self._remove_work())
            finally:
                record.done.set()
            await asyncio.shield(self.collector.release())

    async def _remove_work(self) -> None:
        record = self.record
        try:
            removed = await asyncio.to_thread(remove_job_files, self.settings.work_root, record.id, record.epoch)
        except OSError as error:  # the job's outcome stands; the files are litter a restart or an operator clears
            log.warning("intermediate_removal_failed", **self.fields, error=str(error))
            return
        if removed:
            log.debug("intermediate_removed", **self.fields)

    async def _prepare(self) -> None:
        """Fix R and the reducers and plan the first step's splits over the job's input."""
        record, t = self.record, self.settings.timeouts
        mappers = await self._mappers()
        # from_env derives the count from a static list; settings built in code may leave that to us.
        count = self.settings.reducer_count or len(self.settings.reducer_urls)
        if count < 1:
            raise JobFailed("the number of reducers is not configured: set MR_REDUCER_COUNT to the reducer "
                            "StatefulSet's replicas (or list them in MR_REDUCERS)")
        try:
            # R is the configured count, never what happens to be visible: a missing ordinal is waited for.
            reducers = await wait_for_ordinals(self.discovery, "reducer", range(count), t.recovery,
                                               self.settings.discovery_backoff)
        except OrdinalMissing as error:
            raise JobFailed(f"reducer {error.missing[0]} of {count} (MR_REDUCER_COUNT) did not appear: "
                            f"{error.message}") from None
        # N, the job's partitions, is what it asked for or R; partition p is reducer p % R's (core/partition.py).
        partitions = record.partitions = record.partitions or count
        record.mappers = [m.name for m in mappers]
        record.reducers = [reducers[i].name for i in range(count)]
        inputs = record.input_list()
        record.splits = plan_inputs([r.size for r in inputs], [record.whole or bool(r.compression) for r in inputs],
                                    record.split_size, len(mappers), self.settings.min_split_size,
                                    self.settings.max_splits)
        record.table = self._table(record.splits)
        record.step_runs[0].table, record.step_runs[0].bytes_total = record.table, record.input.size
        record.transition(JobState.RUNNING)
        log.debug("job_planned", **self.fields, splits=len(record.splits), partitions=partitions,
                  reducers=count, mappers=len(mappers), bytes=record.input.size, steps=record.steps)

    async def _run_step(self, step: int) -> None:
        """Map step ``step``'s planned splits (the first step's over the input, a later one's over the files the
        previous step wrote), each partition streamed to its reducer."""
        record, run = self.record, self.record.step_runs[step]
        assert record.table is not None
        record.step, run.state = step, "mapping"
        if not self.direct.at(step):  # a map-only step streams to no reducer
            self.collector.begin_step()
        mappers = await self._mappers()
        if (step == record.steps - 1 and record.partitioner == TOTAL_ORDER and record.partitions > 1
                and not self.direct.at(step)):
            # The last step's keys are the output's: cut from a sample of that step's own input (earlier steps
            # partition by the stable hash; their order is nobody's).
            await self._sample(mappers)
        began = self.clock()
        await self._run_table(record.table, mappers, only=[])
        run.map_ms = _ms(self.clock() - began)

    async def _intermediate(self, step: int) -> None:
        """Step ``step``'s reducers write their records as intermediate files; the next step is planned over
        them, their sizes as reported (never read through the master)."""
        record, run, t = self.record, self.record.step_runs[step], self.settings
        run.state = "finalizing"
        began = self.clock()
        await asyncio.to_thread(make_step_dir, t.work_root, record.id, record.epoch, step)
        reports = await self.collector.reports(self._recover, step, step_dir(record.id, record.epoch, step))
        run.state, run.finalize_ms = "done", _ms(self.clock() - began)
        self.step_inputs = next_inputs(record.id, record.epoch, step, reports)
        mappers = await self._mappers()
        sizes = [ref.size for ref in self.step_inputs]
        record.splits = plan_inputs(sizes, [False] * len(sizes), record.split_size, len(mappers),
                                    t.min_split_size, t.max_splits)
        record.table = self._table(record.splits)
        following = record.step_runs[step + 1]
        following.table, following.bytes_total = record.table, sum(sizes)
        log.debug("step_planned", **self.fields, step=step + 1, splits=len(record.splits), bytes=sum(sizes),
                  files=len(sizes))

    async def _sample(self, mappers: list[Peer]) -> None:
        """A total-order job's cut points, from a sample of the last step's own input (sampling.py)."""
        sources = self.step_inputs if self.record.step > 0 else self.record.input_list()
        await self.sampling.run(sources, lambda places: self._run_table(self._table(places), mappers, only=[]))

    def _table(self, splits: list[Split]) -> SplitTable:
        p = self.policy
        return SplitTable(splits, p.max_attempts, self.clock, p.backup_tasks, p.backup_after)

    async def _run_table(self, table: SplitTable, mappers: list[Peer], only: list[int]) -> None:
        """Feed every split of ``table`` to the mappers (just partitions ``only``, if given) until all are done."""
        table.mappers.update(m.name for m in mappers)
        try:
            await self._feed(table, mappers, only)
        finally:
            table.cut("the job ended while it ran")  # none is left running once the table is done
        if not table.all_done:
            raise JobFailed(
                f"no mapper could be reached; {table.total - table.done_count} splits unfinished"
                + (f"; last failure: {table.last_failure}" if table.last_failure else "")
            )

    async def _feed(self, table: SplitTable, mappers: list[Peer], only: list[int]) -> None:
        """Run the mappers' workers until every split is done, every worker has given up, or one raises."""
        try:
            async with asyncio.TaskGroup() as group:
                workers = [
                    group.create_task(self._worker(mapper, table, only))
                    for mapper in mappers
                    for _ in range(self.policy.slots)
                ]
                # Once every split is done, end the workers still busy: one queued for a mapper slot another job
                # holds, or one listening to an attempt that lost to a backup, must not hold this job open.
                all_done = group.create_task(self._until_all_done(table))
                either: list[asyncio.Future[Any]] = [all_done, asyncio.gather(*workers, return_exceptions=True)]
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                for task in [all_done, *workers]:
                    task.cancel()
        except BaseExceptionGroup as errors:
            raise first_error(errors) from None

    async def _until_all_done(self, table: SplitTable) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: table.all_done)

    async def _worker(self, mapper: Peer, table: SplitTable, only: list[int]) -> None:
        """Feeds one mapper slot until no split is left; backs off a faulty mapper, retires an unreachable one."""
        unreachable_since: float | None = None
        faults = 0  # attempts in a row this mapper stalled or crashed on
        try:
            while not table.all_done:
                ticket: Ticket | None = None
                outcome = Outcome.OK
                async with self.slots.hold(mapper.name):
                    seen = self.version  # read with the table: any later change wakes us, none is missed
                    ticket = table.next_for(mapper.name)
                    if ticket is not None:
                        outcome = await self._attempt(mapper, ticket, table, only)
                if ticket is None:
                    if not table.all_done:
                        await self._wait_for_change(seen)
                    continue
                if outcome in (Outcome.OK, Outcome.REPORTED):
                    unreachable_since, faults = None, 0
                    continue
                if outcome == Outcome.UNREACHABLE:
                    now = self.clock()
                    unreachable_since = unreachable_since or now
                    if now - unreachable_since > self.policy.unreachable:
                        log.warning("mapper_unreachable", **self.fields, mapper=mapper.name)
                        return
                # A stalled or crashing mapper waits before it may take (and perhaps lose) another split.
                faults += 1
                pause = self.policy.backoff.pause(faults + 1, random.uniform(0.5, 1.5))
                await asyncio.sleep(pause)  # retry backoff, not a condition wait
                mapper = await self._refresh(mapper)
        except BaseException:
            table.retire(mapper.name)
            raise  # the job is failing, cancelled, or done (see _run_table): nobody needs waking
        table.retire(mapper.name)
        await self._notify()

    async def _wait_for_change(self, seen: int) -> None:
        async with self.changed:
            try:
                # A timed wake-up too: a straggler may deserve a backup before anything else changes.
                async with asyncio.timeout(self.policy.tick):
                    await self.changed.wait_for(lambda: self.version != seen)
            except TimeoutError:
                pass

    async def _notify(self) -> None:
        async with self.changed:
            self.version += 1
            self.changed.notify_all()

    async def _refresh(self, mapper: Peer) -> Peer:
        """A replaced pod keeps its name but may change address: look it up again."""
        try:
            for peer in await self.discovery.peers("mapper"):
                if peer.name == mapper.name:
                    return peer
        except DiscoveryError:
            pass
        return mapper

    def _assignment(self, ticket: Ticket, only: list[int]) -> Assignment:
        record = self.record
        source = self.step_inputs[ticket.split.input] if record.step > 0 else record.input_at(ticket.split.input)
        sampling = self.sampling.records  # a sample assignment's records to read, or 0
        direct = self.direct.at(record.step) and not sampling
        return Assignment(
            job=record.id, epoch=record.epoch, split=ticket.split.index, attempt=ticket.attempt,
            job_name=record.job_name, input_kind=source.kind, input_location=source.location,
            input_name=source.name, start=ticket.split.start, end=ticket.split.end,
            partitions=1 if sampling else record.partitions, only_partitions=only, params=record.params,
            compression=source.compression, inline=self.inline if source is record.input else b"",
            pin_size=source.size, pin_etag=source.etag, pin_modified=source.modified, files=record.files,
            format=record.format if record.step == 0 else LINES, max_bad_records=record.tally.max_bad_records,
            step=record.step, direct=direct, output=record.output if direct else "",
            reducers=1 if sampling else len(record.reducers), cuts=[] if sampling else record.cuts,
            sample=sampling, whole=record.whole and record.step == 0,
        )

    async def _attempt(self, mapper: Peer, ticket: Ticket, table: SplitTable, only: list[int]) -> Outcome:
        """Run one attempt and say how it went."""
        split, attempt = ticket.split.index, ticket.attempt
        fields = {**self.fields, "split": split, "attempt": attempt, "mapper": mapper.name}
        log.debug("split_assigned", **fields, backup=ticket.backup, only=only or None)
        if ticket.backup:
            self.metrics.attempt("backup")
        began = self.clock()
        try:
            done, records = await self._run_assignment(mapper, ticket, table, only)
        except Unmappable as exc:
            log.warning("split_attempt_failed", **fields, cause=exc.message, final=True)
            self.metrics.attempt("failed")
            self.metrics.attempt_ended("failed", self.clock() - began)
            # Counted and shown like any failed attempt, then the job fails at once (JobFailed naming the split),
            # unless another attempt of the split has finished it meanwhile.
            table.failed(split, attempt, exc.message, final=True)
            await self._notify()
            return Outcome.REPORTED
        except Superseded:
            log.info("attempt_superseded", **fields)
            self.metrics.attempt_ended("superseded", self.clock() - began)
            await self._notify()
            return Outcome.OK
        except PeerUnreachable as exc:
            self.metrics.attempt("unreachable")
            self.metrics.attempt_ended("unreachable", self.clock() - began)
            table.abandoned(split, attempt, f"mapper unreachable: {exc.message}")
            await self._notify()
            return Outcome.UNREACHABLE
        except (MapReduceError, TimeoutError) as exc:
            reported = isinstance(exc, MapperReported)
            cause = exc.message if isinstance(exc, MapReduceError) else describe(exc)
            if isinstance(exc, TimeoutError):
                cause = f"no word from {mapper.name} for the lease of {self.policy.lease:g} s (stalled)"
            log.warning("split_attempt_failed", **fields, cause=cause)
            self.metrics.attempt("failed")
            stalled = isinstance(exc, TimeoutError)
            self.metrics.attempt_ended("lease_expired" if stalled else "failed", self.clock() - began, stalled=stalled)
            # Raises JobFailed on the split's last allowed failure: then no worker is woken to start another.
            table.failed(split, attempt, cause,
                         AttemptOutcome.LEASE_EXPIRED if isinstance(exc, TimeoutError) else AttemptOutcome.FAILED)
            await self._notify()
            return Outcome.REPORTED if reported else Outcome.FAULTY
        self.record.duplicate_streams += done.duplicates
        counted = table.succeeded(split, attempt, done.bytes_read)
        # A split's map-side counts: once, never again from a recovery's re-map, and never from a sample (which
        # maps records the split's own attempt maps again).
        if counted and not only and not self.sampling.records:
            self._tally(done, ticket.split.input)
        if counted and self.direct.at(self.record.step) and not self.sampling.records:  # a map-only split's part: the
            self.direct.keep(done, records)  # counted attempt's only
        if counted and self.sampling.records:
            self.sampling.keep(split, done, mapper.name)
        self.metrics.attempt("ok" if counted else "stale")
        self.metrics.attempt_ended("ok" if counted else "superseded", self.clock() - began)
        if not counted:
            log.info("late_report_dropped", **fields)
        await self._notify()
        return Outcome.OK

    def _tally(self, done: SplitDone, input_index: int) -> None:
        """Add a counted attempt's counters and bad records to the job's; JobFailed past a limit."""
        tally = self.record.tally
        try:
            tally.add_counters(done.counters)
        except CounterLimit as error:
            raise JobFailed(f"job {self.record.job_name!r}: {error.message}") from None
        tally.add_bad(input_index, done.bad_count, done.bad_first)
        over = tally.over()
        if over:
            raise JobFailed(f"job {self.record.job_name!r}: {over}")

    async def _run_assignment(self, mapper: Peer, ticket: Ticket, table: SplitTable,
                              only: list[int]) -> tuple[SplitDone, list[Any]]:
        """Listen to one assignment's stream; the lease is held here, between messages, whatever the transport.
        A map-only attempt's records (SplitRecords, before its SplitDone) come back with it."""
        lease = self.policy.lease
        assignment = self._assignment(ticket, only)
        records: list[Any] = []
        size = 0
        async with contextlib.aclosing(self.transport.assign(mapper, assignment)) as messages:
            while True:
                async with asyncio.timeout(lease):
                    message = await anext(messages, None)
                if message is None:
                    raise PeerError(f"{mapper.name} closed the assignment without a report")
                if message.key != assignment.key:
                    self.record.stale_dropped += 1
                    self.metrics.attempt("stale")
                    continue
                if isinstance(message, Progress):
                    winner = table.winner(assignment.split)
                    if winner is not None and winner != assignment.attempt:
                        # A backup won: a straggler that still heartbeats must not hold the job (or its slot).
                        raise Superseded(f"attempt {winner} of split {assignment.split} finished first")
                    table.progress(assignment.split, assignment.attempt, message.bytes_read)
                elif isinstance(message, SplitRecords):
                    if not assignment.direct or assignment.output:
                        raise PeerError(f"{mapper.name} sent records for a split that reports none")
                    size += records_size(message.records)
                    if size > self.settings.result_max:
                        raise Unmappable(f"split {assignment.split} of the map-only job made more records than "
                                         f"MR_RESULT_MAX={self.settings.result_max} bytes: give it an output")
                    records.extend(message.records)
                elif isinstance(message, SplitDone):
                    return message, records
                else:
                    if not message.retriable:
                        raise Unmappable(message.cause)
                    raise MapperReported(f"{mapper.name}: {message.cause}")

    async def _recover(self, lost: dict[int, list[int]], round_number: int) -> None:
        """Re-map the lost splits, each for its own partition only; committed partitions answer "duplicate"."""
        record = self.record
        mappers = await self._mappers()
        for partition, splits in sorted(lost.items()):
            record.recoveries.append({"round": round_number, "partition": partition, "splits": len(splits),
                                      "step": record.step})
            log.warning("partition_recovering", **self.fields, partition=partition, splits=len(splits),
                        round=round_number, step=record.step)
        self.metrics.recovered(len(lost))
        by_index = {s.index: s for s in record.splits}
        try:
            async with asyncio.TaskGroup() as group:
                for partition, splits in lost.items():
                    table = self._table([by_index[i] for i in splits])
                    group.create_task(self._run_table(table, mappers, only=[partition]))
        except BaseExceptionGroup as errors:
            raise first_error(errors) from None

    async def _mappers(self) -> list[Peer]:
        try:
            return await self.discovery.wait_for("mapper", 1, self.settings.timeouts.peers)
        except DiscoveryError as error:
            raise JobFailed(f"no mapper is visible: {error.message}") from None
