"""Outputs written to storage: part-NNNNN.jsonl per reducer (atomic renames), _SUCCESS last, a pointer as result."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.core.errors import BadRequest, Conflict, InputError
from actors.core.keyorder import json_key, key_order
from actors.core.partition import Key
from actors.inputs.outdir import SUCCESS, check_output_free, entry_lines, open_staging, resolve_output_dir, write_part
from actors.jobs import load_catalog
from actors.sequential import run_sequential, sequential_lines

from .conftest import ClusterFactory, HeldInputFactory
from .heldinput import HeldInput
from .support import make_text_file
from .test_cli import mapreduce
from .test_faults import (
    HELD_ENV,
    Client,
    client_of,
    fault_cluster,
    hold_reads_of,
    reader_of,
    wait_for_progress,
)

DEPTH = 32  # MR_MAX_OUTPUT_DEPTH's default
TEXT = "the quick brown fox\njumps over the lazy dog\nthe dog naïve 日本語 the\n" * 50

# A user job with int and tuple keys: its parts carry them typed (a number, an array), in natural key order.
USER_JOBS = '''
from actors.sdk import MapReduceJob


class LengthsByLetter(MapReduceJob):
    """(first letter, length) -> how many words; and length -> the distinct words of that length."""

    name = "lengths_by_letter"

    def mapper(self, line):
        for word in line.split():
            yield (word[0], len(word)), 1
            yield len(word), word

    def reducer(self, key, values):
        if isinstance(key, tuple):
            return sum(values)
        return sorted(set(values))
'''


def read_output(directory: Path, partitions: int) -> dict[str, Any]:
    """The output's entries (str keys), after checking its shape (see :func:`read_parts`)."""
    lines = [line for part in read_parts(directory, partitions) for line in part]
    assert all(isinstance(key, str) for key, _ in lines)
    return {key: value for key, value in lines}


def read_parts(directory: Path, partitions: int) -> list[list[list[Any]]]:
    """Each part's ``[key, value]`` lines (keys typed), after checking the output's shape: exactly one part per
    partition and one _SUCCESS, nothing else visible (no temporary file), each part in natural key order, no key
    in two parts, _SUCCESS written last and naming every part with its size and checksum."""
    names = sorted(os.listdir(directory))
    parts = [f"part-{p:05d}.jsonl" for p in range(partitions)]
    assert names == sorted([*parts, SUCCESS]), names
    success = json.loads((directory / SUCCESS).read_text())
    assert success["parts"] == parts
    seen: set[Key] = set()
    out: list[list[list[Any]]] = []
    for name in parts:
        raw = (directory / name).read_bytes()
        assert success["sha256"][name] == hashlib.sha256(raw).hexdigest()
        assert (directory / name).stat().st_mtime_ns <= (directory / SUCCESS).stat().st_mtime_ns
        lines = [json.loads(line) for line in raw.decode("utf-8").splitlines()]
        assert all(len(line) == 2 for line in lines)
        keys = [json_key(line[0]) for line in lines]
        assert keys == sorted(keys, key=key_order), f"{name} is not in natural key order"
        assert not set(keys) & seen, f"{name} repeats keys of another part"
        seen.update(keys)
        out.append(lines)
    assert success["keys"] == len(seen)
    return out


# --- the output directory module, without a cluster ------------------------------------------------------------


def test_a_part_is_written_sorted_and_only_under_its_final_name(tmp_path: Path) -> None:
    info = write_part(tmp_path, 3, "job.1.a", entry_lines({"b": 2, "a": [1, "x"], "日本": 3}))
    assert os.listdir(tmp_path) == ["part-00003.jsonl"]
    raw = (tmp_path / "part-00003.jsonl").read_bytes()
    assert raw.decode().splitlines() == ['["a",[1,"x"]]', '["b",2]', '["日本",3]']
    assert (info.name, info.bytes, info.keys, info.sha256) == (
        "part-00003.jsonl", len(raw), 3, hashlib.sha256(raw).hexdigest())


def test_a_failed_write_leaves_no_partial_file_and_keeps_the_whole_previous_part(tmp_path: Path) -> None:
    write_part(tmp_path, 0, "job.1.a", entry_lines({"a": 1}))

    def disk_full() -> Iterator[bytes]:
        yield b'["a",1]\n' * 100_000  # past one write block: the temporary file holds real bytes when it fails
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(BadRequest, match=r"cannot write output part part-00000\.jsonl: No space left on device"):
        write_part(tmp_path, 0, "job.1.b", disk_full())
    assert os.listdir(tmp_path) == ["part-00000.jsonl"]
    assert (tmp_path / "part-00000.jsonl").read_bytes() == b'["a",1]\n'


