"""s3:// outputs against a real S3-compatible server: the same layout as a directory (part-NNNNN.jsonl, then
_SUCCESS last), each part published by the master from the attempt it chose; killed, late and fenced attempts leave
nothing a reader takes for output; a failed or cancelled job never writes _SUCCESS; one prefix, one job."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.api.aio import AsyncClient
from actors.core.config import Settings
from actors.core.errors import BadRequest, InputError, JobFailed, MapReduceError
from actors.inputs.given import input_spec
from actors.inputs.outdir import SUCCESS, PartInfo, entry_lines
from actors.inputs.s3inputs import s3_inputs
from actors.inputs.s3out import attempt_key, output_uri, write_part
from actors.master.outputs import JobOutput
from actors.sequential import run_sequential_inputs
from tests.conftest import ClusterFactory
from tests.s3server import S3Server
from tests.test_inputs import document, submit_error
from tests.test_outputs import record

BUCKET = "results"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3out")) as server, pytest.MonkeyPatch.context() as patch:
        for name, value in server.environment().items():
            patch.setenv(name, value)
        server.put(BUCKET, "seed", b"")  # makes the bucket
        yield server


def settings(s3: S3Server) -> Settings:
    return Settings(s3_endpoint=s3.endpoint)


def read_output(s3: S3Server, prefix: str, bucket: str = BUCKET) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a reader that waits for _SUCCESS sees: the manifest, and the entries of the parts it names, each
    checked against the manifest's SHA-256."""
    manifest = json.loads(s3.get(bucket, f"{prefix}{SUCCESS}"))
    entries: dict[str, Any] = {}
    for name in manifest["parts"]:
        data = s3.get(bucket, prefix + name)
        assert hashlib.sha256(data).hexdigest() == manifest["sha256"][name]
        for line in data.splitlines():
            key, value = json.loads(line)
            assert key not in entries  # each key in exactly one part, once
            entries[key] = value
    return manifest, entries


async def test_wordcount_to_a_prefix_reads_back_equal_to_the_oracle(s3: S3Server,
                                                                    make_cluster: ClusterFactory) -> None:
    texts = {f"in/wc/{i}.txt": document(i, 200 + 50 * i) for i in range(4)}
    for key, data in texts.items():
        s3.put(BUCKET, key, data)
    cluster = await make_cluster(mappers=2, reducers=3, s3_endpoint=s3.endpoint)
    job = await cluster.submit({"job": "wordcount", "input": {"uris": [f"s3://{BUCKET}/in/wc/"]},
                                "output": {"path": f"s3://{BUCKET}/out/wc"}, "split_size": 4096})
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "30"}) as response:
        pointer = await response.json()
        assert response.status == 200, pointer
    manifest, entries = read_output(s3, "out/wc/")
    assert entries == run_sequential_inputs("wordcount", sorted(texts.items()))
    assert manifest["parts"] == [f"part-{p:05d}.jsonl" for p in range(3)] and manifest["job"] == job["id"]
    # Exactly the directory layout: no attempt object is left behind, and the output reads as an input again.
    assert sorted(s3.keys(BUCKET, "out/wc/")) == [f"out/wc/{SUCCESS}",
                                                  *(f"out/wc/part-{p:05d}.jsonl" for p in range(3))]
    again = await s3_inputs(settings(s3), [f"s3://{BUCKET}/out/wc/"], 10)
    assert sorted(r.name for r in again) == [f"out/wc/part-{p:05d}.jsonl" for p in range(3)]
    # The prefix now holds a job's output: another job is refused it, as a directory would be.
    status, body = await submit_error(cluster, {"job": "wordcount", "input": {"text": "a"},
                                                "output": {"path": f"s3://{BUCKET}/out/wc/"}})
    assert status == 409 and "already holds a job's output" in body["message"], body


async def test_two_jobs_racing_for_one_prefix_one_is_refused(s3: S3Server, make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, s3_endpoint=s3.endpoint)
    spec = {"job": "wordcount", "input": {"text": "to be or not to be\n"}, "output": {"path": f"s3://{BUCKET}/race/"}}
    answers = await asyncio.gather(submit_error(cluster, spec), submit_error(cluster, spec))
    assert sorted(status for status, _ in answers) == [202, 409], answers


