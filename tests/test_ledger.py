"""The ledger: the commit rule (merge a split once per partition), merging in slices, and epoch fencing."""

from __future__ import annotations

from collections import Counter

import pytest

from actors.core.errors import BadRequest, Conflict, NotFound, WireError
from actors.core.messages import Commit, Data, StreamHeader
from actors.jobs import get_job
from actors.jobs.wordcount.columns import pack_columns
from actors.reducer.ledger import COMMITTED, DUPLICATE, Ledger
from actors.reducer.stage import Stage

from .support import commit
from .test_stage import MAX_KEY, honest_commit, staged


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def header(job: str = "j", epoch: int = 1, split: int = 0, partition: int = 0, partitions: int = 2,
           job_name: str = "wordcount") -> StreamHeader:
    return StreamHeader(job=job, epoch=epoch, split=split, attempt=1, partition=partition, partitions=partitions,
                        job_name=job_name, size=100)


def stream(ledger: Ledger, split: int, *frames: dict[str, int], epoch: int = 1) -> str:
    """A whole valid stream: header, DATA frames, COMMIT; returns the ack status."""
    state = ledger.admit(header(split=split, epoch=epoch, partition=ledger.partition))
    stage = staged(*frames)
    stage.verify(honest_commit(*frames))
    return commit(state, split, stage)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(clock: Clock) -> Ledger:
    return Ledger(partition=0, clock=clock)


# ---------------------------------------------------------------------------------------------------------------
# The commit rule


def test_split_committed_twice_merges_once(ledger: Ledger) -> None:
    assert stream(ledger, 0, {"a": 2, "b": 1}) == COMMITTED
    assert stream(ledger, 0, {"a": 2, "b": 1}) == DUPLICATE
    assert stream(ledger, 0, {"a": 2, "b": 1}) == DUPLICATE
    state = ledger.current("j", 1, 0)
    assert state.totals == {"a": 2, "b": 1}
    assert state.committed == {0}
    assert state.duplicates == 2


def test_different_splits_merge(ledger: Ledger) -> None:
    assert stream(ledger, 0, {"a": 2}, {"b": 1}) == COMMITTED
    assert stream(ledger, 1, {"a": 5, "c": 1}) == COMMITTED
    assert stream(ledger, 0, {"a": 2}, {"b": 1}) == DUPLICATE
    assert ledger.current("j", 1, 0).totals == Counter({"a": 7, "b": 1, "c": 1})


def test_uncommitted_stream_changes_nothing(ledger: Ledger) -> None:
    assert stream(ledger, 0, {"a": 1}) == COMMITTED
    state = ledger.admit(header(split=1))
    stage = staged({"a": 100, "z": 5})
    del stage  # the connection dropped before COMMIT
    bad = staged({"a": 100})
    with pytest.raises(WireError):
        bad.verify(Commit(frames=1, keys=1, checksum=99))  # an invalid COMMIT: never committed either
    assert state.totals == {"a": 1}
    assert state.committed == {0}
    assert state.missing(2) == [1]
    # The split can still be committed properly later.
    assert stream(ledger, 1, {"a": 100, "z": 5}) == COMMITTED
    assert state.totals == {"a": 101, "z": 5}


def test_inverted_index_commit_rule() -> None:
    state = Ledger(0, Clock()).admit(header(job_name="inverted_index"))
    first = staged({"w": ["a.txt"]}, job_name="inverted_index")
    again = staged({"w": ["a.txt"]}, job_name="inverted_index")
    other = staged({"w": ["b.txt"], "v": ["b.txt"]}, job_name="inverted_index")
    assert commit(state, 0, first) == COMMITTED
    assert commit(state, 0, again) == DUPLICATE
    assert commit(state, 1, other) == COMMITTED
    assert state.totals == {"w": ["a.txt", "b.txt"], "v": ["b.txt"]}


def test_missing(ledger: Ledger) -> None:
    for split in (0, 2, 5):
        stream(ledger, split, {"a": 1})
    state = ledger.current("j", 1, 0)
    assert state.missing(6) == [1, 3, 4]
    assert state.missing(3) == [1]
    assert state.missing(0) == []


# ---------------------------------------------------------------------------------------------------------------
# Routing and fencing


def test_misrouted_partition_is_a_conflict(ledger: Ledger) -> None:
    with pytest.raises(Conflict, match="partition 1"):
        ledger.admit(header(partition=1))
    assert ledger.jobs == {}