@pytest.mark.parametrize("relative", ["../out", "/tmp/out", "a/../../out", "", "a\x00b", ".", "out/.."])
def test_output_paths_are_confined_to_the_data_root(tmp_path: Path, relative: str) -> None:
    with pytest.raises(InputError):
        resolve_output_dir(str(tmp_path), relative, DEPTH)


def test_a_symlink_out_of_the_data_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(InputError, match="leaves the output root"):
        resolve_output_dir(str(root), "link/out", DEPTH)
    (root / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        resolve_output_dir(str(root), "file", DEPTH)
    with pytest.raises(InputError, match="MR_DATA_ROOT"):
        resolve_output_dir("", "out", DEPTH)


def test_a_directory_holding_another_jobs_output_is_refused(tmp_path: Path) -> None:
    check_output_free(tmp_path / "new" / "deep", "new/deep")  # need not exist: nothing is created by the check
    assert not (tmp_path / "new").exists()
    staging = open_staging(str(tmp_path), "new/deep", DEPTH, "job1", 7)  # at the job's start: parents too
    assert staging == (tmp_path / "new" / "deep" / ".staging-job1-7").resolve() and staging.is_dir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README").write_text("other files are left alone")
    check_output_free((tmp_path / "notes").resolve(), "notes")
    for taken in (SUCCESS, "part-00007.jsonl"):
        directory = tmp_path / f"taken-{taken}"
        directory.mkdir()
        (directory / taken).write_text("{}")
        refused = f"already holds a job's output \\({taken}\\)"
        with pytest.raises(Conflict, match=refused):
            check_output_free(directory, directory.name)
        with pytest.raises(Conflict, match=refused):
            open_staging(str(tmp_path), directory.name, DEPTH, "job1", 7)


# --- real actors on loopback ---------------------------------------------------------------------------------


async def test_wordcount_writes_sorted_parts_equal_to_the_oracle(make_cluster: ClusterFactory,
                                                                 data_root: Path) -> None:
    cluster = await make_cluster(mappers=2, reducers=3)
    (data_root / "book.txt").write_text(TEXT)
    job = await cluster.submit({"job": "wordcount", "input": {"path": "book.txt"}, "split_size": 600,
                                "output": {"path": "out/wc"}})
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "30"}) as response:
        body = await response.json()
    assert response.status == 200, body
    expected = run_sequential("wordcount", TEXT.encode(), "book.txt")
    assert read_output(data_root / "out" / "wc", 3) == expected
    assert "result" not in body
    assert body["keys"] == len(expected)
    assert body["output"]["path"] == "out/wc" and body["output"]["success"] == SUCCESS
    assert body["output"]["parts"] == [f"part-{p:05d}.jsonl" for p in range(3)]
    status = await cluster.status(job["id"])
    assert status["output"] == {"path": "out/wc", "written": True}
    success = json.loads((data_root / "out" / "wc" / SUCCESS).read_text())
    assert (success["job"], success["epoch"]) == (job["id"], status["epoch"])
    for query in ({"top": "3"}, {"format": "ndjson"}):  # the master never held the data: it cannot serve it
        async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params=query) as response:
            refusal = await response.json()
        assert response.status == 409 and "out/wc" in refusal["message"], refusal
    # The same directory again: it holds a job's output now.
    async with cluster.session.post(f"{cluster.url}/v1/jobs", json={"input": {"text": "a"},
                                                                      "output": {"path": "out/wc"}}) as response:
        refusal = await response.json()
    assert response.status == 409 and "already holds a job's output" in refusal["message"], refusal


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"outjobs_{uuid.uuid4().hex[:8]}"
    (tmp_path / "userpkg").mkdir()
    (tmp_path / "userpkg" / f"{name}.py").write_text(USER_JOBS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "userpkg"))
    yield name
    sys.modules.pop(name, None)
    load_catalog.cache_clear()