async def test_a_killed_or_superseded_attempt_is_never_published(s3: S3Server) -> None:
    s = settings(s3)
    output = f"s3://{BUCKET}/killed/"
    job = JobOutput(record(output, "jobk", 3), s)
    await job.open()
    # Two attempts of partition 0: one by an incarnation whose report never came (killed after its PUT), one chosen.
    await write_part(s, output, "jobk", 3, 0, "deadbeef", entry_lines({"stale": 1}))
    chosen = await write_part(s, output, "jobk", 3, 0, "cafe01", entry_lines({"a": 2, "b": 1}))
    with pytest.raises(InputError, match="matches no object"):
        await s3_inputs(s, [output], 10)  # before the commit, a reader sees nothing: attempts are hidden
    doc = await job.commit([chosen], {chosen.name: "cafe01"})
    assert doc["parts"] == ["part-00000.jsonl"] and doc["keys"] == 2
    assert sorted(s3.keys(BUCKET, "killed/")) == ["killed/_SUCCESS", "killed/part-00000.jsonl"]
    assert s3.get(BUCKET, "killed/part-00000.jsonl") == b'["a",2]\n["b",1]\n'
    await job.fence()  # after a commit, nothing to fence: the output stays
    assert sorted(s3.keys(BUCKET, "killed/")) == ["killed/_SUCCESS", "killed/part-00000.jsonl"]


async def test_a_cancelled_job_leaves_nothing_and_a_late_writer_publishes_nothing(s3: S3Server) -> None:
    s = settings(s3)
    output = f"s3://{BUCKET}/cancelled/"
    released: list[bool] = []
    job = JobOutput(record(output, "jobc", 1), s, lambda: released.append(True))
    await job.open()
    parts = [await write_part(s, output, "jobc", 1, p, "feed", entry_lines({f"k{p}": p})) for p in range(2)]
    await job.fence()  # cancelled while its parts were uploaded
    assert released == [True] and s3.keys(BUCKET, "cancelled/") == []
    # A reducer that had not heard yet writes its attempt after the fence: hidden, and never copied.
    late = await write_part(s, output, "jobc", 1, 0, "feed2", entry_lines({"late": 1}))
    with pytest.raises(JobFailed, match="fenced before its output was committed"):
        await job.commit([late], {late.name: "feed2"})
    with pytest.raises(InputError, match="matches no object"):
        await s3_inputs(s, [output], 10)
    left = s3.keys(BUCKET, "cancelled/")
    assert left == ["cancelled/_attempts/jobc-1/part-00000-feed2.jsonl"]  # only the late writer's hidden object
    assert [p.name for p in parts] == ["part-00000.jsonl", "part-00001.jsonl"]


async def test_a_failed_commit_never_writes_success_and_removes_what_it_copied(s3: S3Server) -> None:
    s = settings(s3)
    output = f"s3://{BUCKET}/failed/"
    job = JobOutput(record(output, "jobf", 2), s)
    await job.open()
    good = await write_part(s, output, "jobf", 2, 0, "aa", entry_lines({"a": 1}))
    written = await write_part(s, output, "jobf", 2, 1, "bb", entry_lines({"b": 1}))
    lying = PartInfo(written.name, written.bytes + 5, written.keys, written.sha256)  # a reducer that lies
    with pytest.raises(JobFailed, match=r"part-00001.jsonl is \d+ bytes, not the \d+ its reducer reported"):
        await job.commit([good, lying], {good.name: "aa", lying.name: "bb"})
    await job.fence()  # the job failed: its copied part-00000 and its attempts go
    assert s3.keys(BUCKET, "failed/") == []


def test_an_output_prefix_is_plain_and_attempt_keys_are_confined() -> None:
    assert str(output_uri("s3://bkt/a/b")) == "s3://bkt/a/b/"
    for bad in ("s3://bkt/", "s3://bkt", "s3://bkt/_hidden/", "s3://bkt/a//b/", "s3://bkt/logs/*/"):
        with pytest.raises(InputError, match="must be s3://bucket/prefix/"):
            output_uri(bad)
    uri = output_uri("s3://bkt/out/")
    assert attempt_key(uri, "job1", 2, 7, "abc") == "out/_attempts/job1-2/part-00007-abc.jsonl"
    with pytest.raises(BadRequest, match="cannot name an attempt object"):
        attempt_key(uri, "../x", 2, 7, "abc")


