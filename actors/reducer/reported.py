"""Reported partitions: the answer a reducer gave to each job it reported, kept a while for a repeated finalize.

Once a reducer has reported (job, epoch) it forgets the job's state at once (no Release round trip). A master whose
finalize answer was lost asks again: it must get the same answer, byte for byte, so the encoded answer is kept for
``grace`` seconds within ``budget`` bytes (MR_REPORT_GRACE, MR_REPORT_BUDGET). An entry is also the job's
tombstone: a late stream for a reported (job, epoch) is a duplicate (every split was committed before the report),
and an older epoch is stale. Past the grace or the budget the entry goes; a finalize asked again after that finds
no state and names every split missing, so the master re-maps them for this partition: slower, still exact.
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


class ReportedJobs:
    """Job id -> its reported epoch and answer, oldest first; bounded by age and bytes."""

    def __init__(self, grace: float, budget: int, clock: Callable[[], float]) -> None:
        self.grace = grace
        self.budget = budget
        self.clock = clock
        self.held = 0  # bytes held (answers plus overhead)
        self._entries: OrderedDict[str, Reported] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def keep(self, job: str, epoch: int, answer: bytes, step: int = 0) -> bool:
        """Keep the answer for (job, epoch, step); the first one kept stays. False when it is too large to keep at
        all."""
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
        self.held += entry.cost
        return True

    def get(self, job: str) -> Reported | None:
        """The job's entry if it is still within the grace window."""
        entry = self._entries.get(job)
        if entry is not None and self.clock() - entry.at > self.grace:
            self.expire()
            return None
        return entry

    def drop(self, job: str) -> None:
        entry = self._entries.pop(job, None)
        if entry is not None:
            self.held -= entry.cost

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
        _, entry = self._entries.popitem(last=False)
        self.held -= entry.cost
