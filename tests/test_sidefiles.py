"""Side files (a job's read-only files in every task's working directory, pinned at submit) and whole-file input
(``mapper_raw``: one split per input file), on real local clusters against the sequential oracle."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import random
import re
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.core.errors import InputError, PayloadTooLarge, WireError
from actors.jobs import load_catalog
from actors.jobs.sidefiles import FilePin, locate, materialize, pin_files
from actors.sequential import run_sequential, run_sequential_inputs, run_sequential_output
from actors.tasks import protocol
from actors.tasks.protocol import JobSpec, MapRaw, MapStart, ReduceRuns, TaskPlace

from .conftest import FAST, Cluster, ClusterFactory, HeldInputFactory

JOBS = '''
import hashlib
import time

from actors.sdk import MapReduceJob, Step


class StopWords(MapReduceJob):
    """Word count without the words of a stop list, each count times a weight: both side files under the data root."""
    name = "stop_root"
    files = {"stop_words.txt": "lists/stop_words.txt", "weight.txt": "lists/weight.txt"}

    def stop_words(self):
        if not hasattr(self, "stop"):
            with open("stop_words.txt", encoding="utf-8") as file:  # the task's working directory holds it
                self.stop = set(file.read().split())
        return self.stop

    def mapper(self, line):
        stop = self.stop_words()
        for word in line.split():
            if word.lower() not in stop:
                yield word, 1

    def reducer(self, key, values):
        with open(self.file_path("weight.txt"), encoding="utf-8") as file:
            return sum(values) * int(file.read())


class Shipped(StopWords):
    """The same, with its side files shipped next to its module (one in a subdirectory)."""
    name = "stop_shipped"
    files = {"stop_words.txt": "package:stop_words.txt", "weight.txt": "package:data/weight.txt"}


class Missing(StopWords):
    name = "stop_missing"
    files = {"stop_words.txt": "lists/no_such_list.txt", "weight.txt": "lists/weight.txt"}


class Dots(StopWords):
    name = "stop_dots"
    files = {"stop_words.txt": "../outside.txt", "weight.txt": "lists/weight.txt"}


class Linked(StopWords):
    name = "stop_linked"
    files = {"stop_words.txt": "lists/link.txt", "weight.txt": "lists/weight.txt"}


class PackageDots(StopWords):
    name = "stop_package_dots"
    files = {"stop_words.txt": "package:../outside.txt", "weight.txt": "lists/weight.txt"}


class WholeFiles(MapReduceJob):
    """Per input file: its size and digest, as mapper_raw reads it whole; and the total size."""
    name = "whole_files"

    def mapper_raw(self, path, name):
        with open(path, "rb") as file:
            data = file.read()
        yield name, [len(data), hashlib.blake2b(data, digest_size=8).hexdigest(), self.input_name]
        yield "total", [len(data), "", ""]
        for line in data.split(b"\\n"):
            if line.startswith(b"#"):
                yield "comment", [1, "", ""]

    def reducer(self, key, values):
        if key in ("total", "comment"):
            return sum(value[0] for value in values)
        return values[0]


class RawSteps(MapReduceJob):
    """Two steps, the first mapping whole files (Step.mapper_raw): per file its line count and each word's count,
    then (step 2) per count the words that have it, and each file's lines."""
    name = "raw_steps"

    def whole(self, path, name):
        with open(path, "rb") as file:
            text = file.read().decode("utf-8")
        yield ("lines", name), text.count("\\n")  # only a whole file's count: a split's would be less
        for word in text.split():
            yield ("word", word.lower()), 1

    def total(self, key, values):
        yield key, sum(values)

    def invert(self, key, value):
        yield (key[0], value if key[0] == "word" else key[1]), key[1] if key[0] == "word" else value

    def gather(self, key, values):
        yield key, sorted(values) if key[0] == "word" else sum(values)

    def steps(self):
        return [Step(mapper_raw=self.whole, reducer=self.total), Step(mapper=self.invert, reducer=self.gather)]


