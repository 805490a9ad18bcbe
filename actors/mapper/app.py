"""The mapper actor: maps an assigned split and streams each partition's partial values to its reducer."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from ..core import wire
from ..core.config import Backoff, Settings
from ..core.counters import valid_counters, valid_records
from ..core.errors import (
    Conflict,
    DiscoveryError,
    InputError,
    KeyTooLarge,
    MapReduceError,
    PeerError,
    Unavailable,
    ValueTooLarge,
    WireError,
    first_error,
)
from ..core.logs import EventLog
from ..core.messages import (
    Assignment,
    Progress,
    SplitDone,
    SplitFailed,
    SplitRecords,
    StreamAck,
    StreamHeader,
    from_wire,
    to_wire,
)
from ..core.partition import check_partitions, owner
from ..core.ranges import check_cuts
from ..core.workfiles import check_work_input
from ..discovery import Discovery, Peer
from ..inputs.outdir import PartInfo
from ..inputs.ref import WORK
from ..jobs import NATIVE, Job, native_status
from ..net.actor import DISCOVERY, IDENTITY, JOBS, SETTINGS, base_app, discovery_context, read_cbor_body
from ..net.client import PeerClient, PeerUnreachable, session_context
from ..net.metrics import METRICS, MapperMetrics
from ..net.ordinals import OrdinalMissing, wait_for_ordinals
from ..net.transport import HttpTransport, Transport
from ..sdk import JobCodeError, JobConfigError
from ..tasks.calls import user_spec
from ..tasks.pool import TaskPool
from ..tasks.protocol import MapDone
from .direct import DirectDelivery
from .sample import sampled_keys
from .spool import Spool
from .taskmap import TaskMapping

PROGRESS_GAP = 0.1  # seconds: the most often a mapper sends an assignment's master a progress heartbeat

SESSION = web.AppKey("session", aiohttp.ClientSession)
MAPPER_METRICS = web.AppKey("mapper_metrics", MapperMetrics)
TASKS = web.AppKey("tasks", TaskPool)


@dataclass(frozen=True)
class SendPolicy:
    """How a mapper delivers one partition: the few settings its retry loop reads."""

    attempts: int  # MR_SEND_ATTEMPTS: tries for a reducer that answers errors
    backoff: Backoff  # the settings' send_backoff
    recovery: float  # MR_TIMEOUT_RECOVERY: how long a reducer that is down (or not visible) is waited for
    discovery: Backoff  # the settings' discovery_backoff: pauses while looking for a reducer not visible yet

    @classmethod
    def of(cls, settings: Settings) -> SendPolicy:
        return cls(settings.send_attempts, settings.send_backoff, settings.timeouts.recovery,
                   settings.discovery_backoff)

log = EventLog(__name__)


def build_mapper(settings: Settings) -> web.Application:
    app = base_app(settings, client_max_size=settings.message_cap)
    app[MAPPER_METRICS] = MapperMetrics(app[METRICS])
    app.cleanup_ctx.append(session_context(SESSION))
    app.cleanup_ctx.append(discovery_context)
    app.cleanup_ctx.append(tasks_context)
    app.router.add_post("/internal/v1/assign", assign)
    # Once per process: which native kernel this mapper runs (the native one may be absent or switched off).
    log.info("map_kernel", native=NATIVE and settings.native_kernel, status=native_status(),
             enabled=settings.native_kernel)
    return app


async def tasks_context(app: web.Application) -> AsyncIterator[None]:
    """The task processes that run user jobs' code: as long as the app, killed with it."""
    settings = app[SETTINGS]
    # At least a worker per assignment slot: an attempt never waits for one (it could not heartbeat meanwhile).
    app[TASKS] = TaskPool.of(settings.replace(task_workers=max(settings.task_pool, settings.mapper_slots)))
    try:
        yield
    finally:
        await app[TASKS].close()


