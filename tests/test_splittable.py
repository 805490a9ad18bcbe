"""The split table with a fake clock: dispatch, retries, the attempt cap, late reports, abandonment and backups."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.core.config import Settings
from actors.core.errors import JobFailed
from actors.core.splits import plan
from actors.master.attempts import AttemptState
from actors.master.splittable import SplitTable, Ticket

from . import splittable_reference as reference


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def table(
    splits: int = 4, max_attempts: int = 3, backups: bool = True, clock: Clock | None = None,
    backup_after: float = Settings.backup_after,
) -> SplitTable:
    return SplitTable(plan(splits * 100, 100, splits), max_attempts, clock or Clock(), backups=backups,
                      backup_after=backup_after)


def take(t: SplitTable, mapper: str) -> Ticket:
    ticket = t.next_for(mapper)
    assert ticket is not None, f"{mapper} got nothing"
    return ticket


# ---------------------------------------------------------------------------------------------------------------
# Failure-free runs


@pytest.mark.parametrize("splits", [1, 2, 5, 9])
def test_failure_free_run_without_backups_maps_each_split_once(splits: int) -> None:
    clock = Clock()
    t = table(splits, backups=False, clock=clock)
    mappers = ["m0", "m1", "m2"]
    running: list[tuple[str, Ticket]] = []
    handed: list[int] = []
    # Round-robin: every mapper takes one, then the oldest running attempt finishes, and so on.
    while not t.all_done:
        for mapper in mappers:
            if not any(m == mapper for m, _ in running):
                ticket = t.next_for(mapper)
                if ticket is not None:
                    assert not ticket.backup
                    handed.append(ticket.split.index)
                    running.append((mapper, ticket))
        clock.now += 1
        _, finished = running.pop(0)
        assert t.succeeded(finished.split.index, finished.attempt, finished.split.end - finished.split.start)
    assert sorted(handed) == list(range(splits))
    assert t.attempts_started() == splits == t.total == t.done_count
    assert t.retries == 0
    assert t.late_reports == 0
    assert t.bytes_done == splits * 100
    assert all(s.attempts[0].state == AttemptState.DONE and s.winner == 1 for s in map(t.split_at, range(t.total)))
    for mapper in mappers:
        assert t.next_for(mapper) is None


def test_no_backup_for_an_attempt_that_is_not_a_straggler() -> None:
    clock = Clock(1000.0)
    t = table(2, backups=True, clock=clock)
    a = take(t, "m0")
    b = take(t, "m1")
    clock.now += 1
    assert t.succeeded(a.split.index, a.attempt, 100)
    # m0 is idle while m1 is still (promptly) working on its split: nothing is a straggler yet.
    assert t.next_for("m0") is None
    clock.now += 1
    assert t.succeeded(b.split.index, b.attempt, 100)
    assert t.attempts_started() == 2


@pytest.mark.parametrize("splits", [2, 5, 12])
def test_failure_free_run_with_backups_on_maps_each_split_once(splits: int) -> None:
    """Even splits at an even pace, idle mappers asking all the time: no backup may start."""
    clock = Clock(1000.0)
    t = table(splits, backups=True, clock=clock)
    mappers = ["m0", "m1", "m2"]
    running: dict[str, tuple[Ticket, float]] = {}
    while not t.all_done:
        for index, mapper in enumerate(mappers):
            if mapper not in running:
                ticket = t.next_for(mapper)
                if ticket is not None:
                    # Staggered finishing times: every attempt takes between 3 and 4 seconds.
                    running[mapper] = (ticket, clock.now + 3 + index * 0.5)
        clock.now += 0.25
        for mapper, (ticket, due) in list(running.items()):
            if due <= clock.now:
                del running[mapper]
                assert t.succeeded(ticket.split.index, ticket.attempt, 100)
    assert t.attempts_started() == splits
    assert t.late_reports == 0
    assert all(len(s.attempts) == 1 for s in map(t.split_at, range(t.total)))


def test_backup_starts_for_a_straggler_after_backup_after() -> None:
    clock = Clock(1000.0)
    t = table(2, backups=True, clock=clock, backup_after=5.0)
    a = take(t, "m0")
    b = take(t, "m1")
    clock.now += 1
    t.succeeded(a.split.index, a.attempt, 100)  # the usual split time is 1 s
    clock.now = 1004.9
    assert t.next_for("m0") is None  # m1 has run 4.9 s: under the 5 s floor
    clock.now = 1005.1
    backup = t.next_for("m0")
    assert backup is not None and backup.backup and backup.split == b.split and backup.attempt == 2
    # A backup is not a retry, and only one backup per split: nobody else gets another.
    assert t.retries == 0
    clock.now += 100
    assert t.next_for("m2") is None
    assert t.next_for("m0") is None
    # The first to finish wins; the other's report is late and dropped.
    assert t.succeeded(b.split.index, backup.attempt, 100)
    assert t.split_at(b.split.index).attempts[0].state == AttemptState.ABANDONED
    assert not t.succeeded(b.split.index, b.attempt, 100)
    assert t.late_reports == 1
    assert t.done_count == 2


def test_straggler_time_scales_with_the_median_split_time() -> None:
    clock = Clock(1000.0)
    t = table(4, backups=True, clock=clock, backup_after=5.0)
    tickets = [take(t, f"m{i}") for i in range(4)]
    clock.now += 10
    for ticket in tickets[:3]:
        t.succeeded(ticket.split.index, ticket.attempt, 100)  # usual split time: 10 s
    # The last attempt has run 10 s; a straggler only past 2 x 10 s.
    clock.now = 1019.9
    assert t.next_for("m0") is None
    clock.now = 1020.1
    backup = t.next_for("m0")
    assert backup is not None and backup.backup and backup.split == tickets[3].split


def test_backups_off() -> None:
    clock = Clock(1000.0)
    t = table(2, backups=False, clock=clock)
    a, _ = take(t, "m0"), take(t, "m1")
    t.succeeded(a.split.index, a.attempt, 100)
    clock.now += 10_000
    assert t.next_for("m0") is None


def test_backup_never_on_the_same_mapper_and_oldest_first() -> None:
    clock = Clock(1000.0)
    t = table(3, backups=True, clock=clock)
    first = take(t, "m0")
    clock.now += 5
    second = take(t, "m1")
    clock.now += 1
    third = take(t, "m2")
    clock.now += 1
    t.succeeded(third.split.index, third.attempt, 100)
    clock.now += 100
    # m2 is idle: it backs up the oldest lone attempt running elsewhere (m0's).
    backup = take(t, "m2")
    assert backup.backup and backup.split == first.split
    # m0 only has its own split (already backed up) and m1's: it backs up m1's, never its own.
    other = take(t, "m0")
    assert other.backup and other.split == second.split


def test_a_straggler_whose_backup_failed_can_be_backed_up_again() -> None:
    clock = Clock(1000.0)
    t = table(1, max_attempts=4, backups=True, clock=clock)
    first = take(t, "m0")
    clock.now += 10
    backup = take(t, "m1")
    assert backup.backup and backup.split == first.split
    t.failed(0, backup.attempt, "crash")  # the straggler runs alone again
    assert t.next_for("m0") is None  # never a backup of its own attempt
    again = take(t, "m2")
    assert again.backup and again.split == first.split and again.attempt == 3


def test_backup_respects_max_attempts() -> None:
    clock = Clock(1000.0)
    t = table(1, max_attempts=1, backups=True, clock=clock)
    take(t, "m0")
    clock.now += 10_000
    assert t.next_for("m1") is None


# ---------------------------------------------------------------------------------------------------------------
# Failures and retries


def test_failed_attempts_retry_until_max_then_job_fails() -> None:
    t = table(2, max_attempts=3, backups=False)
    other = take(t, "mX")
    for number, mapper in enumerate(["m0", "m1", "m2"], start=1):
        ticket = take(t, mapper)
        assert ticket.split.index == 0 or ticket.split.index == 1
        if ticket.split == other.split:
            raise AssertionError("a running split was handed out again")
        assert ticket.attempt == number
        if number < 3:
            t.failed(ticket.split.index, ticket.attempt, f"boom {number}")
    with pytest.raises(JobFailed) as info:
        t.failed(ticket.split.index, ticket.attempt, "disk on fire")
    message = str(info.value)
    assert f"split {ticket.split.index}" in message
    assert "disk on fire" in message
    assert "3" in message
    assert t.retries == 2
    assert "disk on fire" in t.last_failure and "m2" in t.last_failure


def test_retry_prefers_a_mapper_that_has_not_failed_the_split() -> None:
    t = table(3, backups=False)
    a = take(t, "m0")
    b = take(t, "m1")
    assert (a.split.index, b.split.index) == (0, 1)
    t.failed(0, a.attempt, "crash")
    # Pending now: split 0 (failed by m0) and split 2 (fresh). m0 gets the fresh one ...
    assert take(t, "m0").split.index == 2
    # ... and the retry of split 0 goes to a mapper that has not failed it.
    retry = take(t, "m2")
    assert retry.split.index == 0 and retry.attempt == 2 and not retry.backup
    assert t.retries == 1


def test_retry_falls_back_to_the_failing_mapper_when_it_is_the_only_work() -> None:
    t = table(1, backups=False)
    a = take(t, "m0")
    t.failed(0, a.attempt, "crash")
    again = take(t, "m0")
    assert again.split.index == 0 and again.attempt == 2


def test_late_success_of_a_superseded_attempt_is_dropped_and_counted() -> None:
    t = table(1, backups=False)
    first = take(t, "m0")
    t.failed(0, first.attempt, "lease expired")  # the master gave up on it
    second = take(t, "m1")
    assert t.succeeded(0, second.attempt, 100)
    # The first mapper was only slow; its report arrives after the retry won.
    assert not t.succeeded(0, first.attempt, 100)
    assert t.late_reports == 1
    assert t.split_at(0).winner == second.attempt
    assert t.done_count == 1


def test_failure_after_the_split_is_done_is_ignored() -> None:
    t = table(1, max_attempts=1, backups=False)
    first = take(t, "m0")
    t.abandoned(0, first.attempt, "drained")
    second = take(t, "m1")
    t.succeeded(0, second.attempt, 100)
    t.failed(0, first.attempt, "late crash")  # not running any more: ignored, no JobFailed
    t.failed(0, second.attempt, "nonsense")  # the winner: ignored too
    assert t.split_at(0).attempts[1].state == AttemptState.DONE


def test_loser_of_a_race_failing_does_not_fail_the_job() -> None:
    clock = Clock(1000.0)
    t = table(1, max_attempts=2, backups=True, clock=clock)
    a = take(t, "m0")
    clock.now += 60
    b = take(t, "m1")
    assert b.backup
    t.succeeded(0, b.attempt, 100)
    t.failed(0, a.attempt, "killed")
    assert t.all_done


def test_repeated_report_of_the_winner_keeps_it_done() -> None:
    t = table(1, backups=False)
    a = take(t, "m0")
    assert t.succeeded(0, a.attempt, 100)
    assert not t.succeeded(0, a.attempt, 100)
    assert t.split_at(0).attempts[0].state == AttemptState.DONE
    assert t.late_reports == 0


# ---------------------------------------------------------------------------------------------------------------
# Abandonment


def test_abandoned_attempts_do_not_count_as_failures() -> None:
    t = table(1, max_attempts=2, backups=False)
    for _ in range(5):
        ticket = take(t, "m0")
        t.abandoned(0, ticket.attempt, "mapper unreachable")
    assert t.split_at(0).failures() == 0
    ticket = take(t, "m0")
    t.failed(0, ticket.attempt, "one")
    ticket = take(t, "m1")
    with pytest.raises(JobFailed, match="split 0"):
        t.failed(0, ticket.attempt, "two")


def test_abandoned_only_touches_running_attempts() -> None:
    t = table(1, backups=False)
    a = take(t, "m0")
    t.failed(0, a.attempt, "crash")
    t.abandoned(0, a.attempt, "later")
    assert t.split_at(0).attempts[0].state == AttemptState.FAILED
    assert t.split_at(0).attempts[0].cause == "crash"


# ---------------------------------------------------------------------------------------------------------------
# Progress and snapshot


def test_progress_and_bytes_done() -> None:
    t = table(3, backups=False)
    a, b = take(t, "m0"), take(t, "m1")
    t.progress(a.split.index, a.attempt, 40)
    t.progress(b.split.index, b.attempt, 10)
    assert t.bytes_done == 50
    t.succeeded(a.split.index, a.attempt, 100)
    assert t.bytes_done == 110
    t.failed(b.split.index, b.attempt, "x")
    assert t.bytes_done == 100  # a failed attempt's progress no longer counts


def test_late_report_after_another_attempt_won_keeps_the_failure_visible() -> None:
    t = table(1, backups=False)
    first = take(t, "m0")
    t.failed(0, first.attempt, "lease expired")
    second = take(t, "m1")
    assert t.succeeded(0, second.attempt, 100)
    assert not t.succeeded(0, first.attempt, 100)
    assert t.split_at(0).attempts[0].state == AttemptState.FAILED
    assert t.split_at(0).attempts[0].cause == "lease expired"
    assert t.failed_count == 1


def test_late_success_of_a_handed_back_attempt_completes_the_split() -> None:
    """A failed attempt's streams may all have been committed: its report, while the split is open, counts."""
    t = table(2, backups=False)
    a = take(t, "m0")
    t.failed(0, a.attempt, "lease expired")
    assert t.failed_count == 1
    assert t.succeeded(0, a.attempt, 100)
    assert t.split_at(0).attempts[0].state == AttemptState.DONE
    assert t.failed_count == 0  # no failed attempt is left on it
    # The split is no longer pending: the next mapper gets split 1, not a retry of split 0.
    assert take(t, "m1").split.index == 1
    assert t.retries == 0


