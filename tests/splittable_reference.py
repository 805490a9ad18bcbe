"""The split table as it was before it kept indexes: a scan of every split per call, kept as the model.

tests/test_splittable.py runs random call sequences through this and the real table and wants the same
answers. One deliberate difference from the original: a late report after another attempt won leaves the
late attempt's state alone (the original turned a FAILED attempt ABANDONED, hiding its failure's cause).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from actors.core.errors import JobFailed
from actors.core.splits import Split

RUNNING = "running"
DONE = "done"
FAILED = "failed"
ABANDONED = "abandoned"  # handed back without fault (mapper unreachable before starting, drained, lost the race)


@dataclass
class Attempt:
    """One try at one split on one mapper."""

    number: int
    mapper: str
    started: float
    state: str = RUNNING
    cause: str = ""
    bytes_read: int = 0
    backup: bool = False
    finished: float | None = None  # when it stopped running, however it ended
    outcome: str = "running"  # ok, failed, superseded, unreachable (what the status shows)


@dataclass
class SplitState:
    split: Split
    attempts: list[Attempt] = field(default_factory=list)
    winner: int | None = None  # attempt number whose report counted

    @property
    def done(self) -> bool:
        return self.winner is not None

    def running(self) -> list[Attempt]:
        return [a for a in self.attempts if a.state == RUNNING]

    def failures(self) -> int:
        return sum(1 for a in self.attempts if a.state == FAILED)

    def failed_on(self) -> set[str]:
        return {a.mapper for a in self.attempts if a.state == FAILED}


@dataclass(frozen=True)
class Ticket:
    """What a dispatcher may run next: split ``split`` as attempt ``attempt``."""

    split: Split
    attempt: int
    backup: bool


class SplitTable:
    """Pure bookkeeping of one job's map phase; the async shell asks it what to run and tells it what happened."""

    def __init__(
        self,
        splits: list[Split],
        max_attempts: int,
        clock: Callable[[], float],
        backups: bool = True,
        backup_after: float = 5.0,
    ) -> None:
        self._by_index = {s.index: SplitState(s) for s in splits}
        self.states = list(self._by_index.values())
        self.max_attempts = max_attempts
        self.clock = clock
        self.backups = backups
        self.backup_after = backup_after
        self.mappers: set[str] = set()  # mappers with a live worker; a split returns to a mapper that failed it
        # only once it has failed on every one of them
        self.late_reports = 0  # reports of attempts that lost to another attempt of the same split
        self.retries = 0
        self.last_failure = ""

    def next_for(self, mapper: str) -> Ticket | None:
        """The next split this mapper should run: a fresh one, a retry it has not failed, else a backup."""
        self.mappers.add(mapper)
        pending = [s for s in self.states if not s.done and not s.running()]
        eligible = [s for s in pending if mapper not in s.failed_on() or self.mappers <= s.failed_on()]
        if eligible:
            return self._start(eligible[0], mapper, backup=False)
        if pending:
            return None  # a retry waits for a mapper that has not failed it
        if not self.backups:
            return None
        # Backup: near the end, an idle mapper races a straggler: the oldest lone attempt running elsewhere
        # for well over the usual split time. A failure-free run of even splits never starts one.
        started_before = self.clock() - self.straggler_time()
        candidates = [
            s
            for s in self.states
            if not s.done and len(s.running()) == 1 and s.running()[0].mapper != mapper
            and s.running()[0].started < started_before and len(s.attempts) < self.max_attempts
        ]
        if not candidates:
            return None
        oldest = min(candidates, key=lambda s: s.running()[0].started)
        return self._start(oldest, mapper, backup=True)

    def retire(self, mapper: str) -> None:
        """A mapper's worker is gone (unreachable, or the table is done): stop saving retries for it."""
        self.mappers.discard(mapper)

    def straggler_time(self) -> float:
        """How long an attempt may run before it counts as a straggler: 2x the median finished attempt, or more."""
        durations = sorted(
            a.finished - a.started
            for s in self.states
            for a in s.attempts
            if a.state == DONE and a.finished is not None
        )
        median = durations[len(durations) // 2] if durations else 0.0
        return max(self.backup_after, 2 * median)

    def _start(self, state: SplitState, mapper: str, backup: bool) -> Ticket:
        number = len(state.attempts) + 1
        if state.attempts and not backup:
            self.retries += 1
        state.attempts.append(Attempt(number=number, mapper=mapper, started=self.clock(), backup=backup))
        return Ticket(state.split, number, backup)

    def _attempt(self, split: int, attempt: int) -> Attempt:
        return self._by_index[split].attempts[attempt - 1]

    def progress(self, split: int, attempt: int, bytes_read: int) -> None:
        self._attempt(split, attempt).bytes_read = bytes_read

    def succeeded(self, split: int, attempt: int, bytes_read: int) -> bool:
        """Record a finished attempt; False when another attempt already won (its report is dropped)."""
        state = self._by_index[split]
        record = self._attempt(split, attempt)
        record.bytes_read = bytes_read
        if state.done:
            if attempt == state.winner:
                return False  # the winner's report again (a retried ack): it already counted
            self.late_reports += 1
            return False
        record.state, record.outcome = DONE, "ok"
        record.finished = self.clock()
        state.winner = attempt
        for other in state.running():
            other.state, other.outcome, other.finished = ABANDONED, "superseded", record.finished
            other.cause = f"attempt {attempt} finished first"
        return True

    def failed(self, split: int, attempt: int, cause: str) -> None:
        """Record a failed attempt; raise JobFailed once the split has failed ``max_attempts`` times."""
        state = self._by_index[split]
        record = self._attempt(split, attempt)
        if record.state != RUNNING:
            return
        record.state, record.outcome, record.finished = FAILED, "failed", self.clock()
        record.cause = cause
        self.last_failure = f"split {split} attempt {attempt} on {record.mapper}: {cause}"
        if not state.done and state.failures() >= self.max_attempts:
            raise JobFailed(f"split {split} failed {state.failures()} attempts; last cause: {cause}")

    def abandoned(self, split: int, attempt: int, cause: str) -> None:
        """Hand an attempt back without counting it as a failure (it never started, or lost a race)."""
        record = self._attempt(split, attempt)
        if record.state == RUNNING:
            record.state, record.outcome, record.finished = ABANDONED, "unreachable", self.clock()
            record.cause = cause

    @property
    def total(self) -> int:
        return len(self.states)

    @property
    def done_count(self) -> int:
        return sum(1 for s in self.states if s.done)

    @property
    def all_done(self) -> bool:
        return all(s.done for s in self.states)

    @property
    def bytes_done(self) -> int:
        total = 0
        for state in self.states:
            if state.done:
                total += state.split.end - state.split.start
            else:
                total += max((a.bytes_read for a in state.running()), default=0)
        return total

    def attempts_started(self) -> int:
        return sum(len(s.attempts) for s in self.states)
