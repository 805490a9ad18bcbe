"""The master's output claims and a job's staged output: claimed once, committed or fenced, never both."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.core.config import Settings
from actors.core.errors import BadRequest, Conflict, JobFailed
from actors.inputs.outdir import SUCCESS, discard_staging, entry_lines, open_staging, staged_dir, write_part
from actors.inputs.ref import SERVED, InputRef
from actors.master.outputs import JobOutput, OutputClaims
from actors.master.record import JobRecord, JobState


def record(output: str = "out", job: str = "job1", epoch: int = 5) -> JobRecord:
    return JobRecord(id=job, epoch=epoch, job_name="wordcount", input=InputRef(SERVED, "x", "book.txt", 1),
                     created=0.0, split_size=1, output=output)


def test_a_directory_is_claimed_once_until_its_submission_is_refused_or_its_job_ends(tmp_path: Path) -> None:
    claims = OutputClaims()
    first = claims.take(tmp_path / "out", "out")
    with pytest.raises(Conflict, match=r"'\./out' is claimed by another submission being admitted"):
        claims.take(tmp_path / "out", "./out")
    first.release()
    second = claims.take(tmp_path / "out", "out")
    job = record()
    second.bind(job)
    second.release()  # bound: only the job's end lets it go
    with pytest.raises(Conflict, match="is the output of job job1, still queued"):
        claims.take(tmp_path / "out", "out")
    job.transition(JobState.CANCELLED)
    with pytest.raises(Conflict, match=r"still held by job job1 \(cancelled\) until its writers are fenced"):
        claims.take(tmp_path / "out", "out")
    claims.end(job)
    claims.take(tmp_path / "out", "out").release()
    assert claims.held == {} and claims.by_job == {}


def test_a_writer_whose_staging_directory_was_discarded_publishes_nothing(tmp_path: Path) -> None:
    staging = open_staging(str(tmp_path), "out", 32, "job1", 5)
    assert staged_dir(str(tmp_path), "out", 32, "job1", 5) == staging

    def fenced_midway() -> Iterator[bytes]:
        yield from entry_lines({"a": 1})
        discard_staging(staging)  # the job is cancelled while this writer's temporary file is open

    with pytest.raises(BadRequest, match=r"cannot write output part part-00000\.jsonl: No such file or directory"):
        write_part(staging, 0, "job1.5.x-0", fenced_midway())
    assert os.listdir(tmp_path / "out") == []
    with pytest.raises(Conflict, match="its staging directory is gone"):
        staged_dir(str(tmp_path), "out", 32, "job1", 5)  # a later writer is refused before it writes


@pytest.mark.parametrize("job", ["../x", "a/b", "", "x" * 65])
def test_a_job_id_that_cannot_name_a_directory_is_refused(tmp_path: Path, job: str) -> None:
    with pytest.raises(BadRequest, match="cannot name a staging directory"):
        staged_dir(str(tmp_path), "out", 32, job, 5)


async def test_commit_and_fence_exclude_each_other(tmp_path: Path) -> None:
    settings = Settings(data_root=str(tmp_path))
    committed = JobOutput(record(), settings)
    await committed.open()
    assert committed.staging is not None
    part = write_part(committed.staging, 0, "t", entry_lines({"a": 1}))
    doc = await committed.commit([part])
    await committed.fence()  # after a commit: nothing to fence, the output stays
    assert sorted(os.listdir(tmp_path / "out")) == [SUCCESS, "part-00000.jsonl"] and doc["keys"] == 1

    released: list[bool] = []
    fenced = JobOutput(record("other"), settings, lambda: released.append(True))
    await fenced.open()
    assert fenced.staging is not None
    part = write_part(fenced.staging, 0, "t", entry_lines({"a": 1}))
    await fenced.fence()
    assert released == [True] and os.listdir(tmp_path / "other") == []
    with pytest.raises(JobFailed, match="fenced before its output was committed"):
        await fenced.commit([part])
    with pytest.raises(JobFailed, match="ended before its output directory was opened"):
        await fenced.open()