def test_reports_for_unknown_attempts_are_refused() -> None:
    t = table(2, backups=False)
    a = take(t, "m0")
    for split, attempt in [(0, 0), (0, 2), (0, -1), (1, 1), (9, 1)]:
        with pytest.raises(KeyError):
            t.succeeded(split, attempt, 100)
    assert t.done_count == 0
    assert t.split_at(0).attempts[0].state == AttemptState.RUNNING
    assert t.succeeded(0, a.attempt, 100)


def test_a_table_of_some_splits_hands_them_out_in_its_own_order() -> None:
    """A recovery table holds a subset of the plan, in the order given; reports name splits by index."""
    splits = plan(1000, 100, 1)
    t = SplitTable([splits[7], splits[2], splits[5]], 3, Clock(), backups=False)
    tickets = [take(t, "m0") for _ in range(3)]
    assert [k.split.index for k in tickets] == [7, 2, 5]
    t.failed(2, 1, "crash")
    assert take(t, "m1").split.index == 2
    assert t.succeeded(7, 1, 100) and t.succeeded(2, 2, 100) and t.succeeded(5, 1, 100)
    assert t.all_done and t.bytes_done == 300


# ---------------------------------------------------------------------------------------------------------------
# The indexed table answers exactly like the straightforward scan it replaced


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[int], int, bool, float, list[tuple[Any, ...]]]:
    count = draw(st.integers(1, 7))
    order = draw(st.permutations(range(count)))
    chosen = order[: draw(st.integers(1, count))] if draw(st.booleans()) else list(range(count))
    max_attempts = draw(st.integers(1, 4))
    backups = draw(st.booleans())
    backup_after = draw(st.sampled_from([0.0, 1.0, 5.0]))
    mapper = st.integers(0, 2)
    ticket = st.integers(0, 40)
    tick = st.tuples(st.just("tick"), st.sampled_from([0.0, 0.5, 1.0, 3.0, 12.0]))
    step = st.one_of(
        st.tuples(st.just("next"), mapper),
        st.tuples(st.just("next"), mapper),
        st.tuples(st.just("next"), mapper),
        tick,
        st.tuples(st.just("succeeded"), ticket, st.integers(0, 120)),
        st.tuples(st.just("failed"), ticket),
        st.tuples(st.just("abandoned"), ticket),
        st.tuples(st.just("progress"), ticket, st.integers(0, 120)),
        st.tuples(st.just("retire"), mapper),
        tick,
    )
    return chosen, max_attempts, backups, backup_after, draw(st.lists(step, max_size=60))