async def test_an_sdk_job_with_tuple_and_int_keys_writes_them_typed_in_natural_order(
    make_cluster: ClusterFactory, data_root: Path, user_module: str
) -> None:
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=(user_module,))
    (data_root / "book.txt").write_text(TEXT)
    job = await cluster.submit({"job": "lengths_by_letter", "input": {"path": "book.txt"}, "split_size": 700,
                                "output": {"path": "lengths"}})
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "30"}) as response:
        assert response.status == 200, await response.text()
    expected = sequential_lines("lengths_by_letter", [("book.txt", TEXT.encode())], modules=(user_module,))
    parts = read_parts(data_root / "lengths", 2)
    # Every part is a run of the natural order; merged, they are the oracle's lines exactly.
    merged = sorted((line for part in parts for line in part), key=lambda line: key_order(json_key(line[0])))
    assert merged == expected
    raw = b"".join((data_root / "lengths" / f"part-{p:05d}.jsonl").read_bytes() for p in range(2))
    assert f'[["t",3],{TEXT.split().count("the")}]'.encode() in raw
    assert '[5,["brown","jumps","naïve","quick"]]'.encode() in raw


@pytest.mark.parametrize(("output", "status", "message"), [
    ({"path": "../escape"}, 400, "without '..'"),
    ({"path": "/tmp/escape"}, 400, "relative to the output root"),
    ({"path": "link/out"}, 400, "leaves the output root"),
    ({"path": "book.txt"}, 400, "not a directory"),
    ({"path": "done"}, 409, "already holds a job's output"),
    ({"path": ""}, 400, "non-empty"),
    ("out", 400, '"output" must be {"path": DIR}'),
    ({"path": "out", "mode": "append"}, 400, '"output" must be {"path": DIR}'),
    ({"path": 7}, 400, '"output" must be {"path": DIR}'),
])
async def test_hostile_outputs_are_refused_before_the_job_starts(
    make_cluster: ClusterFactory, data_root: Path, tmp_path: Path, output: Any, status: int, message: str
) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    (data_root / "book.txt").write_text(TEXT)
    (tmp_path / "elsewhere").mkdir()
    (data_root / "link").symlink_to(tmp_path / "elsewhere")
    (data_root / "done").mkdir()
    (data_root / "done" / SUCCESS).write_text("{}")
    async with cluster.session.post(f"{cluster.url}/v1/jobs",
                                    json={"input": {"path": "book.txt"}, "output": output}) as response:
        body = await response.json()
    assert response.status == status, body
    assert message in body["message"], body
    async with cluster.session.get(f"{cluster.url}/v1/jobs") as response:
        assert (await response.json())["jobs"] == []
    assert os.listdir(tmp_path / "elsewhere") == []
    assert not (tmp_path / "escape").exists() and not Path("/tmp/escape").exists()


async def test_a_directory_a_running_job_writes_is_refused_and_a_failed_write_fails_the_job(
    make_cluster: ClusterFactory, data_root: Path, held_input: HeldInputFactory
) -> None:
    source = await held_input((TEXT * 10).encode())  # longer than the prefix a held read delivers
    cluster = await make_cluster(mappers=1, reducers=2, allow_private_urls=True)
    source.hold_all = True
    job = await cluster.submit({"input": {"url": source.url}, "output": {"path": "out"}})
    await source.held(1)  # the job is certainly running: its first read is held
    async with cluster.session.post(f"{cluster.url}/v1/jobs", json={"input": {"text": "a"},
                                                                      "output": {"path": "./out/"}}) as response:
        refusal = await response.json()
    assert response.status == 409 and f"output of job {job['id']}" in refusal["message"], refusal
    # The directory is taken away under the running job (its staging directory too): no part can be written.
    shutil.rmtree(data_root / "out")
    (data_root / "out").write_text("not a directory any more")
    source.release_all()
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "30"}) as response:
        body = await response.json()
    assert response.status == 409, body
    status = await cluster.status(job["id"])
    assert status["state"] == "failed" and "output path 'out' exists and is not a directory" in status["error"]
    assert status["output"] == {"path": "out", "written": False}
    assert sorted(os.listdir(data_root)) == ["out"]  # no part and no temporary file anywhere


# --- real processes: the command line, and faults -------------------------------------------------------------


def test_run_with_output_writes_the_directory_and_prints_where(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "book.txt").write_text(TEXT)
    done = mapreduce("run", str(tmp_path / "in" / "book.txt"), "--static", "--mappers", "1", "--reducers", "2",
                     "--output", str(tmp_path / "results" / "wc"))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "results" / "wc"
    assert read_output(out, 2) == run_sequential("wordcount", TEXT.encode(), "book.txt")
    assert done.stdout.startswith(f"{out}: 2 parts (part-00000.jsonl, part-00001.jsonl), ")
    assert done.stdout.rstrip().endswith("bytes, and _SUCCESS"), done.stdout
    again = mapreduce("run", str(tmp_path / "in" / "book.txt"), "--static", "--mappers", "1", "--reducers", "1",
                      "--output", str(out))
    assert again.returncode == 1 and "already holds a job's output" in again.stderr, again.stderr
    inside = mapreduce("run", str(tmp_path / "in" / "book.txt"), "--output", str(tmp_path))
    assert inside.returncode == 1 and "must not be a directory holding the input" in inside.stderr


