"""The collector: asks every reducer for its partition's report and assembles the job's result."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ..core.config import Settings
from ..core.counters import CounterLimit
from ..core.errors import DiscoveryError, JobFailed, MapReduceError, PeerError, Unavailable, WireError
from ..core.logs import EventLog
from ..core.messages import Columns, Finalize, MapResult, Missing, PartFile, Records, Release, Report, ReportPayload
from ..core.partition import owner
from ..discovery import Discovery, Peer
from ..inputs.outdir import PartInfo, part_name
from ..jobs.result import OrderedRuns, Result
from ..net.client import retrying
from ..net.ordinals import wait_for_ordinals
from ..net.transport import Transport
from .outputs import JobOutput
from .record import JobRecord

Remap = Callable[[dict[int, list[int]], int], Awaitable[None]]

log = EventLog(__name__)


def records_of(payloads: list[ReportPayload]) -> list[list[Any]]:
    """Every partition's records, in partition order; a partition that reported anything else fails the job."""
    records: list[list[Any]] = []
    for partition, payload in enumerate(payloads):
        if not isinstance(payload, Records):
            raise JobFailed(f"reducer {partition} reported {type(payload).__name__} where records were expected")
        if not all(type(record) is list and len(record) == 2 for record in payload.records):
            raise JobFailed(f"reducer {partition} sent a malformed report: records must be [key, value] pairs")
        records.extend(payload.records)
    return records