def call(method: Callable[..., Any], *args: Any) -> Any:
    try:
        return ("ok", method(*args))
    except JobFailed as error:
        return ("JobFailed", str(error))


def same_tables(real: SplitTable, model: reference.SplitTable) -> None:
    assert (real.total, real.done_count, real.all_done, real.bytes_done, real.attempts_started()) == (
        model.total, model.done_count, model.all_done, model.bytes_done, model.attempts_started()
    )
    assert (real.retries, real.late_reports, real.last_failure) == (
        model.retries, model.late_reports, model.last_failure
    )
    assert real.straggler_time() == model.straggler_time()
    shown = [
        (s.split, s.winner, [(a.number, a.mapper, a.started, a.state, a.cause, a.bytes_read, a.backup, a.finished,
                              a.outcome) for a in s.attempts])
        for s in map(real.split_at, range(real.total))
    ]
    assert shown == [
        (s.split, s.winner, [(a.number, a.mapper, a.started, a.state, a.cause, a.bytes_read, a.backup, a.finished,
                              a.outcome) for a in s.attempts])
        for s in model.states
    ]
    running = [i for i, s in enumerate(model.states) if s.running()]
    failed = [i for i, s in enumerate(model.states) if s.failures()]
    assert (real.running_positions(), real.running_count) == (running, len(running))
    assert (real.failed_positions(), real.failed_count) == (failed, len(failed))


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_indexed_table_matches_the_scanning_model(
    scenario: tuple[list[int], int, bool, float, list[tuple[Any, ...]]]
) -> None:
    chosen, max_attempts, backups, backup_after, steps = scenario
    planned = plan((max(chosen) + 1) * 100, 100, 1)
    splits = [planned[i] for i in chosen]
    clock = Clock(1000.0)
    real = SplitTable(list(splits), max_attempts, clock, backups=backups, backup_after=backup_after)
    model = reference.SplitTable(list(splits), max_attempts, clock, backups=backups, backup_after=backup_after)
    tickets: list[Ticket] = []
    for step in steps:
        name = step[0]
        if name == "next":
            mine, theirs = real.next_for(f"m{step[1]}"), model.next_for(f"m{step[1]}")
            assert (mine.split, mine.attempt, mine.backup) == (theirs.split, theirs.attempt, theirs.backup) \
                if mine is not None and theirs is not None else mine is None and theirs is None
            if mine is not None:
                tickets.append(mine)
        elif name == "retire":
            real.retire(f"m{step[1]}")
            model.retire(f"m{step[1]}")
        elif name == "tick":
            clock.now += step[1]
        elif tickets:
            ticket = tickets[step[1] % len(tickets)]
            args: tuple[Any, ...] = (ticket.split.index, ticket.attempt)
            args += (step[2],) if name in ("succeeded", "progress") else (f"cause {len(tickets)}",)
            assert call(getattr(real, name), *args) == call(getattr(model, name), *args)
        same_tables(real, model)
