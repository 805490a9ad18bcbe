"""s3:// inputs against a real S3-compatible server (moto's, in its own process on loopback): prefixes, globs and
single objects listed once by the master, ranged reads pinned to the ETag by the mappers, .gz objects, and every
refusal a clear 4xx (or a job error naming the object), compared with the sequential oracle."""

from __future__ import annotations

import argparse
import contextlib
import gzip
import subprocess
import sys
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.core.config import Settings
from actors.core.errors import BadRequest, InputError, PeerError
from actors.inputs.pin import Pin
from actors.inputs.ref import GZIP, S3
from actors.inputs.s3 import s3_error
from actors.inputs.s3inputs import s3_inputs
from actors.inputs.s3source import S3Source
from actors.sequential import run_sequential_inputs
from tests.conftest import ClusterFactory
from tests.s3server import S3Server
from tests.test_inputs import document, submit_error

BUCKET = "corpus"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One server for the module, with the (fake) credentials in this process's environment, where the library
    reads them, as an actor's container would have them."""
    with S3Server(tmp_path_factory.mktemp("s3")) as server, pytest.MonkeyPatch.context() as patch:
        for name, value in server.environment().items():
            patch.setenv(name, value)
        yield server


def settings(s3: S3Server, **changes: Any) -> Settings:
    return Settings(s3_endpoint=s3.endpoint, s3_read_part=64 * 1024, s3_read_ahead=3).replace(**changes)


def corpus(s3: S3Server, prefix: str) -> dict[str, bytes]:
    """Objects under ``prefix`` (some gzipped, one in a deeper "directory", one empty), by key; the hidden ones
    (``_SUCCESS``, a dot-name) are stored too but are not data."""
    objects = {f"{prefix}/day{i}.log": document(i, 40 + 70 * i) for i in range(6)}
    objects[f"{prefix}/deeper/night.log"] = document(11, 90)
    objects[f"{prefix}/empty.log"] = b""
    packed = {f"{prefix}/old{i}.log.gz": document(20 + i, 500) for i in range(2)}
    for key, data in objects.items():
        s3.put(BUCKET, key, data)
    for key, data in packed.items():
        s3.put(BUCKET, key, gzip.compress(data))
    s3.put(BUCKET, f"{prefix}/_SUCCESS", b"not data\n")
    s3.put(BUCKET, f"{prefix}/.hidden", b"not data either\n")
    s3.put(BUCKET, f"{prefix}2/outside.log", b"a sibling prefix, not under the prefix\n")
    return {**objects, **packed}


# ---- the master's listing -----------------------------------------------------------------------------------------


async def test_a_prefix_lists_every_object_under_it_once_pinned_to_its_etag(s3: S3Server) -> None:
    objects = corpus(s3, "list")
    refs = await s3_inputs(settings(s3), [f"s3://{BUCKET}/list/", f"s3://{BUCKET}/list/day1.log"], 100)
    assert sorted(r.name for r in refs) == sorted(objects)  # day1 named twice, listed once; hidden ones left out
    for ref in refs:
        assert ref.kind == S3 and ref.location == f"s3://{BUCKET}/{ref.name}" and ref.etag.startswith('"')
        assert ref.compression == (GZIP if ref.name.endswith(".gz") else "")
        assert ref.size == len(s3.get(BUCKET, ref.name))


async def test_a_glob_matches_keys_one_segment_at_a_time(s3: S3Server) -> None:
    corpus(s3, "glob")
    refs = await s3_inputs(settings(s3), [f"s3://{BUCKET}/glob/*.log"], 100)
    assert sorted(r.name for r in refs) == [f"glob/day{i}.log" for i in range(6)] + ["glob/empty.log"]
    deep = await s3_inputs(settings(s3), [f"s3://{BUCKET}/glob/**/*.log"], 100)
    assert "glob/deeper/night.log" in {r.name for r in deep}


async def test_more_objects_than_max_inputs_are_refused_never_cut_short(s3: S3Server) -> None:
    corpus(s3, "many")
    with pytest.raises(BadRequest, match="MR_MAX_INPUTS"):
        await s3_inputs(settings(s3), [f"s3://{BUCKET}/many/"], 5)


# ---- the mapper's ranged reads ------------------------------------------------------------------------------------


async def read_all(source: S3Source, offset: int = 0) -> bytes:
    blocks: list[bytes] = []
    async with contextlib.aclosing(source.blocks(offset)) as stream:
        async for block in stream:
            blocks.append(block)
    return b"".join(blocks)


async def test_ranged_reads_return_the_object_from_any_offset(s3: S3Server) -> None:
    data = document(3, 9000)  # ~450 KB: several 64 KiB parts, three in flight
    etag = s3.put(BUCKET, "read/big.log", data)
    source = S3Source(settings(s3), f"s3://{BUCKET}/read/big.log", Pin(len(data), etag))
    assert await read_all(source) == data
    assert await read_all(source, 100_000) == data[100_000:]
    assert await read_all(source, len(data)) == b""


async def test_an_object_overwritten_between_two_ranged_reads_fails_the_read_by_name(s3: S3Server) -> None:
    data = document(4, 9000)
    etag = s3.put(BUCKET, "read/changing.log", data)
    source = S3Source(settings(s3, s3_read_ahead=1), f"s3://{BUCKET}/read/changing.log", Pin(len(data), etag))
    stream: AsyncGenerator[bytes, None] = source.blocks(0)
    async with contextlib.aclosing(stream):
        first = await anext(stream)
        assert first == data[:len(first)]
        s3.put(BUCKET, "read/changing.log", data.replace(b"the", b"THE"))  # same size, another version
        with pytest.raises(InputError, match=r"s3://corpus/read/changing.log changed since the job was planned"):
            async for _ in stream:
                pass