class Collector:
    """The reduce side of one job: finalize, recover lost partitions through ``remap``, release the unreported.

    A reducer forgets a job once it has reported it (keeping its answer a while for a repeated finalize), so only
    the partitions never reported (a failed or cancelled job) need a Release."""

    def __init__(self, record: JobRecord, settings: Settings, transport: Transport, discovery: Discovery,
                 output: JobOutput | None = None) -> None:
        self.record = record
        self.output = output  # with record.output: where the parts are staged and committed
        self.settings = settings
        self.transport = transport
        self.discovery = discovery
        self.fields = {"job": record.id, "epoch": record.epoch}
        # Partitions whose report of the current step arrived: their reducers forgot the job (until the next step's
        # streams reach them).
        self.reported: set[int] = set()
        self.streamed = False  # whether any step streamed to the reducers (a map-only job's one step does not)

    def begin_step(self) -> None:
        """A step's streams are about to start: every reducer will hold the job again until it reports."""
        self.reported.clear()
        self.streamed = True

    async def reports(self, remap: Remap, step: int = 0, work: str = "") -> list[Report]:
        """Every partition's report of ``step``, in partition order; a partition whose reducer lost splits of it
        has ``remap`` redo just those. ``work``: not the last step, the directory its records are written to."""
        record = self.record
        reports: dict[int, Report] = {}
        pending = list(range(record.partitions))
        for round_number in range(1, self.settings.max_attempts + 2):
            answers = await self._finalize_all(pending, step, work)
            for answer in answers:
                if isinstance(answer, Report) and answer.partition not in reports:
                    self._tally(answer)  # a partition's reduce-side counts: from its first report only
            lost = {a.partition: a.splits for a in answers if isinstance(a, Missing)}
            reports.update({a.partition: a for a in answers if isinstance(a, Report)})
            if not lost:
                break
            if round_number > self.settings.max_attempts:
                raise JobFailed(f"partitions {sorted(lost)} still lack splits after {round_number - 1} recoveries")
            await remap(lost, round_number)
            pending = sorted(lost)
        return [reports[p] for p in sorted(reports)]

    async def collect(self, remap: Remap, step: int = 0) -> Result:
        """The job's result from every partition's report of its last step ``step`` (see :meth:`reports`)."""
        record = self.record
        reports = {report.partition: report for report in await self.reports(remap, step)}
        if record.output:
            await self._commit_output([reports[p] for p in sorted(reports)])
            return {}  # the result is in the output directory; no key or value passed through the master
        # The reducer finished them (a job's reduce runs there once). A packing engine's come as runs in top order:
        # the job's encoder merges them into the held JSON later, with no dict of every key made here.
        payloads = [reports[p].payload for p in sorted(reports)]
        files = [p for p in sorted(reports) if isinstance(reports[p].payload, PartFile)]
        if files:
            raise JobFailed(f"reducers of partitions {files} reported part files for a job without an output")
        if any(isinstance(payload, Records) for payload in payloads):
            return records_of(payloads)
        runs = tuple(payload for payload in payloads if isinstance(payload, Columns))
        maps = [payload.totals for payload in payloads if isinstance(payload, MapResult)]
        if runs and not any(maps):
            return OrderedRuns(runs)
        result: dict[str, Any] = {}
        for partition, payload in zip(sorted(reports), payloads, strict=True):
            try:
                if isinstance(payload, MapResult):
                    result.update(payload.totals)
                elif isinstance(payload, Columns):
                    result.update(OrderedRuns((payload,)).to_dict())
            except WireError as error:  # a lying or broken reducer: its report is refused, and with it the job
                raise JobFailed(f"reducer {partition} sent a malformed report: {error.message}") from None
        return result

    def _tally(self, report: Report) -> None:
        try:
            self.record.tally.add_counters(report.counters)
        except CounterLimit as error:
            raise JobFailed(f"job {self.record.job_name!r}: {error.message}") from None

    async def _commit_output(self, reports: list[Report]) -> None:
        """Every part staged with its reported size, then moved into place and ``_SUCCESS`` written (JobOutput)."""
        record = self.record
        files = {r.partition: r.payload for r in reports if isinstance(r.payload, PartFile)}
        unwritten = [r.partition for r in reports if r.partition not in files]
        if unwritten:
            raise JobFailed(f"reducers of partitions {unwritten} reported totals instead of writing their parts")
        parts = [PartInfo(f.name, f.size, f.keys, f.sha256) for f in files.values()]
        wrong = [p for p, f in files.items() if f.name != part_name(p)]
        if wrong:
            raise JobFailed(f"reducers of partitions {wrong} reported parts under other names")

        if self.output is None:
            raise JobFailed(f"output {record.output!r} was never opened")
        record.written = await self.output.commit(parts, {part_name(r.partition): r.incarnation for r in reports})
        log.info("output_committed", **self.fields, parts=len(parts), keys=record.written["keys"],
                 bytes=record.written["bytes"])

    @property
    def reducer_count(self) -> int:
        """R: the job's reducers (the partition p is reducer p % R's)."""
        return len(self.record.reducers) or self.record.partitions

    async def _finalize_all(self, partitions: list[int], step: int, work: str) -> list[Report | Missing]:
        """Every partition's answer of ``step``: the reducers in parallel, each reducer's partitions one after
        another, so at most R finalizes are in flight whatever N is (a reducer's finalize sorts or reduces, or writes
        the intermediate file of, a whole partition)."""
        by_owner: dict[int, list[int]] = {}
        for partition in partitions:
            by_owner.setdefault(owner(partition, self.reducer_count), []).append(partition)

        async def in_turn(owned: list[int]) -> list[Report | Missing]:
            return [await self._finalize(partition, step, work) for partition in owned]

        answers = await asyncio.gather(*(in_turn(owned) for owned in by_owner.values()))
        return [answer for owned in answers for answer in owned]

    async def _reducer(self, ordinal: int) -> Peer:
        try:
            found = await wait_for_ordinals(self.discovery, "reducer", [ordinal], self.settings.timeouts.peers,
                                            self.settings.discovery_backoff)
        except DiscoveryError as error:
            raise Unavailable(f"reducer {ordinal} is not visible: {error.message}") from None
        return found[ordinal]

    async def _finalize(self, partition: int, step: int, work: str) -> Report | Missing:
        """Ask the reducer of ``partition`` for its report of ``step``, waiting (bounded) for it to come back if
        it is down."""
        record, settings = self.record, self.settings
        ordinal = owner(partition, self.reducer_count)
        message = Finalize(job=record.id, epoch=record.epoch, partition=partition, splits=len(record.splits),
                           job_name=record.job_name, output="" if work else record.output, files=record.files,
                           step=step, work=work, partitions=record.partitions, reducers=self.reducer_count)

        async def call() -> Report | Missing:
            return await self.transport.finalize(await self._reducer(ordinal), message)

        try:
            answer = await retrying(call, (PeerError, Unavailable), 1_000_000, settings.timeouts.recovery,
                                    settings.peer_backoff)
        except (PeerError, Unavailable) as error:
            raise JobFailed(f"reducer {ordinal} (partition {partition}) did not come back within "
                            f"{settings.timeouts.recovery:g} s: {error.message}") from None
        if (answer.job, answer.epoch, answer.partition, answer.step) != (record.id, record.epoch, partition, step):
            raise JobFailed(f"reducer {ordinal} answered for another job, partition or step than {partition} of "
                            f"step {step}")
        if isinstance(answer, Report):
            self.reported.add(partition)
            log.debug("partition_collected", **self.fields, partition=partition, step=step,
                      keys=answer.keys, part=answer.payload.name if isinstance(answer.payload, PartFile) else None,
                      incarnation=answer.incarnation)
        return answer

    async def release(self) -> None:
        """Tell every reducer that has not reported the job to forget it; best effort, bounded, never raises."""
        record = self.record
        unreported = set(range(record.partitions)) - self.reported
        if not unreported or not self.streamed:  # no reducer holds what was never streamed to it
            return  # a finished job: every reducer forgot it when it reported
        message = Release(job=record.id, epoch=record.epoch)
        try:
            reducers = await self.discovery.peers("reducer")
        except MapReduceError:
            return
        owners = {owner(partition, self.reducer_count) for partition in unreported}
        calls = [self.transport.release(r, message) for r in reducers if r.ordinal in owners]
        await asyncio.gather(*calls, return_exceptions=True)