async def assign(request: web.Request) -> web.StreamResponse:
    """Run one assignment; the answer is a frame stream: PROGRESS heartbeats, then SPLITDONE or SPLITFAILED."""
    settings = request.app[SETTINGS]
    assignment = from_wire(await read_cbor_body(request, settings.message_cap), Assignment)
    check_assignment(assignment, settings)
    # User code runs in task processes; a later step's view maps records (its input is intermediate files).
    job = request.app[JOBS].view(assignment.job_name, assignment.params, assignment.step)
    if request.app[IDENTITY].draining:
        raise Unavailable("mapper is shutting down")
    response = web.StreamResponse(headers={"Content-Type": "application/cbor-seq"})
    await response.prepare(request)
    client = PeerClient(request.app[SESSION], settings)
    metrics = request.app[MAPPER_METRICS]
    run = MapRun(assignment, job, settings, client, HttpTransport(client), request.app[DISCOVERY], metrics,
                 tasks=request.app[TASKS])
    fields = {"job": assignment.job, "epoch": assignment.epoch, "split": assignment.split,
              "attempt": assignment.attempt}
    log.debug("split_started", **fields, start=assignment.start, end=assignment.end)
    try:
        outcome: SplitDone | SplitFailed
        try:
            # aclosing: if the master goes away mid-write, the run's own cleanup (spool, send task) runs here,
            # not later in an unowned finalizer task.
            # Heartbeats at most every PROGRESS_GAP (and a lease's tenth): a small split answers with its report
            # alone, one frame the master reads rather than three.
            loop, gap = asyncio.get_running_loop(), min(PROGRESS_GAP, settings.timeouts.lease / 10)
            last = loop.time()
            async with contextlib.aclosing(run.run()) as progress_stream:
                async for progress in progress_stream:
                    # A map-only split's records: every one goes.
                    if isinstance(progress, SplitRecords) or loop.time() - last >= gap:
                        await response.write(wire.frame(to_wire(progress), settings.message_cap))
                        last = loop.time()
            outcome = run.outcome()
            metrics.splits_done.inc()
            log.debug("split_done", **fields, bytes=outcome.bytes_read, keys=outcome.keys)
        except MapReduceError as error:
            # Retrying elsewhere cannot help an input the address policy refuses or a path that cannot be read (nor
            # a conflict, a key past MR_MAX_KEY, a value past MR_FRAME_CAP, or a job's own code failing): the job
            # fails at once, not after MR_MAX_ATTEMPTS.
            retriable = not isinstance(error, (Conflict, KeyTooLarge, ValueTooLarge, InputError, JobCodeError,
                                                JobConfigError))
            outcome = SplitFailed(assignment.job, assignment.epoch, assignment.split, assignment.attempt,
                                  cause=error.message, retriable=retriable)
            metrics.splits_failed.inc()
            # The user code's traceback goes to this actor's logs of the job, never into the answer.
            trace = {"traceback": error.traceback} if isinstance(error, JobCodeError) and error.traceback else {}
            log.warning("split_failed", **fields, cause=error.message, **trace)
        await response.write(wire.frame(to_wire(outcome), settings.message_cap))
        await response.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        # The master went away or gave up on this attempt: stop, nothing to hand back.
        log.warning("split_abandoned", **fields, cause="master closed the assignment")
    return response


def check_assignment(a: Assignment, settings: Settings) -> None:
    """A 400 before any work for an assignment whose shape no master makes: partitions past MR_MAX_PARTITIONS (per-
    partition spools would exhaust memory) or none, a redo of partitions it lacks, cuts that are not ascending
    canonical keys, or an intermediate input that is not its own job's previous step's file."""
    check_partitions(a.partitions, a.only_partitions, settings.max_partitions)
    check_cuts(a.cuts, a.partitions)
    if a.input_kind == WORK:
        check_work_input(a.input_location, a.job, a.epoch, a.step)


