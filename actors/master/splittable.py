"""The split table: every split's attempts, which mapper runs them, retries, backups and progress.

Every call costs O(log splits) amortised, never a scan of the whole table: a split holds no state until it first
starts (in table order), handed-back splits wait in a heap by position, lone running attempts (backup candidates)
in a heap by start time, and the counters the status shows are kept as things happen. The one exception is
bounded by failures: a mapper asking for work walks past the pending splits it has itself failed.
"""

from __future__ import annotations

import heapq
import time
from bisect import bisect_left, insort
from collections.abc import Callable
from dataclasses import dataclass

from ..core.config import Settings
from ..core.errors import JobFailed
from ..core.splits import Split
from .attempts import Attempt, AttemptOutcome, AttemptState, SplitState


@dataclass(frozen=True)
class Ticket:
    """What a dispatcher may run next: split ``split`` as attempt ``attempt``."""

    split: Split
    attempt: int
    backup: bool


class Median:
    """The upper median of a growing set of numbers: O(log n) to add, O(1) to read."""

    def __init__(self) -> None:
        self._low: list[float] = []  # max-heap (negated) of the smaller half
        self._high: list[float] = []  # min-heap of the larger half; holds the extra one when the count is odd

    def add(self, value: float) -> None:
        heapq.heappush(self._low, -value)
        heapq.heappush(self._high, -heapq.heappop(self._low))
        if len(self._high) > len(self._low) + 1:
            heapq.heappush(self._low, -heapq.heappop(self._high))

    def value(self, default: float) -> float:
        """``sorted(values)[len(values) // 2]``, or ``default`` when there are none."""
        return self._high[0] if self._high else default