def test_partition_out_of_range_is_refused() -> None:
    ledger = Ledger(partition=2, clock=Clock())
    with pytest.raises(WireError, match="out of range"):
        ledger.admit(header(partition=2, partitions=2))
    assert ledger.jobs == {}


def test_unknown_job_name_is_a_bad_request(ledger: Ledger) -> None:
    with pytest.raises(BadRequest, match="unknown job"):
        ledger.admit(header(job_name="sort"))


def test_same_epoch_other_parameters_is_a_conflict(ledger: Ledger) -> None:
    ledger.admit(header())
    with pytest.raises(Conflict):
        ledger.admit(header(partitions=3))
    with pytest.raises(Conflict):
        ledger.admit(header(job_name="inverted_index"))


def test_same_epoch_returns_the_same_state(ledger: Ledger) -> None:
    assert ledger.admit(header(split=0)) is ledger.admit(header(split=1))


def test_older_epoch_is_fenced_and_counted(ledger: Ledger) -> None:
    assert stream(ledger, 0, {"a": 1}, epoch=2) == COMMITTED
    with pytest.raises(Conflict, match="stale"):
        ledger.admit(header(epoch=1))
    assert ledger.stale == 1
    with pytest.raises(Conflict, match="stale"):
        ledger.current("j", 1, 0)
    assert ledger.stale == 2
    # The newer epoch's state is untouched.
    state = ledger.current("j", 2, 0)
    assert state.totals == {"a": 1}
    assert ledger.stale == 2


def test_newer_epoch_replaces_state(ledger: Ledger) -> None:
    assert stream(ledger, 0, {"a": 1}, epoch=1) == COMMITTED
    old = ledger.current("j", 1, 0)
    # The same split under a newer epoch is not a duplicate: it merges into fresh state.
    assert stream(ledger, 0, {"b": 7}, epoch=3) == COMMITTED
    new = ledger.current("j", 3, 0)
    assert new is not old
    assert new.totals == {"b": 7}
    assert new.committed == {0}
    with pytest.raises(Conflict):
        ledger.current("j", 1, 0)
    # A commit into the old state object (a stream admitted before the new epoch) cannot reach the new totals.
    assert ledger.jobs["j"][0] is new


def test_jobs_are_independent(ledger: Ledger) -> None:
    ledger.admit(header(job="x", epoch=5))
    state = ledger.admit(header(job="y", epoch=1))
    assert state.epoch == 1
    assert ledger.stale == 0


def test_current_unknown(ledger: Ledger) -> None:
    with pytest.raises(NotFound):
        ledger.current("nope", 1, 0)
    ledger.admit(header(epoch=1))
    with pytest.raises(NotFound):
        ledger.current("j", 2, 0)  # a newer epoch not seen yet


# ---------------------------------------------------------------------------------------------------------------
# Release and expiry


def test_release(ledger: Ledger) -> None:
    assert ledger.release("j", 1) is False  # unknown
    ledger.admit(header(epoch=3))
    assert ledger.release("j", 2) is False  # an older epoch cannot release a newer one
    assert "j" in ledger.jobs
    assert ledger.release("j", 3) is True
    assert "j" not in ledger.jobs
    ledger.admit(header(epoch=3))
    assert ledger.release("j", 4) is True  # a newer epoch's release covers older state


def test_expire_with_a_fake_clock(ledger: Ledger, clock: Clock) -> None:
    ledger.admit(header(job="old"))
    clock.now += 50
    ledger.admit(header(job="fresh"))
    ledger.admit(header(job="touched"))
    clock.now += 30
    ledger.current("touched", 1, 0)  # touching keeps it alive
    clock.now += 40
    # old: 120 s untouched; fresh: 70 s; touched: 40 s.
    assert ledger.expire(100) == ["old"]
    assert set(ledger.jobs) == {"fresh", "touched"}
    assert sorted(ledger.expire(60)) == ["fresh"]
    assert ledger.expire(60) == []
    assert set(ledger.jobs) == {"touched"}
    clock.now += 1000
    assert ledger.expire(60) == ["touched"]
    assert ledger.jobs == {}


def test_admit_touches(ledger: Ledger, clock: Clock) -> None:
    ledger.admit(header())
    clock.now += 90
    ledger.admit(header(split=1))
    clock.now += 20
    assert ledger.expire(100) == []


