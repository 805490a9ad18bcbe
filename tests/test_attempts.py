"""Attempts: the state machine, every legal and illegal move, and the status strings its states show as."""

from __future__ import annotations

import itertools
import json

import pytest

from actors.core.machine import IllegalTransition
from actors.master.attempts import ATTEMPT_MOVES, Attempt, AttemptState

ATTEMPT_LEGAL = {
    (AttemptState.RUNNING, AttemptState.DONE),
    (AttemptState.RUNNING, AttemptState.FAILED),
    (AttemptState.RUNNING, AttemptState.ABANDONED),
    (AttemptState.FAILED, AttemptState.DONE),
    (AttemptState.ABANDONED, AttemptState.DONE),
}


def attempt_in(state: AttemptState) -> Attempt:
    attempt = Attempt(number=1, mapper="m0", started=0.0)
    path = {AttemptState.RUNNING: [], AttemptState.DONE: [AttemptState.DONE],
            AttemptState.FAILED: [AttemptState.FAILED], AttemptState.ABANDONED: [AttemptState.ABANDONED]}
    for step in path[state]:
        attempt.transition(step)
    assert attempt.state == state
    return attempt


@pytest.mark.parametrize(("old", "new"), list(itertools.product(AttemptState, AttemptState)))
def test_attempt_transitions(old: AttemptState, new: AttemptState) -> None:
    attempt = attempt_in(old)
    if (old, new) in ATTEMPT_LEGAL:
        attempt.transition(new)
        assert attempt.state == new
    else:
        with pytest.raises(IllegalTransition, match=f"attempt: illegal transition {old.value} -> {new.value}"):
            attempt.transition(new)
        assert attempt.state == old
    assert set(ATTEMPT_MOVES) == set(AttemptState)


def test_attempt_states_are_the_status_strings() -> None:
    assert [s.value for s in AttemptState] == ["running", "done", "failed", "abandoned"]
    assert json.dumps([AttemptState.ABANDONED]) == '["abandoned"]'
