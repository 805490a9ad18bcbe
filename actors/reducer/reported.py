"""Reported partitions: the answer a reducer gave for each (job, partition) it reported, kept a while for a
repeated finalize.

Once a reducer has reported (job, epoch, partition) of a step it forgets that partition's state at once (no Release
round trip); a multi-step job's later step replaces the partition's entry. A master whose finalize answer was lost
asks again: it must get the same answer, byte for byte, so the encoded answer is kept for ``grace`` seconds within
``budget`` bytes (MR_REPORT_GRACE, MR_REPORT_BUDGET). An entry is also the partition's tombstone: a late stream for
a reported (job, epoch, partition) is a duplicate (every split was committed before the report), and so is one of
an earlier step of that epoch; an older epoch is stale. Past the grace or the budget the entry goes; a finalize
asked again after that finds no state and names every split missing, so the master re-maps them for this
partition: slower, still exact.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

ENTRY_OVERHEAD = 256  # bytes an entry costs beyond its answer: the key, the tuple, the dict slot


@dataclass(frozen=True)
class Reported:
    epoch: int
    answer: bytes  # the encoded finalize answer, exactly as sent
    at: float  # clock time it was kept
    step: int = 0  # the job's step reported (a multi-step job's later step replaces its earlier one's entry)

    @property
    def cost(self) -> int:
        return len(self.answer) + ENTRY_OVERHEAD


Entry = tuple[str, int]  # (job id, partition)


class ReportedJobs:
    """(job id, partition) -> its reported epoch and answer, oldest first; bounded by age and bytes."""

    def __init__(self, grace: float, budget: int, clock: Callable[[], float]) -> None:
        self.grace = grace
        self.budget = budget
        self.clock = clock
        self.held = 0  # bytes held (answers plus overhead)
        self._entries: OrderedDict[Entry, Reported] = OrderedDict()
        self._by_job: dict[str, set[int]] = {}  # the partitions kept per job, to drop a job's entries at once

    def __len__(self) -> int:
        return len(self._entries)

    def keep(self, job: Entry, epoch: int, answer: bytes, step: int = 0) -> bool:
        """Keep the answer for ``job`` (a job id and partition) at ``epoch`` and ``step``; the first one kept stays.
        False when it is too large to keep at all."""
        self.expire()
        current = self._entries.get(job)
        if current is not None and (current.epoch, current.step) >= (epoch, step):
            return (current.epoch, current.step) == (epoch, step)
        entry = Reported(epoch, answer, self.clock(), step)
        if entry.cost > self.budget or self.grace <= 0:
            self.drop(job)  # an older epoch's entry must not outlive a newer report
            return False
        self.drop(job)
        while self._entries and self.held + entry.cost > self.budget:
            self._pop_oldest()
        self._entries[job] = entry
        self._by_job.setdefault(job[0], set()).add(job[1])
        self.held += entry.cost
        return True

    def get(self, job: Entry) -> Reported | None:
        """The job's entry if it is still within the grace window."""
        entry = self._entries.get(job)
        if entry is not None and self.clock() - entry.at > self.grace:
            self.expire()
            return None
        return entry

    def latest(self, job: str) -> tuple[int, int] | None:
        """The latest (epoch, step) any of ``job``'s partitions reported here, within the grace window: a stream of
        an earlier step of that epoch comes after the master began a later one."""
        kept = [self.get((job, partition)) for partition in sorted(self._by_job.get(job, ()))]
        return max(((entry.epoch, entry.step) for entry in kept if entry is not None), default=None)

    def drop(self, job: Entry) -> None:
        entry = self._entries.pop(job, None)
        if entry is not None:
            self._forget(job, entry)

    def drop_job(self, job: str, epoch: int) -> None:
        """Drop every partition's entry of ``job`` reported at ``epoch`` or before."""
        for partition in sorted(self._by_job.get(job, ())):
            entry = self._entries.get((job, partition))
            if entry is not None and entry.epoch <= epoch:
                self.drop((job, partition))

    def _forget(self, job: Entry, entry: Reported) -> None:
        self.held -= entry.cost
        partitions = self._by_job.get(job[0])
        if partitions is not None:
            partitions.discard(job[1])
            if not partitions:
                del self._by_job[job[0]]

    def expire(self) -> int:
        """Drop the entries older than the grace window; how many went."""
        cutoff = self.clock() - self.grace
        dropped = 0
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.at >= cutoff:
                break
            self._pop_oldest()
            dropped += 1
        return dropped

    def _pop_oldest(self) -> None:
        job, entry = self._entries.popitem(last=False)
        self._forget(job, entry)