def test_mapreduce_run_reads_and_writes_s3_through_a_local_cluster(s3: S3Server, tmp_path: Path) -> None:
    """The README's local demo: `mapreduce run s3://... --output s3://...` with AWS_ENDPOINT_URL in the environment,
    the actors (processes of their own) inheriting it."""
    texts = {f"cli/in/{i}.txt": document(30 + i, 300) for i in range(3)}
    for key, data in texts.items():
        s3.put(BUCKET, key, data)
    env = {**os.environ, **s3.environment(), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-m", "actors", "run", f"s3://{BUCKET}/cli/in/*.txt", "--static",
                           "--output", f"s3://{BUCKET}/cli/out/"], env=env, capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    assert f"s3://{BUCKET}/cli/out/: 2 parts" in done.stdout and "from 1 s3:// inputs" in done.stderr
    _, entries = read_output(s3, "cli/out/")
    assert entries == run_sequential_inputs("wordcount", sorted(texts.items()))
    with pytest.raises(MapReduceError, match="not both"):
        input_spec([f"s3://{BUCKET}/cli/in/", str(tmp_path)])


async def test_the_python_client_reads_s3_and_writes_s3(s3: S3Server, make_cluster: ClusterFactory) -> None:
    texts = {f"client/in/{i}.txt": document(40 + i, 100) for i in range(2)}
    for key, data in texts.items():
        s3.put(BUCKET, key, data)
    cluster = await make_cluster(mappers=1, reducers=2, s3_endpoint=s3.endpoint)
    async with AsyncClient(cluster.url, "x") as client:
        handle = await client.submit("wordcount", [{"url": f"s3://{BUCKET}/client/in/0.txt"},
                                                   {"url": f"s3://{BUCKET}/client/in/1.txt"}],
                                     output={"path": f"s3://{BUCKET}/client/out/"})
        assert (await handle.wait(60)).state == "done"
        written = await handle.output()
        assert written["path"] == f"s3://{BUCKET}/client/out/"
        assert written["parts"] == ["part-00000.jsonl", "part-00001.jsonl"]
    assert read_output(s3, "client/out/")[1] == run_sequential_inputs("wordcount", sorted(texts.items()))


async def test_a_job_cancelled_while_its_parts_upload_leaves_no_output(s3: S3Server,
                                                                      make_cluster: ClusterFactory) -> None:
    """Whenever the cancel lands (mapping, reducers writing their attempts, the master copying), the prefix ends
    with no _SUCCESS and no part: the fence deletes what was written and copied."""
    s3.put(BUCKET, "cancel/in/big.txt", document(50, 20000))  # ~1 MB: many splits, time to cancel mid-job
    cluster = await make_cluster(mappers=2, reducers=3, s3_endpoint=s3.endpoint)
    states = []
    for delay in (0.0, 0.2, 0.5):
        prefix = f"cancel/out{int(delay * 10)}/"
        job = await cluster.submit({"job": "wordcount", "input": {"uris": [f"s3://{BUCKET}/cancel/in/"]},
                                    "output": {"path": f"s3://{BUCKET}/{prefix}"}, "split_size": 4096})
        await asyncio.sleep(delay)  # a moment into the job, not a condition: any point of it must be safe
        async with cluster.session.delete(f"{cluster.url}/v1/jobs/{job['id']}") as response:
            await response.read()
        async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "30"}):
            pass
        state = (await cluster.status(job["id"]))["state"]
        states.append(state)
        left = s3.keys(BUCKET, prefix)
        if state == "done":  # it finished before the cancel: then it is whole
            assert read_output(s3, prefix)[0]["job"] == job["id"]
        else:
            # Nothing a reader takes for output; at most a late writer's hidden attempt (its PUT was in flight
            # when the fence listed the attempts).
            assert state == "cancelled" and all(k.startswith(f"{prefix}_attempts/") for k in left), (state, left)
    assert "cancelled" in states, states
