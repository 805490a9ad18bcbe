"""A job that fails deterministically shows its failed split and the cause: in the status, its failed page and
`mapreduce status` (the page: tests/test_page.py). Before, the split stayed "running" with no cause anywhere."""

from __future__ import annotations

import gzip
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.jobs.catalog import load_catalog
from actors.remote.failures import failure_lines

from .conftest import Cluster, ClusterFactory
from .test_remote import mapreduce

RAISING_JOB = '''
from actors.sdk import MapReduceJob


class RaisesOnBoom(MapReduceJob):
    """Counts words; a line holding "boom" is a bug in the job."""

    name = "raises_on_boom"

    def mapper(self, line):
        if "boom" in line:
            raise ValueError("cannot count a boom")
        for word in line.split():
            yield word, 1

    def reducer(self, key, values):
        return sum(values)
'''


@pytest.fixture
def raising_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The job module, importable here and by any process this test starts (PYTHONPATH)."""
    name = f"raising_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "jobs"
    root.mkdir()
    (root / f"{name}.py").write_text(RAISING_JOB, encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    yield name
    sys.modules.pop(name, None)
    load_catalog.cache_clear()


async def finished_status(cluster: Cluster, job_id: str) -> dict[str, Any]:
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job_id}/result", params={"wait": "30"}) as response:
        await response.read()  # a 409 once the job has failed: the wait is what we want
    return await cluster.status(job_id)


async def failed_page(cluster: Cluster, job_id: str) -> dict[str, Any]:
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job_id}", params={"splits": "failed"}) as response:
        assert response.status == 200
        return dict((await response.json())["splits"])


async def submit_truncated_gzip(cluster: Cluster) -> str:
    packed = gzip.compress(os.urandom(20_000))  # incompressible: half the stream is half the data
    job = await cluster.submit(data=packed[: len(packed) // 2], headers={"Content-Type": "application/octet-stream"},
                               params={"name": "cut.gz"})
    return str(job["id"])


async def submit_raising(cluster: Cluster) -> str:
    lines = [f"line {i} of words" for i in range(400)]
    lines[250] = "this line goes boom"
    job = await cluster.submit({"job": "raises_on_boom", "input": {"text": "\n".join(lines) + "\n"},
                                "split_size": 1024})
    return str(job["id"])


def check_failed_split(split: dict[str, Any], cause: str) -> None:
    """One failed split, its one attempt ended as failed with ``cause``, timed and counted."""
    (attempt,) = split["attempts"]
    assert attempt["state"] == "failed" and attempt["outcome"] == "failed", attempt
    assert cause in attempt["cause"], attempt
    assert attempt["ended"] is not None and attempt["ended"] >= attempt["started"] > 0
    assert attempt["seconds"] >= 0 and isinstance(attempt["bytes"], int) and attempt["mapper"].startswith("mapper-")


@pytest.mark.parametrize("case", ["truncated-gzip", "raising-mapper"])
async def test_a_deterministic_failure_is_counted_failed_with_its_cause_everywhere(
        make_cluster: ClusterFactory, raising_module: str, case: str) -> None:
    if case == "truncated-gzip":
        cluster = await make_cluster(mappers=1, reducers=1)
        job_id, cause = await submit_truncated_gzip(cluster), "gzip input 'cut.gz' is truncated"
    else:
        cluster = await make_cluster(mappers=2, reducers=1, job_modules=(raising_module,))
        job_id, cause = await submit_raising(cluster), "cannot count a boom"
    status = await finished_status(cluster, job_id)
    assert status["state"] == "failed" and cause in status["error"], status
    counts = status["splits"]["counts"]
    assert counts["failed"] == 1 and counts["running"] == 0, counts
    assert cause in status["attempts"]["last_failure"], status["attempts"]
    (listed,) = status["splits"]["failed"]
    check_failed_split(listed, cause)

    page = await failed_page(cluster, job_id)
    assert page["matching"] == 1 and [s["split"] for s in page["items"]] == [listed["split"]]
    check_failed_split(page["items"][0], cause)

    shown = await mapreduce("status", job_id, "--url", cluster.url)
    assert shown.code == 0, shown.err
    assert "1 failed" in shown.out and "0 running" in shown.out, shown.out
    failed_line = next(line for line in shown.out.splitlines() if line.startswith(f"  split {listed['split']}:"))
    assert cause in failed_line and "(failed)" in failed_line, shown.out


@pytest.mark.parametrize("raw", [{}, {"splits": None}, {"splits": {"counts": 3}}, {"splits": {"counts": {},
                                 "failed": "x"}}, {"splits": {"counts": {"failed": 1}, "failed": [{"attempts": 5}]}}])
def test_failure_lines_take_any_shape_a_master_answers(raw: dict[str, Any]) -> None:
    lines = failure_lines(raw)
    assert all(isinstance(line, str) and "\n" not in line for line in lines)


def test_failure_lines_name_each_failed_split_and_say_how_many_are_left_out() -> None:
    attempt = {"attempt": 2, "mapper": "mapper-1", "state": "failed", "outcome": "lease_expired",
               "cause": "no word\nfor 30 s"}
    raw = {"splits": {"counts": {"done": 5, "running": 1, "pending": 0, "failed": 3},
                      "failed": [{"split": 4, "attempts": [{**attempt, "attempt": 1, "cause": "first"}, attempt]}]}}
    assert failure_lines(raw) == [
        "splits: 5 done, 1 running, 0 pending, 3 failed",
        "  split 4: 2 failed, last on mapper-1 (lease_expired): no word\\x0afor 30 s",
        "  ... and 2 more: the status's ?splits=failed lists them all",
    ]
