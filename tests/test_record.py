"""The job record: its state machine, pair by pair, and a status whose size does not grow with the splits."""

from __future__ import annotations

import itertools
import json

import pytest

from actors.core.machine import IllegalTransition
from actors.core.splits import plan
from actors.inputs.ref import InputRef
from actors.master.record import FINISHED, JOB_MOVES, JobRecord, JobState
from actors.master.splittable import SplitTable
from actors.master.splitview import SplitFilter, SplitQuery

LEGAL = {
    (JobState.QUEUED, JobState.RUNNING),
    (JobState.QUEUED, JobState.FAILED),
    (JobState.QUEUED, JobState.CANCELLED),
    (JobState.RUNNING, JobState.FINALIZING),
    (JobState.RUNNING, JobState.FAILED),
    (JobState.RUNNING, JobState.CANCELLED),
    (JobState.FINALIZING, JobState.DONE),
    (JobState.FINALIZING, JobState.FAILED),
    (JobState.FINALIZING, JobState.CANCELLED),
}
PATH = {  # a legal way to reach each state from QUEUED
    JobState.QUEUED: [],
    JobState.RUNNING: [JobState.RUNNING],
    JobState.FINALIZING: [JobState.RUNNING, JobState.FINALIZING],
    JobState.DONE: [JobState.RUNNING, JobState.FINALIZING, JobState.DONE],
    JobState.FAILED: [JobState.FAILED],
    JobState.CANCELLED: [JobState.RUNNING, JobState.CANCELLED],
}


def record(size: int = 1000) -> JobRecord:
    return JobRecord(id="j1", epoch=7, job_name="wordcount", input=InputRef("http", "http://m/x", "book.txt", size),
                     created=1.0, split_size=100)


def record_in(state: JobState) -> JobRecord:
    job = record()
    for step in PATH[state]:
        job.transition(step)
    assert job.state == state
    return job


@pytest.mark.parametrize(("old", "new"), list(itertools.product(JobState, JobState)))
def test_job_transitions(old: JobState, new: JobState) -> None:
    job = record_in(old)
    if (old, new) in LEGAL:
        job.transition(new)
        assert job.state == new
    else:
        with pytest.raises(IllegalTransition, match=f"job: illegal transition {old.value} -> {new.value}"):
            job.transition(new)
        assert job.state == old


def test_finished_states_never_move_and_the_table_covers_every_state() -> None:
    assert set(JOB_MOVES) == set(JobState)
    assert {s for s, moves in JOB_MOVES.items() if not moves} == FINISHED


def test_state_is_set_only_through_transition() -> None:
    job = record()
    with pytest.raises(AttributeError):
        job.state = JobState.DONE  # type: ignore[misc]
    assert job.state == JobState.QUEUED


def test_status_strings_are_unchanged() -> None:
    assert [s.value for s in JobState] == ["queued", "running", "finalizing", "done", "failed", "cancelled"]
    job = record_in(JobState.FINALIZING)
    assert json.loads(json.dumps(job.status()))["state"] == "finalizing"


def run_some(job: JobRecord, splits: int) -> SplitTable:
    """A table of ``splits`` where split 0 failed once and runs again, splits 1-2 are done, 3 runs."""
    now = [100.0]
    table = SplitTable(plan(splits * 10, 10, 1), 3, lambda: now[0], backups=False, wall=lambda: 5000.0)
    job.table = table
    first = table.next_for("m0")
    assert first is not None
    table.failed(0, first.attempt, "crash")
    for _ in range(3):
        ticket = table.next_for("m1")
        assert ticket is not None
        if ticket.split.index in (1, 2):
            table.succeeded(ticket.split.index, ticket.attempt, 10)
    assert table.next_for("m2") is not None
    return table


def test_status_summarises_splits_in_a_size_that_does_not_grow_with_them() -> None:
    sizes = []
    for splits in (50, 5000):
        job = record(splits * 10)
        run_some(job, splits)
        status = job.status()
        summary = status["splits"]
        assert summary["counts"] == {"total": splits, "pending": splits - 4, "running": 2, "done": 2, "failed": 1}
        assert [s["split"] for s in summary["failed"]] == [0]
        assert summary["failed"][0]["attempts"][0] == {
            "attempt": 1, "mapper": "m0", "state": "failed", "outcome": "failed", "backup": False, "cause": "crash",
            "bytes": 0, "started": 5000.0, "ended": 5000.0, "seconds": 0.0, "straggler": False,
        }
        assert [s["split"] for s in summary["running"]] == [0, 3]
        assert status["progress"]["splits_done"] == 2 and status["progress"]["splits_total"] == splits
        sizes.append(len(json.dumps(status)))
    assert sizes[1] - sizes[0] < 20  # 100 times the splits: only a few counts gain digits


def test_status_pages_every_split_in_table_order() -> None:
    job = record(500)
    run_some(job, 50)
    page = job.status(SplitQuery(SplitFilter.ALL, offset=45, limit=10))["splits"]
    assert [s["split"] for s in page["items"]] == [45, 46, 47, 48, 49]
    assert page["items"][0] == {"split": 45, "start": 450, "end": 460, "done": False, "attempts": []}
    assert (page["filter"], page["offset"], page["limit"], page["matching"]) == ("all", 45, 10, 50)
    running = job.status(SplitQuery(SplitFilter.RUNNING, offset=1, limit=5))["splits"]
    assert [s["split"] for s in running["items"]] == [3] and running["matching"] == 2
    failed = job.status(SplitQuery(SplitFilter.FAILED, offset=0, limit=0))["splits"]
    assert failed["items"] == [] and failed["matching"] == 1


def test_status_before_planning() -> None:
    job = record()
    assert job.status()["splits"] == {
        "counts": {"total": 0, "pending": 0, "running": 0, "done": 0, "failed": 0}, "failed": [], "running": [],
        "straggler_after": None,
    }
    assert job.status(SplitQuery(SplitFilter.ALL))["splits"]["items"] == []


@pytest.mark.parametrize(("state", "shown"), [(JobState.RUNNING, "receiving"), (JobState.FINALIZING, "finalizing"),
                                              (JobState.DONE, "reported"), (JobState.FAILED, "failed"),
                                              (JobState.CANCELLED, "cancelled")])
def test_partition_status_names_each_partitions_reducer_and_recoveries(state: JobState, shown: str) -> None:
    job = record()
    assert job.status()["partition_status"] == []  # not planned: no partitions yet
    job.partitions, job.reducers = 3, ["reducer-0", "reducer-1", "reducer-2"]
    job.recoveries = [{"round": 1, "partition": 2, "splits": 4}, {"round": 2, "partition": 2, "splits": 1},
                      {"round": 1, "partition": 0, "splits": 1}]
    for step in PATH[state]:
        job.transition(step)
    assert job.status()["partition_status"] == [
        {"partition": 0, "reducer": "reducer-0", "state": shown, "recoveries": 1},
        {"partition": 1, "reducer": "reducer-1", "state": shown, "recoveries": 0},
        {"partition": 2, "reducer": "reducer-2", "state": shown, "recoveries": 2},
    ]
    assert job.status()["partitions"] == 3  # the count stays what it was
