"""Attempt keys: whose work a message is — one attempt at one split of one epoch of one job."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AttemptKey:
    """The (job, epoch, split, attempt) that every assignment, stream and report carries, compared whole.

    Not a wire message: the messages that carry these four fields (Assignment, Progress, SplitDone, SplitFailed,
    StreamHeader) expose them as their ``key`` property, and their wire form is unchanged.
    """

    job: str
    epoch: int
    split: int
    attempt: int
