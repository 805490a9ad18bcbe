"""The ledger: a reducer's jobs, fenced by epoch, each with its committed splits and merged totals."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import Conflict, NotFound, WireError
from ..core.messages import Columns, StreamHeader
from ..core.partition import owned, owner
from ..jobs import Catalog, Job, load_catalog, packing_of
from ..jobs.adapter import SdkJob
from ..tasks.runs import SpillRuns
from .reported import ReportedJobs
from .stage import Stage
from .totals import PackedTotals, SpillingTotals, Totals

COMMITTED = "committed"
DUPLICATE = "duplicate"


@dataclass
class PartitionState:
    """One job's partition at this reducer: which splits are committed, and their merged totals."""

    job: str
    epoch: int
    partition: int
    partitions: int
    job_def: Job
    touched: float
    merged: Totals  # the totals strategy, chosen once when the state is made (see totals.py)
    params: dict[str, str] = field(default_factory=dict)
    committed: set[int] = field(default_factory=set)
    duplicates: int = 0
    step: int = 0  # the job's step these splits are of (a later step's first stream replaces the job's states)

    def record(self, split: int, stage: Stage) -> str:
        """The commit rule: count a split's stream only the first time; synchronous, so nothing interleaves.

        The stream's values join the pending frames, so the split counts from here on; :meth:`merge_some` merges
        them a slice at a time (merging 1 M keys into 1 M takes 1.2 s, too long to hold an event loop), and
        :meth:`settle` before the totals are read. WireError, with nothing changed, for a stream the totals
        cannot hold.
        """
        if split in self.committed:
            self.duplicates += 1
            return DUPLICATE
        self.merged.admit(stage.checksum)
        self.committed.add(split)
        parts, stage.parts = stage.parts, []
        self.merged.add(parts, stage.held)
        return COMMITTED

    def merge_some(self, limit: int) -> bool:
        """Merge up to ``limit`` pending keys into the totals; True once nothing is pending."""
        return self.merged.merge_some(limit)

    def merge_pending(self) -> None:
        self.merged.merge_pending()

    def settle(self) -> None:
        """Merge everything pending: :attr:`totals` are then complete."""
        self.merged.settle()

    @property
    def totals(self) -> dict[str, Any]:
        """The merged totals (complete after :meth:`settle`)."""
        return self.merged.values

    def ordered_run(self) -> Columns | None:
        return self.merged.ordered_run()

    def report_run(self, result: dict[str, Any]) -> Columns | None:
        """A finished result as one run in top order (a packing engine's), or None: report it as a map."""
        return self.merged.report_run(result)

    def spilled(self) -> bool:
        return self.merged.spilled()

    def finish_spilled(self) -> Future[dict[str, Any] | list[list[Any]]]:
        assert isinstance(self.merged, SpillingTotals)
        return self.merged.finish_spilled()

    @property
    def keys_held(self) -> int:
        return self.merged.keys_held

    @property
    def spills(self) -> int:
        return self.merged.spills

    def close(self) -> Future[None] | None:
        """Drop the totals and remove any spilled runs; the state is no longer used."""
        return self.merged.close()

    def missing(self, splits: int) -> list[int]:
        return sorted(set(range(splits)) - self.committed)