def test_a_commit_merged_in_slices_counts_once_wherever_it_stops() -> None:
    state = Ledger(0, Clock()).admit(header(job_name="wordcount"))
    stages = []
    for split, items in enumerate(({"a": 1, "b": 2}, {"a": 3, "c": 4, "d": 5}, {"b": 1, "d": 1})):
        stage = Stage(get_job("wordcount"), MAX_KEY)
        stage.add(Data(dict(items)))
        stages.append(stage)
        assert state.record(split, stage) == COMMITTED
    assert state.totals == {"a": 1, "b": 2}  # the first split's values simply became the totals
    assert state.record(1, stages[1]) == DUPLICATE
    assert state.merge_some(2) is False  # stopped part way: totals and pending still hold each split once
    merged = Counter(state.totals)
    for pending in state.merged.pending:
        assert isinstance(pending, dict)  # Data frames stay maps (COLUMNS frames go to the count table)
        merged.update(pending)
    assert merged == Counter({"a": 4, "b": 3, "c": 4, "d": 6})
    state.settle()
    assert not state.merged.pending
    assert state.totals == {"a": 4, "b": 3, "c": 4, "d": 6}


def test_counts_past_63_bits_are_refused_at_the_wire_and_change_nothing() -> None:
    # The count table holds counts below 2**63 and no input has that many words: a frame or a map carrying such a
    # count is refused as it is staged, and a stream that would bring the partition's sum past it is refused at its
    # commit, before it counts; the partition stays exact and the split can still commit honestly.
    state = Ledger(0, Clock()).admit(header(job_name="wordcount"))
    for bad in (pack_columns({"b": 2**63}), Data({"b": 2**63})):
        with pytest.raises(WireError, match="2\\*\\*63"):
            Stage(state.job_def, MAX_KEY).add(bad)
    first = Stage(state.job_def, MAX_KEY)
    first.add(pack_columns({"b": 2**63 - 2}))
    assert state.record(0, first) == COMMITTED
    over = Stage(state.job_def, MAX_KEY)
    over.add(pack_columns({"a": 1, "b": 1}))
    with pytest.raises(WireError, match="past 2\\*\\*63 - 1"):
        state.record(1, over)
    assert state.committed == {0}
    honest = Stage(state.job_def, MAX_KEY)
    honest.add(pack_columns({"a": 1}))
    assert state.record(1, honest) == COMMITTED
    state.settle()
    assert state.totals == {"b": 2**63 - 2, "a": 1}


# ---------------------------------------------------------------------------------------------------------------
# Steps: a multi-step job's state is fenced by (epoch, step)


def step_header(split: int, step: int, epoch: int = 1) -> StreamHeader:
    return StreamHeader(job="j", epoch=epoch, split=split, attempt=1, partition=0, partitions=2,
                        job_name="wordcount", size=100, step=step)


def step_stream(ledger: Ledger, split: int, step: int, frame: dict[str, int]) -> str:
    """A whole stream of ``step`` through the reducer's own checks: receive, then the commit rule (or duplicate)."""
    state = ledger.receive(step_header(split, step))
    stage = staged(frame)
    stage.verify(honest_commit(frame))
    if state is None or ledger.is_past("j", 1, step, 0):
        return DUPLICATE
    return commit(ledger.current("j", 1, 0, step), split, stage)


def test_a_later_step_replaces_the_state_and_a_late_stream_of_an_earlier_one_is_a_counted_duplicate(
        ledger: Ledger) -> None:
    assert step_stream(ledger, 0, 0, {"a": 1}) == COMMITTED
    assert step_stream(ledger, 0, 1, {"b": 2}) == COMMITTED  # step 2's split 0: not step 1's split 0
    state = ledger.current("j", 1, 0, 1)
    assert state.step == 1 and state.committed == {0} and state.totals == {"b": 2}
    assert step_stream(ledger, 1, 0, {"a": 5}) == DUPLICATE  # step 1 was reported before step 2 began
    assert ledger.stale_steps == 1 and ledger.current("j", 1, 0, 1).totals == {"b": 2}
    with pytest.raises(NotFound):
        ledger.current("j", 1, 0, 0)
    assert ledger.find("j", 1, 0, 0) is None


