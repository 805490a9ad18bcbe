"""Reported partitions kept for a repeated finalize: the same bytes while kept, bounded by age and bytes."""

from __future__ import annotations

import pytest

from actors.core.errors import Conflict
from actors.core.messages import StreamHeader
from actors.reducer.ledger import Ledger
from actors.reducer.reported import ENTRY_OVERHEAD, ReportedJobs


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_is_kept_for_its_grace_then_dropped() -> None:
    clock = Clock()
    kept = ReportedJobs(grace=10.0, budget=1 << 20, clock=clock)
    assert kept.keep(("j", 0), 3, b"answer")
    entry = kept.get(("j", 0))
    assert entry is not None and (entry.epoch, entry.answer) == (3, b"answer")
    clock.now += 10.0
    assert kept.get(("j", 0)) is not None  # the window is inclusive
    clock.now += 0.5
    assert kept.get(("j", 0)) is None and len(kept) == 0 and kept.held == 0


def test_the_first_answer_of_an_epoch_stays_and_a_newer_epoch_replaces_it() -> None:
    kept = ReportedJobs(grace=10.0, budget=1 << 20, clock=Clock())
    assert kept.keep(("j", 0), 3, b"first")
    assert kept.keep(("j", 0), 3, b"second")  # a finalize answered twice at once: the first answer is the answer
    assert kept.get(("j", 0)).answer == b"first"  # type: ignore[union-attr]
    assert not kept.keep(("j", 0), 2, b"older")  # an older epoch never replaces a newer one
    assert kept.keep(("j", 0), 4, b"newer")
    assert kept.get(("j", 0)).epoch == 4 and kept.held == len(b"newer") + ENTRY_OVERHEAD  # type: ignore[union-attr]


def test_the_budget_drops_the_oldest_and_refuses_what_never_fits() -> None:
    clock = Clock()
    kept = ReportedJobs(grace=60.0, budget=3 * (ENTRY_OVERHEAD + 100), clock=clock)
    for name in ("a", "b", "c"):
        assert kept.keep((name, 0), 1, b"x" * 100)
        clock.now += 1
    assert kept.keep(("d", 0), 1, b"x" * 100)
    assert [name for name in "abcd" if kept.get((name, 0))] == ["b", "c", "d"]
    assert kept.held <= kept.budget
    assert not kept.keep(("huge", 0), 1, b"x" * kept.budget)  # larger than the whole budget: not kept, nothing dropped
    assert [name for name in "abcd" if kept.get((name, 0))] == ["b", "c", "d"]


def test_a_grace_of_zero_keeps_nothing() -> None:
    kept = ReportedJobs(grace=0.0, budget=1 << 20, clock=Clock())
    assert not kept.keep(("j", 0), 1, b"answer")
    assert kept.get(("j", 0)) is None


def header(epoch: int, split: int = 0) -> StreamHeader:
    return StreamHeader(job="j", epoch=epoch, split=split, attempt=1, partition=0, partitions=1,
                        job_name="wordcount", size=10)


def test_the_ledger_fences_streams_and_finalizes_by_the_reported_epoch() -> None:
    clock = Clock()
    ledger = Ledger(partition=0, clock=clock, report_grace=30.0)
    state = ledger.admit(header(5))
    ledger.forget_reported(state, b"report of epoch 5")
    assert ledger.jobs == {}
    assert ledger.receive(header(5, split=1)) is None  # every split was committed: a duplicate
    assert ledger.reported_answer("j", 5, 0) == b"report of epoch 5"
    with pytest.raises(Conflict, match="stale"):
        ledger.receive(header(4))
    with pytest.raises(Conflict, match="stale"):
        ledger.reported_answer("j", 4, 0)
    assert ledger.stale == 2
    newer = ledger.receive(header(6))
    assert newer is not None and newer.epoch == 6
    assert ledger.reported_answer("j", 5, 0) is None and len(ledger.reported) == 0  # superseded with its epoch


def test_a_release_drops_the_kept_answer_and_the_janitor_its_expired_ones() -> None:
    clock = Clock()
    ledger = Ledger(partition=0, clock=clock, report_grace=30.0)
    ledger.forget_reported(ledger.admit(header(5)), b"five")
    assert not ledger.release("j", 5)  # no state left to drop...
    assert ledger.reported_answer("j", 5, 0) is None  # ...but the kept answer goes too
    other = StreamHeader(job="k", epoch=1, split=0, attempt=1, partition=0, partitions=1, job_name="wordcount",
                         size=10)
    ledger.forget_reported(ledger.admit(other), b"k")
    clock.now += 31
    assert ledger.expire(ttl=3600.0) == []  # no live job expired...
    assert len(ledger.reported) == 0  # ...and the answer past its grace is gone


def test_a_report_of_a_replaced_epoch_is_not_kept() -> None:
    ledger = Ledger(partition=0, clock=Clock(), report_grace=30.0)
    old = ledger.admit(header(5))
    ledger.admit(header(6))  # a newer epoch replaced it while its finalize was still computing
    ledger.forget_reported(old, b"five")
    assert ledger.jobs["j"][0].epoch == 6 and len(ledger.reported) == 0
