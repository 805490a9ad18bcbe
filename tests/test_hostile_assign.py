"""A mapper given an assignment no master makes (a peer with the token lying about the job's shape): a 400 before any
work, never a broken answer stream, an exhausted memory or another job's intermediate files read as this one's."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from actors.core import wire
from actors.core.messages import Assignment, SplitDone, from_wire, to_wire
from actors.inputs.ref import PATH, WORK

from .conftest import TOKEN, ClusterFactory

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/cbor"}
CAP = 8  # MR_MAX_PARTITIONS of this cluster
BASE = Assignment(job="j1", epoch=1, split=0, attempt=1, job_name="wordcount", input_kind=PATH,
                  input_location="in.txt", input_name="in", start=0, end=12, partitions=2, only_partitions=[])
OWN = "j1.1/step-0/part-00000.jsonl"  # j1's own step-0 file: what step 1 may read


@pytest.mark.parametrize(("lie", "named"), [
    ({"partitions": 0}, "MR_MAX_PARTITIONS"),  # was: a ZeroDivisionError after the stream began, a cut answer
    ({"partitions": CAP + 1}, "MR_MAX_PARTITIONS"),  # 10**9 of them made 10**9 spools: the mapper was OOM-killed
    ({"only_partitions": [2]}, "out of range"),  # was: an IndexError mid-stream
    ({"partitions": 3, "cuts": ["b", "a"]}, "ascending"),  # was: a retriable SplitFailed, retried MR_MAX_ATTEMPTS times
    ({"input_kind": WORK, "input_location": "other.1/step-0/part-00000.jsonl", "step": 1}, "not a file of job j1"),
    ({"input_kind": WORK, "input_location": "j1.1/step-1/part-00000.jsonl", "step": 1}, "step 0"),
    ({"input_kind": WORK, "input_location": "j1.1/step-0/../../other.1/step-0/part-00000.jsonl", "step": 1},
     "not a file of job j1"),
    ({"input_kind": WORK, "input_location": OWN, "step": 0}, "not a file of job j1"),
])
async def test_a_lying_assignment_is_a_400(make_cluster: ClusterFactory, data_root: Path, tmp_path: Path,
                                           lie: dict[str, Any], named: str) -> None:
    (data_root / "in.txt").write_text("a b c\nd e f\n")
    work = tmp_path / "work"
    for job in ("j1", "other"):
        (work / f"{job}.1" / "step-0").mkdir(parents=True)
        (work / f"{job}.1" / "step-0" / "part-00000.jsonl").write_text('["x",1]\n')
    cluster = await make_cluster(mappers=1, reducers=2, work_dir=str(work), max_partitions=CAP)
    body = wire.encode(to_wire(dataclasses.replace(BASE, **lie)))
    async with cluster.session.post(cluster.mappers[0].url + "/internal/v1/assign", data=body,
                                    headers=AUTH) as response:
        answer = await response.json(content_type=None)
        assert response.status == 400, answer
    assert named in answer["message"]
    # The honest assignment of a later step still reads its own job's file.
    honest = dataclasses.replace(BASE, input_kind=WORK, input_location=OWN, step=1, end=8)
    async with cluster.session.post(cluster.mappers[0].url + "/internal/v1/assign",
                                    data=wire.encode(to_wire(honest)), headers=AUTH) as response:
        assert response.status == 200
        data = await response.read()
    length = wire.frame_length(data[:wire.PREFIX], 1 << 20)
    done = from_wire(wire.decode(data[wire.PREFIX:wire.PREFIX + length], 1 << 20), SplitDone)
    assert done.bytes_read == 8