class SplitTable:
    """Pure bookkeeping of one job's map phase; the async shell asks it what to run and tells it what happened."""

    def __init__(
        self,
        splits: list[Split],
        max_attempts: int,
        clock: Callable[[], float],
        backups: bool = Settings.backup_tasks,  # MR_BACKUP_TASKS' and MR_BACKUP_AFTER's defaults, declared there
        backup_after: float = Settings.backup_after,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.splits = splits
        # Split index -> position; None while they are equal (a whole plan), to hold no per-split map.
        identity = all(s.index == i for i, s in enumerate(splits))
        self._position = None if identity else {s.index: i for i, s in enumerate(splits)}
        self._states: list[SplitState] = []  # by position, made on first start (in order)
        self._pending: list[int] = []  # heap of positions handed back (not running, not done), maybe stale
        self._lone: list[tuple[float, int, int]] = []  # heap of (started, position, attempt): maybe-stale
        self._running: set[int] = set()  # positions with a running attempt
        self._failed: list[int] = []  # sorted positions that have a failed attempt
        self._durations = Median()
        self._done = 0
        self._done_bytes = 0
        self._progress = 0  # sum of the progress of splits not done
        self._started = 0
        self.max_attempts = max_attempts
        self.clock = clock
        # Attempts keep the clock's times (durations); wall-clock time, for display, is this offset away: one
        # reading per table, nothing more per attempt.
        self.wall_offset = wall() - clock()
        self.backups = backups
        self.backup_after = backup_after
        self.mappers: set[str] = set()  # mappers with a live worker; a split returns to a mapper that failed it
        # only once it has failed on every one of them
        self.late_reports = 0  # reports of attempts that lost to another attempt of the same split
        self.retries = 0
        self.last_failure = ""

    # -- dispatch ---------------------------------------------------------------------------------------------

    def next_for(self, mapper: str) -> Ticket | None:
        """The next split this mapper should run: a fresh one, a retry it has not failed, else a backup."""
        self.mappers.add(mapper)
        # Handed-back splits all sit before the first fresh split, and a fresh split suits anyone: the first
        # eligible split in table order is the first eligible handed-back one, else the first fresh one.
        passed: list[int] = []
        chosen: SplitState | None = None
        while self._pending:
            state = self._states[heapq.heappop(self._pending)]
            if state.done or state.runners:
                continue  # stale: done by a late report since it was handed back
            failed_on = state.failed_on()
            if mapper not in failed_on or self.mappers <= failed_on:
                chosen = state
                break
            passed.append(state.position)
        for position in passed:
            heapq.heappush(self._pending, position)
        if chosen is not None:
            return self._start(chosen, mapper, backup=False)
        if len(self._states) < len(self.splits):
            state = SplitState(self.splits[len(self._states)], len(self._states))
            self._states.append(state)
            return self._start(state, mapper, backup=False)
        if passed:
            return None  # a retry waits for a mapper that has not failed it
        return self._backup_for(mapper) if self.backups else None

    def _backup_for(self, mapper: str) -> Ticket | None:
        # Backup: near the end, an idle mapper races a straggler: the oldest lone attempt running elsewhere
        # for well over the usual split time. A failure-free run of even splits never starts one.
        started_before = self.clock() - self.straggler_time()
        passed: list[tuple[float, int, int]] = []
        chosen: SplitState | None = None
        while self._lone:
            started, position, number = entry = self._lone[0]
            state = self._states[position]
            if self._stale(entry):
                heapq.heappop(self._lone)
                continue
            if len(state.attempts) >= self.max_attempts:
                heapq.heappop(self._lone)  # can never get a backup while this attempt runs alone
                continue
            if started >= started_before:
                break  # the heap is by start time: nothing further on is older
            heapq.heappop(self._lone)
            if state.attempts[number - 1].mapper == mapper:
                passed.append(entry)
                continue
            chosen = state
            break
        for entry in passed:
            heapq.heappush(self._lone, entry)
        return self._start(chosen, mapper, backup=True) if chosen is not None else None

    def retire(self, mapper: str) -> None:
        """A mapper's worker is gone (unreachable, or the table is done): stop saving retries for it."""
        self.mappers.discard(mapper)

    def straggler_time(self) -> float:
        """How long an attempt may run before it counts as a straggler: 2x the median finished attempt, or more."""
        return max(self.backup_after, 2 * self._durations.value(0.0))

    # -- what happened ----------------------------------------------------------------------------------------

    def progress(self, split: int, attempt: int, bytes_read: int) -> None:
        state = self._state_of(split)
        self._attempt(state, attempt).bytes_read = bytes_read
        self._measure(state)

    def succeeded(self, split: int, attempt: int, bytes_read: int) -> bool:
        """Record a finished attempt; False when another attempt already won (its report is dropped)."""
        state = self._state_of(split)
        record = self._attempt(state, attempt)
        record.bytes_read = bytes_read
        if state.done:
            if attempt != state.winner:
                self.late_reports += 1  # it keeps its state: a failure's cause stays visible
            return False
        had_failed = record.state == AttemptState.FAILED
        now = self.clock()
        record.end(AttemptState.DONE, AttemptOutcome.OK, now)
        state.winner = attempt
        for other in state.running():
            other.end(AttemptState.ABANDONED, AttemptOutcome.SUPERSEDED, now, f"attempt {attempt} finished first")
        state.runners = 0
        self._running.discard(state.position)
        self._done += 1
        self._done_bytes += state.split.end - state.split.start
        self._measure(state)
        self._durations.add(now - record.started)
        if had_failed and not state.failures():
            del self._failed[bisect_left(self._failed, state.position)]
        # Splits finish roughly in the order they started: drop the entries this leaves stale at the heap's top,
        # so the heap holds about the running attempts, not one entry per split ever started.
        while self._lone and self._stale(self._lone[0]):
            heapq.heappop(self._lone)
        return True

    def failed(self, split: int, attempt: int, cause: str, outcome: AttemptOutcome = AttemptOutcome.FAILED,
               final: bool = False) -> None:
        """Record a failed attempt; raise JobFailed once the split has failed ``max_attempts`` times, or at once
        when the failure is ``final`` (no attempt could do better: e.g. the input itself is corrupt)."""
        state = self._state_of(split)
        record = self._attempt(state, attempt)
        if record.state != AttemptState.RUNNING:
            return
        if not state.failures():
            insort(self._failed, state.position)
        record.end(AttemptState.FAILED, outcome, self.clock(), cause)
        self._stopped(state, record)
        self.last_failure = f"split {split} attempt {attempt} on {record.mapper}: {cause}"
        if final:
            raise JobFailed(f"split {split} cannot be mapped: {cause}")
        failures = state.failures()
        if failures >= self.max_attempts:
            raise JobFailed(f"split {split} failed {failures} attempts; last cause: {cause}")

    def abandoned(self, split: int, attempt: int, cause: str,
                  outcome: AttemptOutcome = AttemptOutcome.UNREACHABLE) -> None:
        """Hand an attempt back without counting it as a failure (it never started, or lost a race)."""
        state = self._state_of(split)
        record = self._attempt(state, attempt)
        if record.state == AttemptState.RUNNING:
            record.end(AttemptState.ABANDONED, outcome, self.clock(), cause)
            self._stopped(state, record)

    def cut(self, cause: str) -> None:
        """The job ended while attempts still ran: end each of them as cut, so no finished job shows one running."""
        for position in sorted(self._running):
            state = self._states[position]
            for record in state.running():
                self.abandoned(state.split.index, record.number, cause, AttemptOutcome.CUT)

    # -- counters (all O(1)) ----------------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self.splits)

    @property
    def done_count(self) -> int:
        return self._done

    @property
    def all_done(self) -> bool:
        return self._done == len(self.splits)

    @property
    def bytes_done(self) -> int:
        return self._done_bytes + self._progress

    def attempts_started(self) -> int:
        return self._started

    @property
    def running_count(self) -> int:
        """Splits with a running attempt."""
        return len(self._running)

    @property
    def failed_count(self) -> int:
        """Splits with a failed attempt (done since, or not)."""
        return len(self._failed)

    # -- reading splits (for the status) ----------------------------------------------------------------------

    def split_at(self, position: int) -> SplitState:
        """The state of the split at ``position`` in table order; a never-started one is made up, not stored."""
        return self._states[position] if position < len(self._states) else SplitState(self.splits[position], position)

    def winner(self, split: int) -> int | None:
        """The attempt of a started split whose report counted, if one has."""
        return self._state_of(split).winner

    def running_positions(self) -> list[int]:
        return sorted(self._running)

    def failed_positions(self) -> list[int]:
        return self._failed

    # -- internals --------------------------------------------------------------------------------------------

    def _state_of(self, split: int) -> SplitState:
        position = split if self._position is None else self._position.get(split, -1)
        if not 0 <= position < len(self._states):
            raise KeyError(f"split {split} has not started in this table")
        return self._states[position]

    @staticmethod
    def _attempt(state: SplitState, attempt: int) -> Attempt:
        if not 1 <= attempt <= len(state.attempts):
            raise KeyError(f"split {state.split.index} has no attempt {attempt}")
        return state.attempts[attempt - 1]

    def _stale(self, entry: tuple[float, int, int]) -> bool:
        """Whether a backup-heap entry no longer names its split's only running attempt."""
        _, position, number = entry
        state = self._states[position]
        return state.done or state.runners != 1 or state.attempts[number - 1].state != AttemptState.RUNNING

    def _start(self, state: SplitState, mapper: str, backup: bool) -> Ticket:
        number = len(state.attempts) + 1
        if state.attempts and not backup:
            self.retries += 1
        attempt = Attempt(number=number, mapper=mapper, started=self.clock(), backup=backup)
        state.attempts.append(attempt)
        state.runners += 1
        self._started += 1
        self._running.add(state.position)
        if state.runners == 1:
            heapq.heappush(self._lone, (attempt.started, state.position, number))
        return Ticket(state.split, number, backup)

    def _stopped(self, state: SplitState, record: Attempt) -> None:
        """``record`` no longer runs and the split is not done: hand it back, or leave its partner alone."""
        state.runners -= 1
        if not state.runners:
            self._running.discard(state.position)
            heapq.heappush(self._pending, state.position)
        elif state.runners == 1:
            (partner,) = state.running()
            heapq.heappush(self._lone, (partner.started, state.position, partner.number))
        self._measure(state)

    def _measure(self, state: SplitState) -> None:
        """Keep ``bytes_done`` current: a split counts whole once done, else as far as its furthest runner."""
        now = 0 if state.done else max((a.bytes_read for a in state.running()), default=0)
        self._progress += now - state.progress
        state.progress = now