class LateRaw(RawSteps):
    """A later step's mapper_raw: refused at submit."""
    name = "late_raw"

    def steps(self):
        return [Step(mapper=lambda line: [(line, 1)], reducer=self.total), Step(mapper_raw=self.whole)]


class SlowWhole(MapReduceJob):
    """A whole-file mapper that yields a pair every 10 ms: 3 s for 300 pairs."""
    name = "slow_whole"
    reducer = MapReduceJob.SUM

    def mapper_raw(self, path, name):
        for number in range(300):
            time.sleep(0.01)
            yield number % 7, 1
'''

STOP_WORDS = "the and of a\n"
TEXT = "\n".join(["The cat and the hat", "of mice and men", "a tale of two cities", "", "The end"] * 40)


@pytest.fixture
def job_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The jobs above in a module on sys.path (task workers get the actor's path), its shipped files beside it."""
    name = f"sidejobs_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "sidepkg"
    (root / "data").mkdir(parents=True)
    (root / f"{name}.py").write_text(JOBS, encoding="utf-8")
    (root / "stop_words.txt").write_text("cat hat tale\n", encoding="utf-8")
    (root / "data" / "weight.txt").write_text("3", encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
    yield name
    sys.modules.pop(name, None)
    load_catalog.cache_clear()


@pytest.fixture
def lists(data_root: Path) -> Path:
    """The side files under the data root, a secret beside the root and a symlink to it inside."""
    folder = data_root / "lists"
    folder.mkdir()
    (folder / "stop_words.txt").write_text(STOP_WORDS, encoding="utf-8")
    (folder / "weight.txt").write_text("2", encoding="utf-8")
    (data_root.parent / "outside.txt").write_text("secret\n", encoding="utf-8")
    (folder / "link.txt").symlink_to(data_root.parent / "outside.txt")
    return folder


async def submit(cluster: Cluster, spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with cluster.session.post(f"{cluster.url}/v1/jobs", json=spec, headers=cluster.auth) as response:
        return response.status, dict(await response.json())


async def finished(cluster: Cluster, job_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job's status once it ended, and its result (empty unless done)."""
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job_id}/result", params={"wait": "60"},
                                   headers=cluster.auth) as response:
        answer = await response.json()
    status = await cluster.status(job_id)
    return status, dict(answer.get("result") or {}) if response.status == 200 else {}


def task_dirs(spool: Path) -> list[Path]:
    return sorted(spool.glob("task-*"))


# ---------------------------------------------------------------------------------------------------------------
# side files: found, pinned, copied (unit)


def test_a_pin_taken_at_submit_refuses_a_file_changed_since(job_module: str, lists: Path, data_root: Path,
                                                            tmp_path: Path) -> None:
    cls = load_catalog((job_module,)).classes["stop_root"]
    pins = pin_files(cls, str(data_root), 1 << 20)
    assert FilePin.decode(pins["stop_words.txt"]).size == len(STOP_WORDS)
    first = tmp_path / "first"
    first.mkdir()
    materialize(cls, pins, str(data_root), str(first))
    assert (first / "stop_words.txt").read_text() == STOP_WORDS
    assert not os.access(first / "stop_words.txt", os.W_OK) or os.geteuid() == 0  # read-only (root writes anyway)
    (lists / "stop_words.txt").write_text(STOP_WORDS.replace("the", "tha"), encoding="utf-8")  # same size
    second = tmp_path / "second"
    second.mkdir()
    with pytest.raises(InputError, match=r"side file 'stop_words\.txt' .* changed since the job was submitted"):
        materialize(cls, pins, str(data_root), str(second))


def test_side_files_are_confined_and_capped(job_module: str, lists: Path, data_root: Path) -> None:
    catalog = load_catalog((job_module,))
    for job, cause in [("stop_missing", "is missing"), ("stop_dots", "without '..'"),
                       ("stop_linked", "leaves the data root"),
                       ("stop_package_dots", "relative to the job's module directory, without '..'")]:
        with pytest.raises(InputError, match=re.escape(cause)):
            pin_files(catalog.classes[job], str(data_root), 1 << 20)
    with pytest.raises(InputError, match="no data root is configured"):
        locate(catalog.classes["stop_root"], "weight.txt", "lists/weight.txt", "")
    with pytest.raises(PayloadTooLarge, match="MR_MAX_SIDE_FILES"):
        pin_files(catalog.classes["stop_root"], str(data_root), len(STOP_WORDS))


def test_the_oracle_runs_a_job_among_its_side_files(job_module: str, lists: Path, data_root: Path) -> None:
    result = run_sequential("stop_root", TEXT.encode(), modules=(job_module,), data_root=str(data_root))
    # 40 copies of the lines, each count times the weight 2; "The" is "the" to the stop list.
    assert result == {"cat": 80, "hat": 80, "mice": 80, "men": 80, "tale": 80, "two": 80, "cities": 80, "end": 80}
    shipped = run_sequential("stop_shipped", TEXT.encode(), modules=(job_module,))
    assert shipped["The"] == 80 * 3 and "cat" not in shipped and shipped["of"] == 80 * 3


def test_a_task_place_travels_to_the_worker_strictly() -> None:
    spec = JobSpec("stop_root", "mod", "StopWords", {})
    place = TaskPlace("/spool/task-1/files", "/data", {"stop_words.txt": "13:" + "0" * 32})
    start = MapStart(spec, "input", 2, 10, 1024, 16, 64, 8, 120, 256, 0, place=place)
    for message in (start, MapRaw("/spool/task-1/input/a.bin"), ReduceRuns(spec, ["/r"], 4, 120, 256, place=place)):
        encoded = protocol.encode(message)
        assert protocol.decode(encoded[protocol.PREFIX:], 1 << 20) == message
    bad = dataclasses.replace(start, place=TaskPlace("/w", "/data", {"x": 1}))  # type: ignore[dict-item]
    with pytest.raises(WireError, match="malformed place"):
        protocol.decode(protocol.encode(bad)[protocol.PREFIX:], 1 << 20)
    with pytest.raises(WireError, match="SIZE:DIGEST"):
        FilePin.decode("13:nothex")


# ---------------------------------------------------------------------------------------------------------------
# side files on a cluster


@pytest.mark.parametrize("job", ["stop_root", "stop_shipped"])
async def test_every_task_reads_the_side_files(make_cluster: ClusterFactory, job_module: str, lists: Path,
                                               data_root: Path, tmp_path: Path, job: str) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=(job_module,), spool_dir=str(spool))
    status, body = await submit(cluster, {"job": job, "input": {"text": TEXT}, "split_size": 1024})
    assert status == 202, body
    state, result = await finished(cluster, body["id"])
    assert state["state"] == "done", state
    assert state["progress"]["splits_total"] > 2
    assert result == run_sequential(job, TEXT.encode(), modules=(job_module,), data_root=str(data_root))
    assert task_dirs(spool) == []  # every attempt's directory went with it


@pytest.mark.parametrize(("job", "named"), [
    ("stop_missing", "side file 'stop_words.txt' ('lists/no_such_list.txt') is missing"),
    ("stop_dots", "must be a path relative to the data root, without '..'"),
    ("stop_linked", "side file 'stop_words.txt' ('lists/link.txt') leaves the data root"),
])
async def test_a_side_file_missing_or_escaping_is_refused_at_submit(make_cluster: ClusterFactory, job_module: str,
                                                                    lists: Path, job: str, named: str) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, job_modules=(job_module,))
    status, body = await submit(cluster, {"job": job, "input": {"text": TEXT}})
    assert status == 400, body
    assert body["error"] == "bad_input" and named in body["message"], body
    jobs = await cluster.session.get(f"{cluster.url}/v1/jobs", headers=cluster.auth)
    assert (await jobs.json())["jobs"] == []  # refused: no job was made


async def test_a_side_file_changed_during_the_job_fails_it_naming_the_file(
        make_cluster: ClusterFactory, held_input: HeldInputFactory, job_module: str, lists: Path) -> None:
    """The mapper has its copy (its read of the input is held); the file changes; the reduce task's copy would be
    another list: the job fails naming the file, never a result mixing two lists."""
    held = await held_input((TEXT + "\n").encode() * 4)
    held.hold_all = True
    cluster = await make_cluster(mappers=1, reducers=1, job_modules=(job_module,), allow_private_urls=True)
    status, body = await submit(cluster, {"job": "stop_root", "input": {"url": held.url}, "split_size": 1 << 20})
    assert status == 202, body
    await held.held(1)
    (lists / "stop_words.txt").write_text("cat\n", encoding="utf-8")
    held.release_all()
    state, result = await finished(cluster, body["id"])
    assert state["state"] == "failed" and result == {}, state
    assert "side file 'stop_words.txt' ('lists/stop_words.txt') changed since the job was submitted" in state["error"]


# ---------------------------------------------------------------------------------------------------------------
# whole-file input


def binary(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size) + b"\x00\xff\xfe\n# not utf-8\n"


async def test_mapper_raw_gets_each_path_input_whole(make_cluster: ClusterFactory, job_module: str,
                                                     data_root: Path) -> None:
    files = {"docs/a.txt": b"# a comment\nsome text\n" * 300, "docs/b.bin": binary(1, 50_000),
             "docs/c.txt.gz": gzip.compress(b"# zipped\n" * 1000), "docs/empty.txt": b""}
    for name, data in files.items():
        (data_root / name).parent.mkdir(parents=True, exist_ok=True)
        (data_root / name).write_bytes(data)
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=(job_module,))
    status, body = await submit(cluster, {"job": "whole_files", "input": {"paths": ["docs"]}, "split_size": 4096})
    assert status == 202, body
    state, result = await finished(cluster, body["id"])
    assert state["state"] == "done", state
    assert state["progress"]["splits_total"] == len(files)  # one split per file, however small the split size
    expected = run_sequential_inputs("whole_files", files.items(), modules=(job_module,))
    assert result == expected
    assert result["docs/c.txt.gz"][0] == len(files["docs/c.txt.gz"])  # a gzip input comes as its raw bytes
    raw_comments = sum(line.startswith(b"#") for data in files.values() for line in data.split(b"\n"))
    assert result["comment"] == raw_comments < 1000  # the 1000 zipped "# zipped" lines stay zipped


async def test_a_steps_job_whose_first_step_is_mapper_raw_maps_whole_files(make_cluster: ClusterFactory,
                                                                           job_module: str, data_root: Path) -> None:
    """A native job's ``Step(mapper_raw=...)`` in its first step: the master learns it at submit (from a task
    process), plans one split per input file, and its mappers map each file whole; the answer is the oracle's. A
    later step's mapper_raw is a 400 naming it."""
    files = {"docs/a.txt": ("The cat and the hat\nof mice and men\n" * 200).encode(),
             "docs/b.txt": ("a tale of two cities\nThe end\n" * 150).encode()}
    for name, data in files.items():
        (data_root / name).parent.mkdir(parents=True, exist_ok=True)
        (data_root / name).write_bytes(data)
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=(job_module,))
    status, body = await submit(cluster, {"job": "raw_steps", "input": {"paths": ["docs"]}, "split_size": 1024})
    assert status == 202, body
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{body['id']}/result", params={"wait": "60"},
                                   headers=cluster.auth) as response:
        answer = await response.json()
    state = await cluster.status(body["id"])
    assert response.status == 200, (answer, state)
    assert state["steps"][0]["splits_total"] == len(files), state  # one split per file, not one per 1 KiB
    expected = run_sequential_output("raw_steps", files.items(), modules=(job_module,))
    assert isinstance(expected, list) and [["lines", "docs/a.txt"], 400] in expected
    key = json.dumps
    assert sorted(answer["result"], key=key) == sorted(expected, key=key)
    status, refused = await submit(cluster, {"job": "late_raw", "input": {"paths": ["docs"]}})
    assert status == 400 and "step 2 has a mapper_raw" in refused["message"], refused


async def test_mapper_raw_gets_uploads_and_urls_copied_and_the_copies_removed(
        make_cluster: ClusterFactory, held_input: HeldInputFactory, job_module: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    remote = binary(2, 300_000)
    served = await held_input(remote)
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=(job_module,), spool_dir=str(spool),
                                 allow_private_urls=True)
    status, body = await submit(cluster, {"job": "whole_files", "input": {"url": served.url, "name": "remote.bin"},
                                          "split_size": 4096})
    assert status == 202, body
    state, result = await finished(cluster, body["id"])
    assert state["state"] == "done" and state["progress"]["splits_total"] == 1, state
    assert result == run_sequential_inputs("whole_files", [("remote.bin", remote)], modules=(job_module,))

    upload = binary(3, 70_000)
    async with cluster.session.post(f"{cluster.url}/v1/jobs", data=upload, headers={
            **cluster.auth, "Content-Type": "application/octet-stream"},
            params={"job": "whole_files", "name": "up.bin"}) as response:
        assert response.status == 202, await response.text()
        job_id = (await response.json())["id"]
    state, result = await finished(cluster, job_id)
    assert state["state"] == "done", state
    assert result == run_sequential_inputs("whole_files", [("up.bin", upload)], modules=(job_module,))

    text = "# one\ntwo\n"
    status, body = await submit(cluster, {"job": "whole_files", "input": {"text": text}})
    state, result = await finished(cluster, body["id"])
    assert result == run_sequential("whole_files", text.encode(), "text", modules=(job_module,))
    assert result["comment"] == 1
    assert task_dirs(spool) == []  # each attempt's copy went with its directory


async def test_an_input_too_large_to_copy_whole_is_refused_at_submit(make_cluster: ClusterFactory,
                                                                     job_module: str) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, job_modules=(job_module,), max_raw_input=100)
    status, body = await submit(cluster, {"job": "whole_files", "input": {"text": "x" * 101}})
    assert status == 413 and "MR_MAX_RAW_INPUT" in body["message"], body
    async with cluster.session.post(f"{cluster.url}/v1/jobs", data=b"y" * 101, headers={
            **cluster.auth, "Content-Type": "application/octet-stream"},
            params={"job": "whole_files", "name": "big.bin"}) as response:
        body = await response.json()
        assert response.status == 413 and "'big.bin' has 101 bytes" in body["message"], body
    async with cluster.session.post(f"{cluster.url}/v1/jobs", data=b"y" * 100, headers={
            **cluster.auth, "Content-Type": "application/octet-stream"},
            params={"job": "whole_files", "name": "fits.bin", "split_size": "4096"}) as response:
        assert response.status == 202, await response.text()
        job_id = (await response.json())["id"]
    state, result = await finished(cluster, job_id)
    assert state["state"] == "done" and result["fits.bin"][0] == 100, state


async def test_a_whole_file_mapper_longer_than_the_lease_finishes(make_cluster: ClusterFactory,
                                                                  job_module: str) -> None:
    """3 s of mapper_raw against a lease of 1 s: the task reports progress as the pairs come, never silent long."""
    cluster = await make_cluster(mappers=1, reducers=1, job_modules=(job_module,), max_attempts=1,
                                 timeouts=dataclasses.replace(FAST, lease=1.0))
    began = time.monotonic()
    status, body = await submit(cluster, {"job": "slow_whole", "input": {"text": "x"}})
    assert status == 202, body
    state, result = await finished(cluster, body["id"])
    assert state["state"] == "done", state
    assert time.monotonic() - began > 2.5
    assert result == run_sequential("slow_whole", b"x", "text", modules=(job_module,))
