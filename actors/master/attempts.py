"""Attempts: one try at one split on one mapper, its state machine, and one split's attempts."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ..core.machine import move
from ..core.splits import Split


class AttemptState(StrEnum):
    """How one attempt stands; the values are the per-attempt ``state`` strings of the JSON status."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    ABANDONED = "abandoned"  # handed back without fault (mapper unreachable before starting, drained, lost a race)


class AttemptOutcome(StrEnum):
    """How an attempt ended (or that it runs): the ``outcome`` of the JSON status, the timeline's colour, and the
    words of the metrics' outcome labels."""

    RUNNING = "running"
    OK = "ok"  # its report counted (or it finished an open split after it was given up on)
    FAILED = "failed"  # the mapper reported a failure, crashed or answered nonsense
    LEASE_EXPIRED = "lease_expired"  # its mapper was silent for MR_TIMEOUT_LEASE (stalled)
    SUPERSEDED = "superseded"  # another attempt of its split finished first
    UNREACHABLE = "unreachable"  # its mapper could not be reached: handed back without fault
    CUT = "cut"  # the job ended (failed or cancelled) while it ran


# An attempt given up on (failed or abandoned) may still report success while its split is open: its streams
# are committed, so the split is done. Nothing leaves DONE: a late report after another attempt won changes nothing.
ATTEMPT_MOVES: dict[AttemptState, frozenset[AttemptState]] = {
    AttemptState.RUNNING: frozenset({AttemptState.DONE, AttemptState.FAILED, AttemptState.ABANDONED}),
    AttemptState.FAILED: frozenset({AttemptState.DONE}),
    AttemptState.ABANDONED: frozenset({AttemptState.DONE}),
    AttemptState.DONE: frozenset(),
}


@dataclass(slots=True)
class Attempt:
    """One try at one split on one mapper."""

    number: int
    mapper: str
    started: float
    cause: str = ""
    bytes_read: int = 0
    backup: bool = False
    finished: float | None = None  # the table's clock when it stopped running (its last word for a late success)
    outcome: AttemptOutcome = AttemptOutcome.RUNNING
    _state: AttemptState = AttemptState.RUNNING

    @property
    def state(self) -> AttemptState:
        return self._state

    def transition(self, new: AttemptState) -> None:
        """Move to ``new``; an illegal move raises IllegalTransition."""
        self._state = move("attempt", ATTEMPT_MOVES, self._state, new)

    def end(self, new: AttemptState, outcome: AttemptOutcome, at: float, cause: str = "") -> None:
        """Stop running (or, given up on, succeed after all) at ``at``, as ``outcome``."""
        self.transition(new)
        self.outcome = outcome
        self.finished = at
        if cause:
            self.cause = cause


@dataclass(slots=True)
class SplitState:
    split: Split
    position: int  # place in the table's order, which is the order splits are handed out in
    attempts: list[Attempt] = field(default_factory=list)
    winner: int | None = None  # attempt number whose report counted
    runners: int = 0  # running attempts: at most a retry and a backup, so listing them from attempts is cheap
    progress: int = 0  # while not done: the furthest a running attempt has read

    @property
    def done(self) -> bool:
        return self.winner is not None

    def running(self) -> list[Attempt]:
        return [a for a in self.attempts if a.state == AttemptState.RUNNING]

    def failures(self) -> int:
        return sum(1 for a in self.attempts if a.state == AttemptState.FAILED)

    def failed_on(self) -> set[str]:
        return {a.mapper for a in self.attempts if a.state == AttemptState.FAILED}