async def submit_held_output(client: Client, source: HeldInput, output: str) -> tuple[str, list[dict[str, Any]]]:
    """Submit a word count of ``source`` into ``output``; answer its id and plan, read while its reads are held."""
    source.hold_all = True
    job = await client.submit({"input": {"url": source.url}, "output": {"path": output}})
    await source.held(1)
    splits = (await client.status(job["id"], splits=True))["splits"]
    assert len(splits) >= 20, len(splits)
    return str(job["id"]), splits


async def output_pointer(client: Client, job_id: str) -> dict[str, Any]:
    async with client.session.get(f"/v1/jobs/{job_id}/result", params={"wait": "90"}) as response:
        body = await response.json()
        assert response.status == 200, body
        return dict(body["output"])


async def test_killed_mappers_leave_an_exact_output(tmp_path: Path, held_input: HeldInputFactory) -> None:
    data = make_text_file(tmp_path / "book.txt", 4, seed=21)
    source = await held_input(data)
    async with fault_cluster(tmp_path, HELD_ENV) as cluster, client_of(cluster) as client:
        job_id, splits = await submit_held_output(client, source, "out")
        targets = [splits[5], splits[len(splits) // 2]]
        hold_reads_of(source, targets)
        source.release_all()
        for split in targets:
            read, victim, _ = await reader_of(client, source, job_id, split)
            cluster.signal(victim, signal.SIGKILL)  # mid-split: it has streamed some partitions, not all
            source.release(read)
            await cluster.restart(victim)
        assert (await output_pointer(client, job_id))["path"] == "out"
        assert read_output(tmp_path / "out", 2) == run_sequential("wordcount", data)
        status = await client.status(job_id)
        assert status["attempts"]["retries"] >= 2


async def test_a_reducer_killed_before_its_part_is_written_leaves_an_exact_output(
    tmp_path: Path, held_input: HeldInputFactory
) -> None:
    data = make_text_file(tmp_path / "book.txt", 4, seed=22)
    source = await held_input(data)
    async with fault_cluster(tmp_path, HELD_ENV) as cluster, client_of(cluster) as client:
        job_id, splits = await submit_held_output(client, source, "out")
        last = splits[-1]
        hold_reads_of(source, [last])
        source.release_all()
        read, _, _ = await reader_of(client, source, job_id, last)
        await wait_for_progress(client, job_id, len(splits) - 1)  # every other split is in: finalize is next
        cluster.signal("reducer-1", signal.SIGKILL)
        await cluster.restart("reducer-1")
        # What a reducer killed in the middle of writing leaves: a partial temporary file in the job's staging.
        epoch = (await client.status(job_id))["epoch"]
        staging = tmp_path / "out" / f".staging-{job_id}-{epoch}"
        (staging / f".part-00001.{job_id}.{epoch}.{'0' * 32}-0.tmp").write_text('["half a li')
        source.release(read)
        pointer = await output_pointer(client, job_id)
        assert pointer["parts"] == ["part-00000.jsonl", "part-00001.jsonl"]
        assert read_output(tmp_path / "out", 2) == run_sequential("wordcount", data)  # the leftover is gone
        status = await client.status(job_id)
        assert {r["partition"] for r in status["recoveries"]} == {1}


@pytest.fixture
def tiny_output_disk(data_root: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs the test mounts (as root) inside the data root; skipped where it cannot."""
    mount = data_root / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the full-disk test needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


async def test_a_full_disk_fails_the_job_by_name_and_leaves_no_partial_part(
    make_cluster: ClusterFactory, data_root: Path, tiny_output_disk: Path
) -> None:
    cluster = await make_cluster(mappers=1, reducers=2)
    (data_root / "many.txt").write_text("\n".join(f"word{i:07d}" for i in range(40_000)))  # ~700 KB of parts
    job = await cluster.submit({"input": {"path": "many.txt"}, "output": {"path": "tiny/out"}})
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "60"}) as response:
        assert response.status == 409
    status = await cluster.status(job["id"])
    assert status["state"] == "failed", status
    assert "cannot write output part part-0000" in status["error"], status["error"]
    assert "No space left on device" in status["error"], status["error"]
    assert os.listdir(tiny_output_disk / "out") == []  # neither a part nor a temporary file