def test_a_kept_report_answers_its_own_step_only(ledger: Ledger) -> None:
    assert step_stream(ledger, 0, 0, {"a": 1}) == COMMITTED
    ledger.forget_reported(ledger.current("j", 1, 0, 0), b"step-1 report")
    assert ledger.reported_answer("j", 1, 0, 0) == b"step-1 report"
    assert step_stream(ledger, 0, 0, {"a": 1}) == DUPLICATE  # a retry of a reported step: no stale count
    assert ledger.stale_steps == 0
    assert ledger.reported_answer("j", 1, 0, 1) is None  # step 2 is not reported: its state comes with its streams
    assert step_stream(ledger, 0, 1, {"b": 1}) == COMMITTED
    ledger.forget_reported(ledger.current("j", 1, 0, 1), b"step-2 report")
    assert ledger.reported_answer("j", 1, 0, 0) is None  # never step 2's answer to step 1's finalize
    assert step_stream(ledger, 3, 0, {"a": 1}) == DUPLICATE and ledger.stale_steps == 1
    with pytest.raises(Conflict):
        ledger.admit(step_header(0, 0))


def part_stream(ledger: Ledger, split: int, step: int, partition: int, frame: dict[str, int]) -> str:
    """A stream of partition ``partition`` of 4 on 2 reducers (reducer 0 owns 0 and 2) through the reducer's checks."""
    header = StreamHeader(job="j", epoch=1, split=split, attempt=1, partition=partition, partitions=4,
                          job_name="wordcount", size=100, step=step, reducers=2)
    state = ledger.receive(header)
    stage = staged(frame)
    stage.verify(honest_commit(frame))
    if state is None or ledger.is_past("j", 1, step, partition):
        return DUPLICATE
    return commit(ledger.current("j", 1, partition, step), split, stage)


def test_a_reducer_holds_several_partitions_of_a_step_and_a_later_step_replaces_them_all(ledger: Ledger) -> None:
    assert part_stream(ledger, 0, 0, 0, {"a": 1}) == COMMITTED
    assert part_stream(ledger, 0, 0, 2, {"b": 1}) == COMMITTED
    assert sorted(ledger.jobs["j"]) == [0, 2]
    ledger.forget_reported(ledger.current("j", 1, 0, 0), b"partition 0 of step 1")
    assert part_stream(ledger, 1, 0, 0, {"a": 1}) == DUPLICATE  # partition 0 reported: a retry, not stale
    assert part_stream(ledger, 1, 0, 2, {"b": 1}) == COMMITTED  # partition 2 of the same step is still open
    assert ledger.stale_steps == 0
    ledger.forget_reported(ledger.current("j", 1, 2, 0), b"partition 2 of step 1")
    assert ledger.reported_answer("j", 1, 2, 0) == b"partition 2 of step 1"
    # Step 2 begins on partition 0 only: partition 2's late step-1 stream is a duplicate, counted stale.
    assert part_stream(ledger, 0, 1, 0, {"c": 1}) == COMMITTED
    assert part_stream(ledger, 2, 0, 2, {"b": 1}) == DUPLICATE and ledger.stale_steps == 1
    ledger.forget_reported(ledger.current("j", 1, 0, 1), b"partition 0 of step 2")
    # Nothing held now, and partition 2's own entry is gone (past the grace, say): partition 0's step-2 report
    # still says step 2 began, so a step-1 stream of partition 2 is a duplicate, never a fresh step-1 state.
    ledger.reported.drop(("j", 2))
    assert "j" not in ledger.jobs
    assert part_stream(ledger, 3, 0, 2, {"b": 1}) == DUPLICATE and ledger.stale_steps == 2
    assert "j" not in ledger.jobs
    with pytest.raises(Conflict, match="reducer 0"):
        ledger.receive(StreamHeader(job="j", epoch=1, split=0, attempt=1, partition=1, partitions=4,
                                    job_name="wordcount", size=100, step=1, reducers=2))


def test_a_stream_of_more_partitions_than_any_job_may_have_is_refused(clock: Clock) -> None:
    """A lying header's partitions would split this reducer's memory into that many shares: refused by name."""
    ledger = Ledger(partition=0, clock=clock, max_partitions=64)
    with pytest.raises(WireError, match="MR_MAX_PARTITIONS"):
        ledger.admit(header(partitions=10**9))
    assert ledger.admit(header(partitions=64)) is not None  # at the cap: a job's own