class Ledger:
    """Every job this reducer holds, by id, and within a job the partitions it owns (partition % R is this
    reducer's ordinal), all of one (epoch, step): a newer epoch of a job, or a later step of it, replaces all of the
    older one's partitions; an older epoch is refused, an earlier step's late stream is a duplicate."""

    def __init__(self, partition: int, clock: Callable[[], float], catalog: Catalog | None = None,
                 memory: int = 0, spool: str = "", report_grace: float = 300.0,
                 report_budget: int = 64 * 1024 * 1024, views: bool = False, max_partitions: int = 1024) -> None:
        """``partition``: this reducer's ordinal (it owns the partitions p with p % R equal to it).
        ``memory`` (MR_REDUCE_MEMORY): bytes of a general job's values held before spilling, shared by the job's
        partitions held here; 0 never spills. ``spool`` (MR_SPOOL_DIR): where runs are written. ``report_grace``
        and ``report_budget`` (MR_REPORT_GRACE, MR_REPORT_BUDGET): how long and how much of the answers to reported
        partitions are kept (see reported.py). ``max_partitions`` (MR_MAX_PARTITIONS): the most partitions a peer's
        stream or finalize may say its job has (the reduce memory is shared by them)."""
        self.partition = partition
        self.max_partitions = max_partitions
        self.views = views  # jobs as actors that run no user code see them (Catalog.view): the reducer app's
        self.catalog = catalog if catalog is not None else load_catalog()
        self.clock = clock
        self.memory = memory
        self.spool = spool
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"spill-{partition}")
        self.spills = 0  # runs spilled by jobs no longer held (for metrics and tests)
        # job -> its partitions held here, all of one (epoch, step)
        self.jobs: dict[str, dict[int, PartitionState]] = {}
        self.reported = ReportedJobs(report_grace, report_budget, clock)  # (job, partition)s reported, forgotten
        self.stale = 0  # streams, commits and finalizes refused for an old epoch
        self.stale_steps = 0  # streams of a step already reported, come after it (answered "duplicate")

    def states(self) -> list[PartitionState]:
        """Every partition state held, of every job."""
        return [state for held in self.jobs.values() for state in held.values()]

    def receive(self, header: StreamHeader) -> PartitionState | None:
        """What a new stream commits into: its state, or None when (job, epoch, partition) was already reported
        here at the stream's step, or a later step of (job, epoch) began (every split is committed, so the stream
        is a duplicate)."""
        self.check_owner(header.partition, header.partitions, header.reducers)
        if self.is_past(header.job, header.epoch, header.step, header.partition):
            return None
        return self.admit(header)

    def is_past(self, job: str, epoch: int, step: int, partition: int) -> bool:
        """Whether (job, epoch)'s ``step`` is settled here for ``partition``: reported, or a later step of the job
        began (which the master starts only once every partition reported this one). A stream of it is then a
        duplicate; one of an older step is counted as stale (:attr:`stale_steps`)."""
        held = self.jobs.get(job)
        if held:
            self._fence(job, held, epoch)
            at = held_at(held)
        else:
            at = self.reported.latest(job) or (-1, -1)
        if at[0] == epoch and step < at[1]:
            self.stale_steps += 1
            return True
        return self.was_reported(job, epoch, partition, step)

    def check_owner(self, partition: int, partitions: int, reducers: int) -> None:
        """409 unless this reducer owns ``partition`` (of ``partitions`` on ``reducers``; 0: one per reducer)."""
        if partitions > self.max_partitions:
            raise WireError(f"partitions {partitions} is more than {self.max_partitions} (MR_MAX_PARTITIONS)")
        if partitions and partition >= partitions:
            raise WireError(f"partition {partition} is out of range for {partitions} partitions")
        if owner(partition, reducers or partitions or partition + 1) != self.partition:
            raise Conflict(f"partition {partition} reached reducer {self.partition}: routing is stale")

    def admit(self, header: StreamHeader) -> PartitionState:
        """The state a new stream will commit into, created on first sight of (job, epoch, partition)."""
        self.check_owner(header.partition, header.partitions, header.reducers)
        key = header.key
        if self.was_reported(key.job, key.epoch, header.partition, header.step):
            raise Conflict(f"job {key.job} epoch {key.epoch} step {header.step} partition {header.partition} was "
                           f"already reported by reducer {self.partition}")
        held = self.jobs.get(key.job)
        if held:
            self._fence(key.job, held, key.epoch)
            epoch, step = held_at(held)
            if epoch == key.epoch and header.step < step:
                raise Conflict(f"job {key.job} epoch {key.epoch} step {header.step} is stale: this reducer is at "
                               f"step {step}")
        if held and held_at(held) == (key.epoch, header.step):
            state = held.get(header.partition)
            if state is not None:
                if (state.partitions != header.partitions or state.job_def.name != header.job_name
                        or state.params != header.params):
                    raise Conflict(f"job {key.job} epoch {key.epoch} was started with other parameters")
                state.touched = self.clock()
                return state
        else:
            for old in (held or {}).values():
                self._drop(old)  # a newer epoch (or step) replaces the older one's runs too
            held = self.jobs[key.job] = {}
        job_def = self._job(header)
        shares = len(owned(self.partition, header.partitions, header.reducers or header.partitions)) or 1
        state = PartitionState(job=header.job, epoch=header.epoch, partition=header.partition,
                               partitions=header.partitions, job_def=job_def, touched=self.clock(),
                               merged=self._totals(job_def, header.partition, shares), params=header.params,
                               step=header.step)
        self.reported.drop((state.job, state.partition))  # an older epoch's (or step's) report: superseded
        held[header.partition] = state
        return state

    def _job(self, header: StreamHeader) -> Job:
        """The job's engine for the stream's step (a later step of a job with steps maps and reduces records)."""
        if self.views:
            return self.catalog.view(header.job_name, header.params, header.step)
        job = self.catalog.get(header.job_name, header.params)
        return SdkJob(job.job, header.step) if header.step and isinstance(job, SdkJob) else job

    def _totals(self, job: Job, partition: int, shares: int) -> Totals:
        """The totals strategy of a new partition, from its engine's declared capabilities; a spilling one holds
        its share of MR_REDUCE_MEMORY (this reducer may own several of the job's partitions)."""
        packing = packing_of(job, native=True)
        if packing is not None:
            return PackedTotals(job, packing)
        if isinstance(job, SdkJob) and not job.folds_to_result:
            # User code: grouped here, reduced in a task process (memory 0: never spills).
            memory = max(self.memory // shares, 1) if self.memory else 0
            runs = SpillRuns(self.spool, f"reduce-{partition}-", job.job.sort_values)
            return SpillingTotals(job, runs, self.pool, memory)
        # A built-in's engine, or a job whose declared fold is its reducer too: merged here by framework code only.
        return Totals(job)

    def was_reported(self, job: str, epoch: int, partition: int, step: int = 0) -> bool:
        """Whether this reducer reported (job, epoch, partition) at ``step`` or a later step, and forgot its state
        (every split was committed then); an epoch older than the one held or reported is stale (409)."""
        held = self.jobs.get(job)
        if held and (partition in held or epoch < _epoch_of(held)):
            return False  # live states fence by themselves (admit, find); they are never older than a kept report
        entry = self.reported.get((job, partition))
        if entry is None:
            return False
        if epoch < entry.epoch:
            self.stale += 1
            raise Conflict(f"job {job} epoch {epoch} is stale: this reducer reported epoch {entry.epoch}")
        return epoch == entry.epoch and step <= entry.step

    def reported_answer(self, job: str, epoch: int, partition: int, step: int = 0) -> bytes | None:
        """The encoded finalize answer this reducer gave for (job, epoch, partition) at ``step``, if it still keeps
        it."""
        if not self.was_reported(job, epoch, partition, step):
            return None
        entry = self.reported.get((job, partition))
        return entry.answer if entry is not None and entry.step == step else None

    def forget_reported(self, state: PartitionState, answer: bytes) -> None:
        """(job, epoch, partition) is reported with ``answer``: drop its state now and keep the answer (bounded)
        for a master that asks again. No Release round trip is needed after a report."""
        held = self.jobs.get(state.job, {})
        live = held.get(state.partition)
        if live is not None and live is not state:
            return  # a newer epoch replaced it meanwhile: its report is nobody's answer any more
        if held and held_at(held) > (state.epoch, state.step):
            return  # a newer epoch or a later step began meanwhile
        if live is state:
            del held[state.partition]
            if not held:
                del self.jobs[state.job]
            self._drop(state)
        self.reported.keep((state.job, state.partition), state.epoch, answer, state.step)

    def current(self, job: str, epoch: int, partition: int, step: int = 0) -> PartitionState:
        """The state of (job, epoch, partition, step), or a clear 404/409 when it is unknown or superseded."""
        state = self.find(job, epoch, partition, step)
        if state is None:
            raise NotFound(f"reducer {self.partition} holds no state for job {job} epoch {epoch} step {step} "
                           f"partition {partition}")
        return state

    def find(self, job: str, epoch: int, partition: int, step: int = 0) -> PartitionState | None:
        """The state of (job, epoch, partition, step) if this reducer holds it; a stale epoch is still refused
        (409)."""
        held = self.jobs.get(job)
        if not held:
            return None
        self._fence(job, held, epoch)
        state = held.get(partition)
        if state is None or state.epoch != epoch or state.step != step:
            return None
        state.touched = self.clock()
        return state

    def _fence(self, job: str, held: dict[int, PartitionState], epoch: int) -> None:
        current = _epoch_of(held)
        if epoch < current:
            self.stale += 1
            raise Conflict(f"job {job} epoch {epoch} is stale: this reducer is at epoch {current}")

    def release(self, job: str, epoch: int) -> bool:
        """Forget every partition of ``job`` at ``epoch`` or older (its kept reports too)."""
        self.reported.drop_job(job, epoch)
        held = self.jobs.get(job)
        if not held or _epoch_of(held) > epoch:
            return False
        del self.jobs[job]
        for state in held.values():
            self._drop(state)
        return True

    def expire(self, ttl: float) -> list[str]:
        """Forget jobs untouched for ``ttl`` seconds (finished or abandoned by a master that is gone)."""
        self.reported.expire()
        cutoff = self.clock() - ttl
        old = [job for job, held in self.jobs.items() if max(s.touched for s in held.values()) < cutoff]
        for job in old:
            for state in self.jobs.pop(job).values():
                self._drop(state)
        return old

    def _drop(self, state: PartitionState) -> None:
        self.spills += state.spills
        state.close()

    def barrier(self) -> Future[None]:
        """Done once every spill task submitted so far (writes, removals) is."""
        return self.pool.submit(_nothing)

    def close(self) -> None:
        """Remove every job's runs and stop the spill thread (blocking: call from a thread at shutdown)."""
        for state in self.states():
            self._drop(state)
        self.jobs.clear()
        self.pool.shutdown(wait=True)


def _epoch_of(held: dict[int, PartitionState]) -> int:
    """The epoch of a job's partitions held here (one epoch: a newer one replaces them all)."""
    return next(iter(held.values())).epoch


def held_at(held: dict[int, PartitionState]) -> tuple[int, int]:
    """The (epoch, step) of a job's partitions held here (one of each: a newer one replaces them all)."""
    state = next(iter(held.values()))
    return state.epoch, state.step


def _nothing() -> None:
    return None
