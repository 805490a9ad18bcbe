"""The ledger: a reducer's jobs, fenced by epoch, each with its committed splits and merged totals."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import Conflict, InsufficientStorage, NotFound, WireError
from ..core.messages import Columns, StreamHeader
from ..jobs import Catalog, Job, load_catalog
from ..jobs.adapter import SdkJob
from ..jobs.kernel import NativeCountTable, WordCounts, add_counts, unpack_columns
from .reported import ReportedJobs
from .spill import SpillRuns
from .stage import Stage

COMMITTED = "committed"
DUPLICATE = "duplicate"


@dataclass
class PartitionState:
    """One job's partition at this reducer: which splits are merged, and the totals so far."""

    job: str
    epoch: int
    partition: int
    partitions: int
    job_def: Job
    touched: float
    params: dict[str, str] = field(default_factory=dict)
    committed: set[int] = field(default_factory=set)
    totals: dict[str, Any] = field(default_factory=dict)
    pending: list[dict[str, Any] | Columns] = field(default_factory=list)  # committed, not yet merged into totals
    # A word count's COLUMNS frames merge here, natively, with no object per key; settle() folds it into totals.
    table: WordCounts | None = None
    unbounded: bool = False  # a count passed what the table holds: every frame merges into the totals instead
    duplicates: int = 0
    # The general path (an SDK job without a combiner): past ``memory`` bytes of values held, the totals leave
    # memory as a sorted run written by ``pool`` (one thread, so its tasks run in order: a finish or a removal
    # submitted after a spill sees that run on disk).
    spill: SpillRuns | None = None
    pool: ThreadPoolExecutor | None = None
    memory: int = 0
    held: int = 0  # bytes of committed values held in totals and pending (budget.footprint)
    spills: int = 0
    writing: list[Future[None]] = field(default_factory=list)

    def commit(self, split: int, stage: Stage) -> str:
        """The commit rule, merged at once: for callers that need not keep an event loop running."""
        status = self.record(split, stage)
        self.settle()
        return status

    def record(self, split: int, stage: Stage) -> str:
        """The commit rule: count a split's stream only the first time; synchronous, so nothing interleaves.

        The stream's values join ``pending`` (the first split's simply become the totals), so the split counts
        from here on; :meth:`merge_some` moves them into ``totals`` a slice at a time (merging 1 M keys into 1 M
        takes 1.2 s, too long to hold an event loop), and :meth:`settle` before the totals are read.
        """
        if split in self.committed:
            self.duplicates += 1
            return DUPLICATE
        self.committed.add(split)
        self.held += stage.held
        parts, stage.parts = stage.parts, []
        first = parts[0] if parts else None
        if isinstance(first, dict) and not self.totals and not self.pending:
            self.totals = first  # take a staged dict over: copying it would cost a pass over its keys
            parts = parts[1:]
        # merge_some takes from the end: reversed, one stream's frames combine in the order they came, as a job
        # whose values are lists (appended in order) expects.
        self.pending.extend(reversed(parts))
        return COMMITTED

    def merge_some(self, limit: int) -> bool:
        """Merge up to ``limit`` pending keys into the totals; True once nothing is pending.

        Keys leave the pending dict as they join the totals, so totals plus pending always hold each committed
        split exactly once, whenever a caller stops between slices.
        """
        merge_slice = getattr(self.job_def, "merge_slice", None)  # word count's: native, no slice dict made
        while self.pending and limit > 0:
            items = self.pending[-1]
            if isinstance(items, Columns):
                self._add_packed(items)
                self.pending.pop()
                limit -= len(items)
                continue
            if len(items) <= limit:
                # A whole frame (the usual case: frames hold at most MR_FRAME_KEYS keys, the slice the reducer
                # asks for) is combined at once and then dropped, with no key deleted one by one.
                self.job_def.combine(self.totals, items)
                self.pending.pop()
                limit -= len(items)
                continue
            if merge_slice is not None:
                limit -= merge_slice(self.totals, items, limit)
            else:
                take = min(limit, len(items))
                part = dict(items.popitem() for _ in range(take))
                self.job_def.combine(self.totals, part)
                limit -= take
            if not items:
                self.pending.pop()
        if self.pending:
            return False
        if self.spill is not None and self.held > self.memory:
            self._spill()
        return True

    def _spill(self) -> None:
        """Hand the totals to the spill thread as a sorted run; synchronous, so every committed value is, at any
        moment, either in the totals or in a run submitted before anything that reads the runs."""
        assert self.spill is not None and self.pool is not None
        groups, self.totals, self.held = self.totals, {}, 0
        self.spills += 1
        self.writing.append(self.pool.submit(self.spill.spill, groups))

    def spilled(self) -> bool:
        return bool(self.writing)

    def finish_spilled(self) -> Future[dict[str, Any]]:
        """The result merged from the runs and the totals, computed on the spill thread after every write; call
        after :meth:`settle`."""
        assert self.spill is not None and self.pool is not None and isinstance(self.job_def, SdkJob)
        return self.pool.submit(self._merge, self.spill, self.job_def, self.totals, list(self.writing))

    @staticmethod
    def _merge(spill: SpillRuns, job: SdkJob, memory: dict[str, Any], writes: list[Future[None]]) -> dict[str, Any]:
        try:
            for write in writes:
                write.result()  # a failed write (say, a full disk) fails the finalize rather than losing values
            return job.reduce_groups(spill.groups(memory))
        except OSError as error:
            raise InsufficientStorage(f"a reducer could not write or read its spilled runs under MR_SPOOL_DIR "
                                      f"({error}); the job's values there are lost, so it cannot finish") from None

    def close(self) -> Future[None] | None:
        """Remove the spilled runs (after any write still queued); the state is no longer used."""
        spill, self.spill = self.spill, None  # a stream still committing into this state spills no more
        if spill is None or self.pool is None:
            return None
        self.totals, self.pending, self.held, self.table = {}, [], 0, None
        return self.pool.submit(spill.remove)

    def _add_packed(self, frame: Columns) -> None:
        """Merge a checked COLUMNS frame into the count table (all or nothing); a count past 2**63 - 1, which the
        table cannot hold, sends the table and from then on every frame to the totals, whose ints have no bound."""
        if not self.unbounded:
            if self.table is None:
                assert NativeCountTable is not None  # Stage keeps COLUMNS frames only with the kernel built
                self.table = NativeCountTable(1)
            try:
                self.table.add_columns(frame.keys, frame.ends, frame.counts)  # type: ignore[attr-defined]
                return
            except OverflowError:  # the table is unchanged: nothing of this frame was added
                self.unbounded = True
                self._fold_table()
        self.job_def.combine(self.totals, unpack_columns(frame))

    def _fold_table(self) -> None:
        if self.table is not None and len(self.table):
            (counted,) = self.table.take()
            if self.totals:
                add_counts(self.totals, counted)
            else:
                self.totals = counted

    def merge_pending(self) -> None:
        """Merge everything pending (into the totals, or the count table)."""
        self.merge_some(sum(map(len, self.pending)))

    def ordered_run(self) -> Columns | None:
        """With everything merged and held in the count table alone: the partition as one COLUMNS run in top
        order, the table unchanged (a repeated finalize answers the same); else None."""
        if self.pending or self.totals or self.table is None or not len(self.table):
            return None
        try:
            return Columns(*self.table.ordered_columns())  # type: ignore[attr-defined]
        except OverflowError:  # past 4 GiB of keys: the dict path reports them
            return None

    def settle(self) -> None:
        """Merge everything pending, and the count table into the totals: the totals are then complete."""
        self.merge_pending()
        self._fold_table()

    @property
    def keys_held(self) -> int:
        """Keys in the totals, the count table and pending frames (a key in several is counted in each)."""
        return len(self.totals) + (len(self.table) if self.table is not None else 0) + sum(map(len, self.pending))

    def missing(self, splits: int) -> list[int]:
        return sorted(set(range(splits)) - self.committed)