async def test_a_source_stopped_early_leaves_no_read_running(s3: S3Server) -> None:
    data = document(5, 9000)
    etag = s3.put(BUCKET, "read/early.log", data)
    source = S3Source(settings(s3, s3_read_ahead=4), f"s3://{BUCKET}/read/early.log", Pin(len(data), etag))
    async with contextlib.aclosing(source.blocks(0)) as stream:
        async for _ in stream:
            break  # the conftest leak check of the cluster tests covers tasks; here: closing does not hang or raise


# ---- real actors ----------------------------------------------------------------------------------------------------


async def test_wordcount_over_a_prefix_of_many_objects_some_gzipped(s3: S3Server, make_cluster: ClusterFactory,
                                                                     data_root: Path) -> None:
    objects = corpus(s3, "wc")
    cluster = await make_cluster(mappers=2, reducers=2, s3_endpoint=s3.endpoint, s3_read_part=64 * 1024)
    job = await cluster.submit({"job": "wordcount", "input": {"uris": [f"s3://{BUCKET}/wc/"]}, "split_size": 4096})
    result = await cluster.result(job["id"])
    assert result == run_sequential_inputs("wordcount", sorted(objects.items()))
    status = await cluster.status(job["id"])
    assert status["inputs"]["count"] == len(objects) and status["inputs"]["compressed"] == 2
    assert status["progress"]["splits_total"] > len(objects)  # the larger objects span several ranged splits


async def test_a_user_job_over_a_glob_and_a_single_object_url(s3: S3Server, make_cluster: ClusterFactory) -> None:
    objects = corpus(s3, "ii")
    cluster = await make_cluster(mappers=2, reducers=2, s3_endpoint=s3.endpoint, s3_read_part=64 * 1024)
    job = await cluster.submit({"job": "inverted_index", "input": {"urls": [f"s3://{BUCKET}/ii/day*.log"]},
                                "split_size": 2048})
    days = sorted((k, v) for k, v in objects.items() if "/day" in k)
    assert await cluster.result(job["id"]) == run_sequential_inputs("inverted_index", days)
    one = await cluster.submit({"job": "wordcount", "input": {"url": f"s3://{BUCKET}/ii/old1.log.gz"}})
    assert await cluster.result(one["id"]) == run_sequential_inputs(
        "wordcount", [("ii/old1.log.gz", objects["ii/old1.log.gz"])])


@pytest.mark.parametrize(("uri", "message"), [
    ("s3://no-such-bucket/x/", "no-such-bucket/x/: its bucket does not exist"),
    (f"s3://{BUCKET}/no/such/object.log", "no such object"),
    (f"s3://{BUCKET}/nothing-here/", "matches no object"),
    (f"s3://{BUCKET}/nothing-here/*.log", "matches no object"),
    ("s3://Bad_Bucket/x", "does not name a valid bucket"),
])
async def test_a_missing_or_malformed_input_is_a_400_at_submit_naming_it(
    s3: S3Server, make_cluster: ClusterFactory, uri: str, message: str,
) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, s3_endpoint=s3.endpoint)
    status, body = await submit_error(cluster, {"job": "wordcount", "input": {"uris": [uri]}})
    assert status == 400 and message in body["message"], body


async def test_an_unreachable_endpoint_is_a_502_not_a_500(s3: S3Server, make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, s3_endpoint="http://127.0.0.1:9")  # nothing listens
    status, body = await submit_error(cluster, {"job": "wordcount", "input": {"uris": [f"s3://{BUCKET}/x/"]}})
    assert status == 502 and "could not be reached" in body["message"], body


def test_the_library_benchmark_runs_and_reads_every_byte() -> None:
    """scripts/bench_s3.py (the README's comparison) on a small object: every reader gets every byte (it asserts)."""
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "scripts.bench_s3", "--mib", "4", "--part-mib", "1", "--ahead", "2"],
                          cwd=repo, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    assert [line.split("  ")[0] for line in done.stdout.splitlines()] == [
        "mapper, local file", "obstore", "aiobotocore", "mapper, s3://"]


def test_refusals_are_read_by_their_s3_error_code_alone() -> None:
    from obstore import exceptions

    uri = "s3://b/AccessDenied-NoSuchKey.log"  # words of a key are not a code
    found = s3_error(exceptions.GenericError(f"GET http://h/{uri[5:]}: 500 <Code>InternalError</Code>"), uri)
    assert isinstance(found, PeerError) and found.message == f"{uri}: the object store could not be reached or " \
        "failed (GenericError)"
    found = s3_error(exceptions.GenericError("GET x: 404 <Code>NoSuchBucket</Code> <BucketName>b</BucketName>"), uri)
    assert isinstance(found, InputError) and found.message == f"{uri}: its bucket does not exist"
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    found = s3_error(exceptions.GenericError(f"<Code>SignatureDoesNotMatch</Code><StringToSign>{secret}"), uri)
    assert secret not in found.message and "bad secret key" in found.message


def test_mapreduce_submit_sends_s3_uris_as_references_never_as_uploads() -> None:
    from actors.remote.commands import _inputs

    given = argparse.Namespace(inputs=["s3://corpus/logs/", "s3://corpus/a.log"], path=[])
    assert _inputs(given) == [{"url": "s3://corpus/logs/"}, {"url": "s3://corpus/a.log"}]