class MapRun(TaskMapping, DirectDelivery):
    """One attempt at one split: read the owned lines, map and spool them, stream every partition out."""

    def __init__(
        self,
        assignment: Assignment,
        job: Job,
        settings: Settings,
        client: PeerClient,
        transport: Transport,
        discovery: Discovery,
        metrics: MapperMetrics | None = None,
        tasks: TaskPool | None = None,
    ) -> None:
        """``tasks``: where a user job's code runs (None: here, as a unit test's run does)."""
        self.a = assignment
        self.job = job
        self.settings = settings
        self.client = client  # for reading served and URL inputs only; peers are reached through the transport
        self.transport = transport
        self.discovery = discovery
        self.send_policy = SendPolicy.of(settings)
        self.metrics = metrics or MapperMetrics()
        self.bytes_read = 0
        self.keys = 0
        self.acks: dict[int, StreamAck] = {}
        self.tasks = tasks
        self.lines = 0  # lines a task process mapped so far in the current chunk
        self.done: MapDone | None = None  # a task process's account of the split: counters and bad records
        self.part: PartInfo | None = None  # a direct (map-only) attempt's file, written to the output's staging
        self.samples: list[str] = []  # a sample assignment's keys
        self.streams_open = self.streams_peak = 0  # shuffle streams open now, and at most (bounded by R)

    async def run(self) -> AsyncGenerator[Progress | SplitRecords, None]:
        s = self.settings
        # A map-only split's records go to one place (its attempt file, or the master), not to N partitions.
        spool = Spool(self.job, 1 if self.a.direct else self.a.partitions, s.key_budget, s.frame_cap,
                      s.spool_dir or None, frame_keys=s.frame_keys, max_key=s.max_key, native=s.native_kernel,
                      fmt=self.a.format, cuts=[] if self.a.direct else self.a.cuts)
        self.metrics.spools.add(spool)
        spec = user_spec(self.job, self.a.params) if self.tasks is not None else None
        try:
            if spec is None and self.a.whole:
                raise MapReduceError(f"job {self.job.name!r}: mapper_raw runs in task processes only")
            if self.a.direct and spec is None:
                raise MapReduceError(f"job {self.job.name!r}: a map-only job runs in task processes only")
            if spec is None:
                stream = self._map(spool)
            elif self.a.whole:
                stream = self._map_whole_in_task(spool, spec)
            else:
                stream = self._map_in_task(spool, spec)
            async with contextlib.aclosing(stream) as mapping:
                async for progress in mapping:
                    yield progress
            log.debug("split_mapped", job=self.a.job, split=self.a.split, attempt=self.a.attempt, keys=self.keys,
                      bytes=self.bytes_read)
            if self.a.direct:
                async with contextlib.aclosing(self._deliver(spool)) as delivering:
                    async for item in delivering:
                        yield item
                return
            if self.a.sample:  # a sample: its keys go back to the master, nothing to any reducer
                self.samples = sampled_keys(spool, s.message_cap, self.a.sample)
                return
            send = asyncio.ensure_future(self._send_all(spool))
            try:
                heartbeat = self.settings.timeouts.lease / 3
                while not send.done():
                    await asyncio.wait({send}, timeout=heartbeat)
                    if not send.done():
                        yield self._progress()
                send.result()
            finally:
                send.cancel()
                await asyncio.gather(send, return_exceptions=True)
        finally:
            self.metrics.spools.discard(spool)
            spool.close()

    async def _map(self, spool: Spool) -> AsyncGenerator[Progress, None]:
        name = self.a.input_name
        async with contextlib.aclosing(self._owned_pieces()) as reading:
            async for pieces in reading:
                for offset, piece in pieces:
                    spool.feed(piece, name, offset)
                    await asyncio.sleep(0)  # a yield between chunks of CPU work, not a wait for a condition
                # Every block, not every piece: reading a long word yields no piece for a while, and a silent
                # mapper loses its lease.
                yield self._progress()
        spool.flush()
        self.keys = spool.total_keys
        yield self._progress()

    async def _send_all(self, spool: Spool) -> None:
        """Every partition to its reducer (ordinal partition % R): the streams to one reducer go one after another,
        so a split has at most R streams open whatever its number of partitions."""
        partitions = self.a.only_partitions or list(range(self.a.partitions))
        count = self.a.reducers or self.a.partitions
        reducers = await self._reducers()
        by_owner: dict[int, list[int]] = {}
        for partition in partitions:
            by_owner.setdefault(owner(partition, count), []).append(partition)
        self.streams_open = self.streams_peak = 0
        try:
            async with asyncio.TaskGroup() as group:
                for ordinal, owned in by_owner.items():
                    group.create_task(self._send_to(spool, ordinal, owned, reducers.get(ordinal)))
        except BaseExceptionGroup as errors:
            raise first_error(errors) from None

    async def _send_to(self, spool: Spool, ordinal: int, partitions: list[int], reducer: Peer | None) -> None:
        for partition in partitions:
            self.streams_open += 1
            self.streams_peak = max(self.streams_peak, self.streams_open)
            try:
                reducer = await self._send(spool, partition, ordinal, reducer)
            finally:
                self.streams_open -= 1

    async def _reducers(self) -> dict[int, Peer]:
        """The reducers visible now, by ordinal; a send waits for its own reducer if it is not among them."""
        try:
            return {p.ordinal: p for p in await self.discovery.peers("reducer")}
        except DiscoveryError:
            return {}

    async def _send(self, spool: Spool, partition: int, ordinal: int, reducer: Peer | None) -> Peer:
        """Deliver one partition: a reducer that is down or not visible (restarting, not Ready yet) is waited for
        up to the recovery timeout; one that answers an error gets MR_SEND_ATTEMPTS tries."""
        a, policy = self.a, self.send_policy
        header = StreamHeader(job=a.job, epoch=a.epoch, split=a.split, attempt=a.attempt, partition=partition,
                              partitions=a.partitions, job_name=a.job_name, size=spool.sizes[partition],
                              params=a.params, step=a.step, reducers=a.reducers)
        fields = {"job": a.job, "split": a.split, "attempt": a.attempt, "partition": partition}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.recovery
        tries = failures = 0
        while True:
            tries += 1
            retry_after = 0.0
            try:
                if reducer is None:
                    found = await wait_for_ordinals(self.discovery, "reducer", [ordinal],
                                                    max(deadline - loop.time(), 0.001), policy.discovery)
                    reducer = found[ordinal]
                sending = loop.time()
                ack = await self.transport.send_partition(reducer, header, spool.blocks(partition),
                                                          spool.commit(partition))
                self.metrics.send_duration.observe(loop.time() - sending)
                break
            except OrdinalMissing as error:
                raise Unavailable(f"reducer {ordinal} did not come back: {error.message}") from None
            except PeerUnreachable as error:
                cause = error.message  # down: wait for it (a replaced pod may come back at a new address)
            except (PeerError, Unavailable) as error:
                failures += 1
                if failures >= policy.attempts:
                    raise
                cause = error.message
                retry_after = error.retry_after if isinstance(error, Unavailable) else 0.0
            reducer = None
            delay = policy.backoff.pause(tries, random.uniform(0.5, 1.5))
            delay = max(delay, retry_after * random.uniform(0.5, 1.0))
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise Unavailable(f"reducer {ordinal} did not take split {a.split} within {policy.recovery:g} s "
                                  f"(MR_TIMEOUT_RECOVERY): partition {partition}: {cause}")
            log.info("partition_send_retry", **fields, tries=tries, cause=cause)
            self.metrics.send_retries.inc()
            await asyncio.sleep(min(delay, remaining))  # backoff between retries, not a wait for a condition
        self.acks[partition] = ack
        self.metrics.shuffle_bytes.inc(spool.sizes[partition])
        log.debug("partition_sent", **fields, status=ack.status)
        return reducer

    def outcome(self) -> SplitDone:
        a = self.a
        duplicates = sum(1 for ack in self.acks.values() if ack.status == "duplicate")
        done = self.done
        if done is None:  # mapped here (a native engine): no user code, nothing counted
            return SplitDone(a.job, a.epoch, a.split, a.attempt, bytes_read=self.bytes_read, keys=self.keys,
                             duplicates=duplicates, samples=self.samples)
        if not (valid_counters(done.counters) and valid_records(done.bad_first)):
            raise WireError(f"job {a.job_name!r}: a task process sent malformed counters or bad records")
        part = self.part
        return SplitDone(a.job, a.epoch, a.split, a.attempt, bytes_read=self.bytes_read, keys=self.keys,
                         duplicates=duplicates, counters=done.counters, bad_count=done.bad_count,
                         bad_first=done.bad_first, part_records=part.keys if part else 0,
                         part_bytes=part.bytes if part else 0, part_sha256=part.sha256 if part else "",
                         samples=self.samples)