class Ledger:
    """Every job this reducer holds, by id; a newer epoch of a job replaces an older one, an older is refused."""

    def __init__(self, partition: int, clock: Callable[[], float], catalog: Catalog | None = None,
                 memory: int = 0, spool: str = "", report_grace: float = 300.0,
                 report_budget: int = 64 * 1024 * 1024) -> None:
        """``memory`` (MR_REDUCE_MEMORY): bytes of a general job's values held before spilling; 0 never spills.
        ``spool`` (MR_SPOOL_DIR): where runs are written. ``report_grace`` and ``report_budget`` (MR_REPORT_GRACE,
        MR_REPORT_BUDGET): how long and how much of the answers to reported jobs are kept (see reported.py)."""
        self.partition = partition
        self.catalog = catalog if catalog is not None else load_catalog()
        self.clock = clock
        self.memory = memory
        self.spool = spool
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"spill-{partition}")
        self.spills = 0  # runs spilled by jobs no longer held (for metrics and tests)
        self.jobs: dict[str, PartitionState] = {}
        self.reported = ReportedJobs(report_grace, report_budget, clock)  # jobs reported and forgotten
        self.stale = 0  # streams, commits and finalizes refused for an old epoch

    def receive(self, header: StreamHeader) -> PartitionState | None:
        """What a new stream commits into: its state, or None when (job, epoch) was already reported here (every
        split is committed, so the stream is a duplicate)."""
        self._route(header)
        if self.was_reported(header.job, header.epoch):
            return None
        return self.admit(header)

    def _route(self, header: StreamHeader) -> None:
        if header.partition != self.partition:
            raise Conflict(
                f"stream for partition {header.partition} reached reducer {self.partition}: routing is stale"
            )
        if header.partition >= header.partitions:
            raise WireError(f"partition {header.partition} is out of range for {header.partitions} partitions")

    def admit(self, header: StreamHeader) -> PartitionState:
        """The state a new stream will commit into, created on first sight of (job, epoch)."""
        self._route(header)
        key = header.key
        if self.was_reported(key.job, key.epoch):
            raise Conflict(f"job {key.job} epoch {key.epoch} was already reported by reducer {self.partition}")
        state = self.jobs.get(key.job)
        if state is not None:
            self._fence(state, key.epoch)
            if state.epoch == key.epoch:
                if (state.partitions != header.partitions or state.job_def.name != header.job_name
                        or state.params != header.params):
                    raise Conflict(f"job {key.job} epoch {key.epoch} was started with other parameters")
                state.touched = self.clock()
                return state
        state = PartitionState(
            job=header.job,
            epoch=header.epoch,
            partition=header.partition,
            partitions=header.partitions,
            job_def=self.catalog.get(header.job_name, header.params),
            touched=self.clock(),
            params=header.params,
        )
        if self.memory > 0 and isinstance(state.job_def, SdkJob) and state.job_def.groups:
            state.spill = SpillRuns(self.spool, f"reduce-{self.partition}-")
            state.pool, state.memory = self.pool, self.memory
        if state.job in self.jobs:
            self._drop(self.jobs[state.job])  # a newer epoch replaces the older one's runs too
        self.reported.drop(state.job)  # an older epoch's report: superseded
        self.jobs[header.job] = state
        return state

    def was_reported(self, job: str, epoch: int) -> bool:
        """Whether this reducer reported (job, epoch) and forgot its state (every split was committed then); an
        epoch older than the one reported is stale (409)."""
        if job in self.jobs:
            return False  # a live state fences by itself; it is never older than a kept report
        entry = self.reported.get(job)
        if entry is None:
            return False
        if epoch < entry.epoch:
            self.stale += 1
            raise Conflict(f"job {job} epoch {epoch} is stale: this reducer reported epoch {entry.epoch}")
        return epoch == entry.epoch

    def reported_answer(self, job: str, epoch: int) -> bytes | None:
        """The encoded finalize answer this reducer gave for (job, epoch), if it still keeps it."""
        if not self.was_reported(job, epoch):
            return None
        entry = self.reported.get(job)
        return entry.answer if entry is not None else None

    def forget_reported(self, state: PartitionState, answer: bytes) -> None:
        """(job, epoch) is reported with ``answer``: drop its state now and keep the answer (bounded) for a master
        that asks again. No Release round trip is needed after a report."""
        live = self.jobs.get(state.job)
        if live is not None and live is not state:
            return  # a newer epoch replaced it meanwhile: its report is nobody's answer any more
        if live is state:
            del self.jobs[state.job]
            self._drop(state)
        self.reported.keep(state.job, state.epoch, answer)

    def current(self, job: str, epoch: int) -> PartitionState:
        """The state of (job, epoch), or a clear 404/409 when it is unknown or superseded."""
        state = self.jobs.get(job)
        if state is None:
            raise NotFound(f"reducer {self.partition} holds no state for job {job}")
        self._fence(state, epoch)
        if state.epoch != epoch:
            raise NotFound(f"reducer {self.partition} holds no state for job {job} epoch {epoch}")
        state.touched = self.clock()
        return state

    def find(self, job: str, epoch: int) -> PartitionState | None:
        """The state of (job, epoch) if this reducer holds it; a stale epoch is still refused (409)."""
        state = self.jobs.get(job)
        if state is None:
            return None
        self._fence(state, epoch)
        if state.epoch != epoch:
            return None
        state.touched = self.clock()
        return state

    def _fence(self, state: PartitionState, epoch: int) -> None:
        if epoch < state.epoch:
            self.stale += 1
            raise Conflict(f"job {state.job} epoch {epoch} is stale: this reducer is at epoch {state.epoch}")

    def release(self, job: str, epoch: int) -> bool:
        entry = self.reported.get(job)
        if entry is not None and entry.epoch <= epoch:
            self.reported.drop(job)
        state = self.jobs.get(job)
        if state is None or state.epoch > epoch:
            return False
        del self.jobs[job]
        self._drop(state)
        return True

    def expire(self, ttl: float) -> list[str]:
        """Forget jobs untouched for ``ttl`` seconds (finished or abandoned by a master that is gone)."""
        self.reported.expire()
        cutoff = self.clock() - ttl
        old = [job for job, state in self.jobs.items() if state.touched < cutoff]
        for job in old:
            self._drop(self.jobs.pop(job))
        return old

    def _drop(self, state: PartitionState) -> None:
        self.spills += state.spills
        state.close()

    def barrier(self) -> Future[None]:
        """Done once every spill task submitted so far (writes, removals) is."""
        return self.pool.submit(_nothing)

    def close(self) -> None:
        """Remove every job's runs and stop the spill thread (blocking: call from a thread at shutdown)."""
        for state in self.jobs.values():
            self._drop(state)
        self.jobs.clear()
        self.pool.shutdown(wait=True)


def _nothing() -> None:
    return None
